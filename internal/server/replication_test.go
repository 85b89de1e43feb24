package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	rpool "github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/config"
	"github.com/rewardpool/rewardpool/wal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const replToken = "repl-token"

// startNode starts a primary (replicaOf "") or a replica of replicaOf.
func startNode(t *testing.T, dataDir, replicaOf string, configure func(*config.Config)) *testServer {
	t.Helper()
	ts := startServer(t, serverOpts{dataDir: dataDir, noRecover: true, configure: func(c *config.Config) {
		c.Durability = "none"
		c.Limits.MaxDrawCount = 100
		c.ReplicaOf = replicaOf
		c.Replication.Token = replToken
		if configure != nil {
			configure(c)
		}
	}})
	ts.srv.replicaBackoff = 5 * time.Millisecond
	if err := ts.srv.Recover(); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	return ts
}

// drawLoad makes n draw requests of count each from workers goroutines.
func drawLoad(t *testing.T, ts *testServer, pool string, workers, n, count int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if _, err := ts.rp.Draw(context.Background(), &rpv1.DrawRequest{Pool: pool, Count: uint32(count)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// waitSame polls until every replica shows the primary's seq and digest
// for pool.
func waitSame(t *testing.T, pool string, primary *testServer, replicas ...*testServer) httpPool {
	t.Helper()
	want := primary.getPool(pool, "")
	deadline := time.Now().Add(20 * time.Second)
	for _, r := range replicas {
		for {
			// A replica reinstalling a pool from a snapshot answers 503
			// while it reopens the engine.
			code, body := r.do("GET", "/v1/pools/"+pool, "", "")
			if code != http.StatusOK {
				if time.Now().After(deadline) {
					t.Fatalf("GET pool %s on replica: %d %s", pool, code, body)
				}
				time.Sleep(5 * time.Millisecond)
				continue
			}
			var got httpPool
			decodeStrict(t, body, &got)
			if got.Seq == want.Seq {
				if got.StateDigest != want.StateDigest || got.LastRequestID != want.LastRequestID {
					t.Fatalf("pool %s at seq %d: replica %s digest %s last id %d, primary %s %d", pool, want.Seq,
						r.srv.Addr(), got.StateDigest, got.LastRequestID, want.StateDigest, want.LastRequestID)
				}
				break
			}
			if got.Seq > want.Seq || time.Now().After(deadline) {
				t.Fatalf("pool %s: replica %s at seq %d, primary at %d\n%s", pool, r.srv.Addr(), got.Seq, want.Seq,
					r.mustDo("GET", "/v1/replication", "", "", 200))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return want
}

func replicationJSON(t *testing.T, ts *testServer) replicationView {
	var v replicationView
	if err := json.Unmarshal(ts.mustDo("GET", "/v1/replication", "", "", 200), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// (a) primary, replica and cascaded replica under 200,000 draws.
func TestReplicationCascade(t *testing.T) {
	primary := startNode(t, "", "", nil)
	r1 := startNode(t, "", primary.srv.Addr().String(), nil)
	r2 := startNode(t, "", r1.srv.Addr().String(), nil)
	drawLoad(t, primary, "prizes", 8, 2000, 100)
	for _, pool := range []string{"prizes", "other"} {
		want := waitSame(t, pool, primary, r1, r2)
		if pool == "prizes" && want.LastRequestID != 200_000 {
			t.Fatalf("last request id %d, want 200000", want.LastRequestID)
		}
	}
	v := replicationJSON(t, r2)
	if v.Role != "replica" || v.Primary != r1.srv.Addr().String() || len(v.Pools) != 2 {
		t.Fatalf("/v1/replication on cascaded replica: %+v", v)
	}
	if pv := replicationJSON(t, primary); pv.Role != "primary" || pv.Primary != "" {
		t.Fatalf("/v1/replication on primary: %+v", pv)
	}
	m := r1.scrape()
	if m[`rewardpool_replication_applied_seq{pool="prizes"}`] == 0 {
		t.Fatalf("metrics: no applied seq for prizes")
	}
	if _, ok := m[`rewardpool_replication_lag_seconds{pool="prizes"}`]; !ok {
		t.Fatalf("metrics: no lag_seconds for prizes")
	}
	// Caught up and connected: no lag in records or seconds. (Poll: the
	// last record may be applied a moment after the digests matched.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		caughtUp := true
		for _, p := range replicationJSON(t, r1).Pools {
			if !p.Connected || p.LagRecords != 0 || p.LagSeconds != 0 {
				caughtUp = false
			}
		}
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never reports itself caught up: %+v", replicationJSON(t, r1))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A replica whose primary is gone reports growing lag in seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := primary.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		lagging := false
		for _, p := range replicationJSON(t, r1).Pools {
			if !p.Connected && p.LagSeconds > 0 {
				lagging = true
			}
		}
		if lagging {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica without primary reports no lag: %+v", replicationJSON(t, r1))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// (b) a replica restarted mid-stream catches up with no gap and no duplicate.
func TestReplicaRestartMidStream(t *testing.T) {
	primary := startNode(t, "", "", nil)
	dir := t.TempDir()
	r1 := startNode(t, dir, primary.srv.Addr().String(), nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		drawLoad(t, primary, "prizes", 4, 1200, 10)
	}()
	// Restart once some records arrived.
	deadline := time.Now().Add(10 * time.Second)
	for r1.getPool("prizes", "").LastRequestID < 1000 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := r1.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	r1b := startNode(t, dir, primary.srv.Addr().String(), nil)
	<-done
	waitSame(t, "prizes", primary, r1b)
	waitSame(t, "other", primary, r1b)

	// The replica's own log: consecutive seqs from 1.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r1b.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := wal.Open(filepath.Join(dir, "prizes", "wal"), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	next := uint64(1)
	if err := l.Scan(1, func(r *wal.Record) error {
		if r.Seq != next {
			t.Fatalf("replica log: seq %d, want %d", r.Seq, next)
		}
		next++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if next < 12_000 {
		t.Fatalf("replica log ends at %d", next-1)
	}
}

// (c) a fresh replica bootstraps from a snapshot when the primary deleted
// the segments it needs.
func TestReplicaBootstrapFromSnapshot(t *testing.T) {
	small := func(c *config.Config) {
		c.WAL.SegmentSize = config.MinSegmentSize
		c.SnapshotEvery = 500
		c.WAL.KeepSegments = 0
	}
	primary := startNode(t, "", "", small)
	drawLoad(t, primary, "prizes", 4, 200, 50)
	drawLoad(t, primary, "other", 1, 2, 1)
	// The first segment must be gone.
	e, _ := primary.srv.pools.Load().get("prizes")
	if err := e.ScanLog(1, func(*wal.Record) error { return nil }); err == nil {
		t.Fatalf("primary still has seq 1: the test needs it deleted")
	}
	r := startNode(t, "", primary.srv.Addr().String(), small)
	waitSame(t, "prizes", primary, r)
	waitSame(t, "other", primary, r)
	drawLoad(t, primary, "prizes", 2, 20, 10)
	waitSame(t, "prizes", primary, r)
}

// (d) a replica refuses draws and admin writes, naming the primary, and
// serves reads; (e) promoted after its primary stops, it takes draws with
// ids above everything it had, in a new epoch.
func TestReplicaRefusesWritesAndPromotes(t *testing.T) {
	primary := startNode(t, "", "", func(c *config.Config) { c.AdminToken = "adm" })
	paddr := primary.srv.Addr().String()
	r := startNode(t, "", paddr, func(c *config.Config) { c.AdminToken = "adm" })
	drawLoad(t, primary, "prizes", 2, 50, 3)
	want := waitSame(t, "prizes", primary, r)

	code, body := r.do("POST", "/v1/pools/prizes/draw", "", `{"count":1}`)
	if code != http.StatusConflict || !strings.Contains(string(body), "FAILED_PRECONDITION") || !strings.Contains(string(body), paddr) {
		t.Fatalf("draw on replica: %d %s", code, body)
	}
	_, err := r.rp.Draw(context.Background(), &rpv1.DrawRequest{Pool: "prizes", Count: 1})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), paddr) {
		t.Fatalf("gRPC draw on replica: %v", err)
	}
	code, body = r.do("PUT", "/v1/pools/prizes/items/new", "adm", `{"quantity":1,"weight":1}`)
	if code != http.StatusConflict {
		t.Fatalf("admin write on replica: %d %s", code, body)
	}
	if code, _ := r.do("GET", "/readyz", "", ""); code != 200 {
		t.Fatalf("/readyz on replica: %d", code)
	}

	// Replication calls need the replication token.
	st, err := rpv1.NewReplicationClient(primary.conn).StreamWAL(context.Background(), &rpv1.StreamWALRequest{Pool: "prizes", FromSeq: 1})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("StreamWAL without token: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := primary.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := r.do("POST", "/v1/promote", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("promote without admin token: %d %s", code, body)
	}
	var pr struct {
		Epoch uint64 `json:"epoch"`
	}
	if err := json.Unmarshal(r.mustDo("POST", "/v1/promote", "adm", "", 200), &pr); err != nil {
		t.Fatal(err)
	}
	if rpool.EpochGeneration(pr.Epoch) != rpool.EpochGeneration(want.Epoch)+1 || pr.Epoch <= want.Epoch {
		t.Fatalf("epoch after promote %d (generation %d), want one generation after %d", pr.Epoch,
			rpool.EpochGeneration(pr.Epoch), want.Epoch)
	}
	d := r.draw("prizes", "", `{"count":2}`)
	if len(d) != 2 || d[0].RequestID <= want.LastRequestID {
		t.Fatalf("draws after promote: %+v (last id before %d)", d, want.LastRequestID)
	}
	if v := replicationJSON(t, r); v.Role != "primary" {
		t.Fatalf("role after promote: %+v", v)
	}

	// Restarted as a primary with a config that lists other pools, the
	// promoted node still serves the pools in its data directory.
	promoted := r.getPool("prizes", "")
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := r.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	r2 := startNode(t, r.cfg.DataDir, "", func(c *config.Config) {
		c.Pools = []config.Pool{{Name: "fresh", Items: []config.Item{{ID: "a", Quantity: 1, Weight: rpool.WeightUnit}}}}
	})
	if got := r2.getPool("prizes", ""); got.Seq != promoted.Seq || got.StateDigest != promoted.StateDigest || got.Epoch != promoted.Epoch {
		t.Fatalf("after restart as primary: %+v, want %+v", got, promoted)
	}
	r2.getPool("fresh", "")
}

// A former primary that kept records its successor never got rejoins as a
// replica of the promoted node: the new primary refuses to stream onto its
// divergent tail and says where the logs agree; the former primary saves
// the tail to a file, cuts it, follows, and ends with equal digests.
func TestDivergentFormerPrimaryRejoins(t *testing.T) {
	admin := func(c *config.Config) { c.AdminToken = "adm" }
	pdir, rdir := t.TempDir(), t.TempDir()
	p := startNode(t, pdir, "", admin)
	r := startNode(t, rdir, p.srv.Addr().String(), admin)
	drawLoad(t, p, "prizes", 2, 20, 2)
	common := waitSame(t, "prizes", p, r)

	// The replica goes away; the primary takes draws it will never see.
	stop := func(ts *testServer) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stop(r)
	drawLoad(t, p, "prizes", 1, 10, 2)
	divergent := p.getPool("prizes", "")
	stop(p)

	// The replica comes back (its primary is down), is promoted, draws.
	r2 := startNode(t, rdir, p.srv.Addr().String(), admin)
	if code, body := r2.do("POST", "/v1/promote", "adm", ""); code != 200 {
		t.Fatalf("promote: %d %s", code, body)
	}
	r2.draw("prizes", "", `{"count":3}`)

	// The former primary rejoins as a replica of the promoted node.
	p2 := startNode(t, pdir, r2.srv.Addr().String(), admin)
	deadline := time.Now().Add(15 * time.Second)
	target := r2.getPool("prizes", "").Seq
	for { // until the tail is cut (the pool answers 503 while it reopens)
		if code, body := p2.do("GET", "/v1/pools/prizes", "", ""); code == http.StatusOK {
			var got httpPool
			decodeStrict(t, body, &got)
			if got.Seq <= target {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("former primary never cut its tail:\n%s", p2.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitSame(t, "prizes", r2, p2)
	r2.draw("prizes", "", `{"count":2}`)
	final := waitSame(t, "prizes", r2, p2)
	if rpool.EpochGeneration(final.Epoch) != 1 || final.Epoch != r2.getPool("prizes", "").Epoch {
		t.Fatalf("epoch after rejoin %d, want the promoted node's, of generation 1", final.Epoch)
	}

	// The cut records are kept for audit, one line each.
	files, _ := filepath.Glob(filepath.Join(pdir, "prizes", "divergent-*.log"))
	if len(files) != 1 {
		t.Fatalf("divergent tail files: %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if want := divergent.Seq - common.Seq; uint64(len(lines)) != want {
		t.Fatalf("saved %d records, want %d (seq %d..%d)", len(lines), want, common.Seq+1, divergent.Seq)
	}
	if !strings.HasPrefix(lines[0], fmt.Sprintf("%d\t1\t", common.Seq+1)) {
		t.Fatalf("first saved record %q, want seq %d of epoch 1", lines[0], common.Seq+1)
	}
	if !strings.Contains(p2.logs.String(), "cut the tail") {
		t.Fatalf("no log line about the cut:\n%s", p2.logs.String())
	}
}

func divergedPool(v replicationView, name string) bool {
	for _, p := range v.Pools {
		if p.Name == name && p.Diverged {
			return true
		}
	}
	return false
}

// A replica resumes from its own last seq after its primary restarts.
func TestReplicaSurvivesPrimaryRestart(t *testing.T) {
	pdir := t.TempDir()
	p := startNode(t, pdir, "", nil)
	addr := p.srv.Addr().String()
	r := startNode(t, "", addr, nil)
	drawLoad(t, p, "prizes", 2, 20, 3)
	waitSame(t, "prizes", p, r)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Same address, so the replica's replica_of still points at it. The
	// port was the kernel's pick a moment ago and is free again.
	p2 := startNode(t, pdir, "", func(c *config.Config) { c.Listen = addr })
	drawLoad(t, p2, "prizes", 2, 20, 3)
	waitSame(t, "prizes", p2, r)
	if !strings.Contains(r.logs.String(), "reconnecting") {
		t.Fatalf("replica never noticed the primary going away:\n%s", r.logs.String())
	}
}

// replication.log_records writes one structured line per committed record.
func TestLogRecordsSink(t *testing.T) {
	ts := startNode(t, "", "", func(c *config.Config) { c.Replication.LogRecords = true })
	ts.draw("prizes", "", `{"count":3}`)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(ts.logs.String(), `msg="wal record"`) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("want 3 wal record lines:\n%s", ts.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, id := range []string{"request_id=1 ", "request_id=2 ", "request_id=3 "} {
		if !strings.Contains(ts.logs.String(), id) {
			t.Fatalf("no line for %s:\n%s", id, ts.logs.String())
		}
	}
}
