package server

// Readiness, liveness and promotion guards (issue 8, defects 1, 3, 6): a
// node whose log failed leaves rotation and fails /healthz; a replica is
// ready only while connected and caught up within its lag bounds; promote
// refuses while the primary serves or while the replica is behind, unless
// forced; a former primary that hears of a newer epoch stops writing.

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/rewardpool/rewardpool/internal/failpoint"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rpool "github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/config"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// startNodeHook is startNode with an engine hook (fault injection).
func startNodeHook(t *testing.T, dataDir, replicaOf string, configure func(*config.Config), hook func(string, *rpool.Options)) *testServer {
	t.Helper()
	ts := startServer(t, serverOpts{dataDir: dataDir, noRecover: true, engineHook: hook, closeErrOK: true,
		configure: func(c *config.Config) {
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

// pollFor polls cond every few milliseconds for up to 20s.
func pollFor(t *testing.T, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReadyzAfterLogFailure(t *testing.T) {
	var failSync atomic.Bool
	ts := startServer(t, serverOpts{
		closeErrOK: true,
		engineHook: func(pool string, o *rpool.Options) {
			if pool != "prizes" {
				return
			}
			failpoint.OnSync(o, func() error {
				if failSync.Load() {
					return errors.New("injected EIO")
				}
				return nil
			})
		},
	})
	ts.draw("prizes", "", "")
	ts.mustDo("GET", "/readyz", "", "", 200)
	ts.mustDo("GET", "/healthz", "", "", 200)

	failSync.Store(true)
	ts.mustDo("POST", "/v1/pools/prizes/draw", "", "", http.StatusServiceUnavailable)
	for _, path := range []string{"/readyz", "/healthz"} {
		body := string(ts.mustDo("GET", path, "", "", http.StatusServiceUnavailable))
		if !strings.Contains(body, "prizes") || !strings.Contains(body, "injected EIO") {
			t.Errorf("%s after the log failed does not name the pool and the failure: %s", path, body)
		}
	}
	checkGRPCHealth(t, ts, healthpb.HealthCheckResponse_NOT_SERVING)
}

// checkGRPCHealth checks the gRPC health status of the whole server.
func checkGRPCHealth(t *testing.T, ts *testServer, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	h, err := healthpb.NewHealthClient(ts.conn).Check(testCtx(t), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != want {
		t.Fatalf("gRPC health: %v, %v; want %v", h, err, want)
	}
}

// A replica whose log writes stall falls behind: past its lag bound (in
// records, or in seconds) it is unready, saying how far behind; once it
// catches up it is ready again.
func TestReplicaReadyzLagBound(t *testing.T) {
	for _, tc := range []struct {
		name      string
		configure func(*config.Config)
		draws     int
		want      string
	}{
		{"records", func(c *config.Config) { c.Replication.ReadyMaxLagRecords = 20 }, 60, "records behind"},
		{"seconds", func(c *config.Config) { c.Replication.ReadyMaxLag = config.Duration(300 * time.Millisecond) }, 3, "ready_max_lag"},
	} {
		t.Run(tc.name, func(t *testing.T) { testReplicaLagBound(t, tc.configure, tc.draws, tc.want) })
	}
}

func testReplicaLagBound(t *testing.T, configure func(*config.Config), draws int, want string) {
	primary := startNode(t, "", "", nil)
	ls := &logStall{}
	r := startNodeHook(t, "", primary.srv.Addr().String(), configure, ls.hook)
	drawLoad(t, primary, "prizes", 1, 5, 1)
	waitSame(t, "prizes", primary, r)
	pollFor(t, func() bool { c, _ := r.do("GET", "/readyz", "", ""); return c == 200 },
		func() string { _, b := r.do("GET", "/readyz", "", ""); return string(b) })

	release := ls.stall()
	defer release()
	drawLoad(t, primary, "prizes", 1, draws, 1)
	var body []byte
	pollFor(t, func() bool {
		var c int
		c, body = r.do("GET", "/readyz", "", "")
		return c == http.StatusServiceUnavailable && strings.Contains(string(body), want)
	}, func() string { return string(body) })
	if !strings.Contains(string(body), "prizes") {
		t.Fatalf("/readyz does not name the lagging pool: %s", body)
	}
	release()
	waitSame(t, "prizes", primary, r)
	pollFor(t, func() bool { c, _ := r.do("GET", "/readyz", "", ""); return c == 200 },
		func() string { _, b := r.do("GET", "/readyz", "", ""); return string(b) })
}

type promoteAnswer struct {
	Epoch uint64   `json:"epoch"`
	Pools []string `json:"pools"`
}

// Promotion refuses while the primary serves and while the replica is
// behind what it received; after both are resolved it promotes.
func TestPromoteGuards(t *testing.T) {
	adm := func(c *config.Config) { c.AdminToken = "adm" }
	primary := startNode(t, "", "", adm)
	ls := &logStall{}
	r := startNodeHook(t, "", primary.srv.Addr().String(), adm, ls.hook)
	drawLoad(t, primary, "prizes", 2, 20, 2)
	waitSame(t, "prizes", primary, r)

	code, body := r.do("POST", "/v1/promote", "adm", "")
	if code != http.StatusConflict || !strings.Contains(string(body), "still reachable") {
		t.Fatalf("promote while the primary serves: %d %s", code, body)
	}
	_, err := rpv1.NewReplicationClient(r.conn).Promote(withToken(context.Background(), "adm"), &rpv1.PromoteRequest{})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("gRPC promote while the primary serves: %v", err)
	}
	if v := replicationJSON(t, r); v.Role != "replica" {
		t.Fatalf("refused promotion changed the role: %+v", v)
	}

	// The replica's log stalls while the primary logs more, then the
	// primary stops: the replica holds records it has not applied.
	release := ls.stall()
	defer release()
	drawLoad(t, primary, "prizes", 1, 10, 1)
	want := primary.getPool("prizes", "")
	pollFor(t, func() bool {
		for _, p := range replicationJSON(t, r).Pools {
			if p.Name == "prizes" {
				return p.PrimarySeq == want.Seq
			}
		}
		return false
	}, func() string { return string(r.mustDo("GET", "/v1/replication", "", "", 200)) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := primary.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	code, body = r.do("POST", "/v1/promote", "adm", "")
	if code != http.StatusConflict || !strings.Contains(string(body), "behind") {
		t.Fatalf("promote of a replica behind its primary: %d %s", code, body)
	}

	release()
	var pr promoteAnswer
	pollFor(t, func() bool {
		code, body = r.do("POST", "/v1/promote", "adm", "")
		return code == 200
	}, func() string { return string(body) + "\n" + r.logs.String() })
	if err := json.Unmarshal(body, &pr); err != nil || len(pr.Pools) != 2 {
		t.Fatalf("promote answer %s (%v): want both pools listed", body, err)
	}
	if got := r.getPool("prizes", ""); got.LastRequestID != want.LastRequestID {
		t.Fatalf("promoted with last request id %d, the primary had %d", got.LastRequestID, want.LastRequestID)
	}
}

// A forced promotion while the primary lives: once the promoted node
// rejoins the former primary as a replica (its StreamWAL carries the newer
// epoch), the former primary stops accepting writes and leaves rotation.
func TestFormerPrimaryFencedByNewerEpoch(t *testing.T) {
	adm := func(c *config.Config) { c.AdminToken = "adm" }
	primary := startNode(t, "", "", adm)
	paddr := primary.srv.Addr().String()
	r := startNode(t, "", paddr, adm)
	drawLoad(t, primary, "prizes", 2, 20, 2)
	waitSame(t, "prizes", primary, r)
	checkGRPCHealth(t, primary, healthpb.HealthCheckResponse_SERVING)

	var pr promoteAnswer
	if err := json.Unmarshal(r.mustDo("POST", "/v1/promote", "adm", `{"force": true}`, 200), &pr); err != nil {
		t.Fatal(err)
	}
	r.draw("prizes", "", `{"count": 2}`)
	primary.draw("prizes", "", "") // nothing told the former primary yet

	// The promoted node restarts as a replica of the former primary.
	dir := r.cfg.DataDir
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	startNode(t, dir, paddr, adm)

	var code int
	var body []byte
	pollFor(t, func() bool {
		code, body = primary.do("POST", "/v1/pools/prizes/draw", "", "")
		return code == http.StatusConflict
	}, func() string { return string(body) })
	if !strings.Contains(string(body), "epoch") {
		t.Fatalf("fenced draw does not say why: %s", body)
	}
	if _, err := primary.rp.Draw(context.Background(), &rpv1.DrawRequest{Pool: "other"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("gRPC draw on the fenced node: %v", err)
	}
	if code, body := primary.do("GET", "/readyz", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "epoch") {
		t.Fatalf("/readyz of the fenced node: %d %s", code, body)
	}
	primary.mustDo("GET", "/healthz", "", "", 200) // a restart would lift the fence: stay alive
	checkGRPCHealth(t, primary, healthpb.HealthCheckResponse_NOT_SERVING)
}

// A replica that starts while its primary is under steady load becomes
// ready: catching up means reaching what the primary had when the stream
// opened, not an instant with nothing in flight.
func TestReplicaReadyUnderLoad(t *testing.T) {
	primary := startNode(t, "", "", nil)
	drawLoad(t, primary, "prizes", 2, 200, 5)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var draws atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ { // bounded; stopped below
				select {
				case <-stop:
					return
				default:
				}
				if _, err := primary.rp.Draw(context.Background(), &rpv1.DrawRequest{Pool: "prizes", Count: 1}); err != nil {
					t.Errorf("draw: %v", err)
					return
				}
				draws.Add(1)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	r := startNode(t, "", primary.srv.Addr().String(), nil)
	var body []byte
	pollFor(t, func() bool {
		var c int
		c, body = r.do("GET", "/readyz", "", "")
		return c == 200
	}, func() string { return string(body) })
	before := draws.Load()
	pollFor(t, func() bool { return draws.Load() > before+50 }, func() string { return "load stopped" })
}

// A replica whose idle primary restarts is unready while the primary is
// away and ready again once reconnected: nothing to apply after the
// reconnect must not leave it counting lag from the disconnect.
func TestReplicaReadyAfterIdlePrimaryRestarts(t *testing.T) {
	pdir := t.TempDir()
	p := startNode(t, pdir, "", nil)
	addr := p.srv.Addr().String()
	r := startNode(t, "", addr, func(c *config.Config) { c.Replication.ReadyMaxLag = config.Duration(300 * time.Millisecond) })
	drawLoad(t, p, "prizes", 1, 5, 1)
	waitSame(t, "prizes", p, r)
	readyz := func() (int, string) { c, b := r.do("GET", "/readyz", "", ""); return c, string(b) }
	var code int
	var body string
	pollFor(t, func() bool { code, body = readyz(); return code == 200 }, func() string { return body })

	stopNode(t, p)
	pollFor(t, func() bool { code, body = readyz(); return code == http.StatusServiceUnavailable }, func() string { return body })
	if !strings.Contains(body, "cannot reach primary") {
		t.Fatalf("/readyz while the primary is away: %s", body)
	}
	startNode(t, pdir, "", func(c *config.Config) { c.Listen = addr })
	pollFor(t, func() bool { code, body = readyz(); return code == 200 }, func() string { return body })
	// It stays ready past the lag bound: an idle primary is no lag.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if code, body = readyz(); code != 200 {
			t.Fatalf("replica of an idle, reconnected primary turned unready: %s", body)
		}
	}
}

// freezeProxy forwards TCP connections to target until frozen; frozen, it
// holds every byte (a path that drops packets without a reset) until thawed.
type freezeProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen bool
	thaw   chan struct{} // closed when thawed
	conns  []net.Conn
}

func startFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, thaw: make(chan struct{})}
	close(p.thaw)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.setFrozen(false)
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); p.pipe(u, c) }()
			go func() { defer wg.Done(); p.pipe(c, u) }()
		}
	}()
	return p
}

func (p *freezeProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		thaw := p.thaw
		p.mu.Unlock()
		<-thaw // frozen: hold the bytes
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *freezeProxy) setFrozen(frozen bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if frozen == p.frozen {
		return
	}
	p.frozen = frozen
	if frozen {
		p.thaw = make(chan struct{})
	} else {
		close(p.thaw)
	}
}

// A primary lost behind a path that drops packets silently sends a
// connected replica nothing, exactly like an idle primary: the replica's
// health probes notice, and it turns unready until the primary answers.
func TestReplicaUnreadyWhenPrimaryStopsAnswering(t *testing.T) {
	primary := startNode(t, "", "", nil)
	proxy := startFreezeProxy(t, primary.srv.Addr().String())
	r := startNode(t, "", proxy.ln.Addr().String(), func(c *config.Config) {
		c.Replication.ReadyMaxLag = config.Duration(300 * time.Millisecond)
	})
	drawLoad(t, primary, "prizes", 1, 5, 1)
	waitSame(t, "prizes", primary, r)
	var code int
	var body []byte
	pollFor(t, func() bool { code, body = r.do("GET", "/readyz", "", ""); return code == 200 }, func() string { return string(body) })

	proxy.setFrozen(true)
	pollFor(t, func() bool {
		code, body = r.do("GET", "/readyz", "", "")
		return code == http.StatusServiceUnavailable && strings.Contains(string(body), "has not answered")
	}, func() string { return string(body) })
	proxy.setFrozen(false)
	pollFor(t, func() bool { code, body = r.do("GET", "/readyz", "", ""); return code == 200 }, func() string { return string(body) })
}

// logStall holds a replica's log writes of pool "prizes" while stalled:
// the replica then has records it received but has not applied.
type logStall struct {
	mu      sync.Mutex
	stalled atomic.Bool
}

// hook is an engine hook for startNodeHook.
func (ls *logStall) hook(pool string, o *rpool.Options) {
	if pool != "prizes" {
		return
	}
	failpoint.OnWrite(o, func(p []byte) (int, error) {
		if ls.stalled.Load() {
			ls.mu.Lock()
			ls.mu.Unlock() //nolint:staticcheck // waits for the test to release the log
		}
		return len(p), nil
	})
}

// stall makes log writes wait until the returned release is called (once
// or more).
func (ls *logStall) stall() (release func()) {
	ls.mu.Lock()
	ls.stalled.Store(true)
	var once sync.Once
	return func() {
		once.Do(func() {
			ls.stalled.Store(false)
			ls.mu.Unlock()
		})
	}
}
