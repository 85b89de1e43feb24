package main

// End-to-end failover under replication.min_sync_replicas: 1. A primary and
// its replica run as real processes on loopback; 8 HTTP clients draw from
// the primary; the primary is killed with SIGKILL mid-load; the replica is
// promoted with the CLI and must hold every draw a client saw acknowledged,
// issue no item beyond its stock, and continue request ids above every
// acknowledged one in the new epoch (generation 1).

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/wal"
)

const failoverPool = "load"

// Every item is limited; gold is small enough to run out during the load,
// so the over-issue check covers an exhausted item too.
const failoverPrimaryConfig = `admin_token: ` + e2eAdminToken + `
durability: always
wal:
  keep_segments: 1000
replication:
  token: ` + e2eReplToken + `
  min_sync_replicas: 1
pools:
  - name: ` + failoverPool + `
    items:
      - {id: gold, quantity: 60, weight: 1}
      - {id: silver, quantity: 3000, weight: 2}
      - {id: bronze, quantity: 5000, weight: 3}
`

var failoverInitial = map[string]int64{"gold": 60, "silver": 3000, "bronze": 5000}

// The replica runs the same replication settings as its primary (so it is
// a like-for-like successor, min_sync_replicas included).
const failoverReplicaConfig = `admin_token: ` + e2eAdminToken + `
durability: always
wal:
  keep_segments: 1000
replication:
  token: ` + e2eReplToken + `
  min_sync_replicas: 1
`

// After the failover the promoted node has no replica; to draw from it
// without waiting 5 s for a confirmation that cannot come, it is restarted
// with min_sync_replicas 0 and no replica_of. As a primary it serves the
// pools its config lists (a config without pools would get the demo pool
// instead), so the pool is listed; its directory exists, so the items here
// seed nothing and the catalog is the one in the promoted log.
const failoverAloneConfig = `admin_token: ` + e2eAdminToken + `
durability: always
wal:
  keep_segments: 1000
replication:
  token: ` + e2eReplToken + `
pools:
  - name: ` + failoverPool + `
    items:
      - {id: gold, quantity: 60, weight: 1}
      - {id: silver, quantity: 3000, weight: 2}
      - {id: bronze, quantity: 5000, weight: 3}
`

// e2eEpochPool is GET /v1/pools/{pool} with the fields this test checks.
type e2eEpochPool struct {
	LastRequestID uint64    `json:"last_request_id"`
	Seq           uint64    `json:"seq"`
	Epoch         uint64    `json:"epoch"`
	Items         []e2eItem `json:"items"`
}

func getEpochPool(t *testing.T, addr, pool string) e2eEpochPool {
	t.Helper()
	var p e2eEpochPool
	if err := json.Unmarshal(mustHTTP(t, "GET", "http://"+addr+"/v1/pools/"+pool, "", "", 200), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestE2EFailoverMinSync(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	pDir, rDir := filepath.Join(dir, "primary"), filepath.Join(dir, "replica")
	pCfg := writeConfig(t, t.TempDir(), failoverPrimaryConfig)
	rCfg := writeConfig(t, t.TempDir(), failoverReplicaConfig)
	aloneCfg := writeConfig(t, t.TempDir(), failoverAloneConfig)

	primary := startServer(t, bin, pDir, pCfg)
	rep := startReplicaProc(t, bin, rDir, rCfg, primary.addr)

	// The replica follows (and so acknowledges) before any draw.
	var applied uint64
	var connected bool
	pollUntil(t, 30*time.Second, func() bool {
		applied, connected = appliedSeq(t, rep.addr, failoverPool)
		return connected
	}, func() string {
		return fmt.Sprintf("replica not following: applied seq %d, connected %v", applied, connected)
	})

	// Load: 8 clients drawing 1-3 at a time until the primary dies or they
	// are told to stop. Only a 200 with a complete answer is acknowledged;
	// a 503 (not confirmed by the replica in time) records nothing.
	const (
		clients     = 8
		killAfter   = 500  // acknowledged draws before the kill
		maxRequests = 5000 // per client, a bound on the loop
	)
	load := startHTTPLoad(t, "http://"+primary.addr+"/v1/pools/"+failoverPool+"/draw", clients, maxRequests, 11, true)
	defer load.stop()
	acked, mu, n := load.acked, &load.mu, &load.n
	stopLoad, loadOK := load.stop, load.errText
	unavailable, killed := &load.unavailable, &load.killed

	pollUntil(t, 90*time.Second, func() bool {
		if e := loadOK(); e != "" {
			t.Fatal(e)
		}
		return n.Load() >= killAfter
	}, func() string { return fmt.Sprintf("%d of %d draws acknowledged", n.Load(), killAfter) })

	// kill -9 the primary while the clients are still drawing.
	killed.Store(true)
	drawsAtKill := n.Load()
	primary.kill()
	stopLoad()
	if e := loadOK(); e != "" {
		t.Fatal(e)
	}
	mu.Lock()
	var maxAcked uint64
	for id := range acked {
		maxAcked = max(maxAcked, id)
	}
	nAcked := len(acked)
	mu.Unlock()
	t.Logf("primary killed after %d acknowledged draws (%d when the kill was decided, highest id %d, %d answers 503)",
		nAcked, drawsAtKill, maxAcked, unavailable.Load())

	// Promote the replica with the CLI.
	out, errOut, code := runCLI(t, bin, "promote", "--addr", rep.addr, "--token", e2eAdminToken)
	if code != 0 {
		t.Fatalf("promote: exit %d: %s\n%s", code, errOut, out)
	}
	var pr struct {
		Epoch uint64 `json:"epoch"`
	}
	if err := json.Unmarshal([]byte(out), &pr); err != nil || rewardpool.EpochGeneration(pr.Epoch) != 1 {
		t.Fatalf("promote output %q (%v): want an epoch of generation 1", out, err)
	}
	var rv e2eReplView
	if err := json.Unmarshal(mustHTTP(t, "GET", "http://"+rep.addr+"/v1/replication", "", "", 200), &rv); err != nil || rv.Role != "primary" {
		t.Fatalf("/v1/replication after promote: %+v, %v", rv, err)
	}

	// The promoted node's state, then its log, read offline.
	promoted := getEpochPool(t, rep.addr, failoverPool)
	if promoted.Epoch != pr.Epoch {
		t.Fatalf("promoted pool in epoch %d, want %d (the one promote reported)", promoted.Epoch, pr.Epoch)
	}
	if promoted.LastRequestID < maxAcked {
		t.Fatalf("promoted last_request_id %d is below the acknowledged %d", promoted.LastRequestID, maxAcked)
	}
	rep.stop()

	first, recs := readLog(t, rDir, failoverPool)
	if first != 1 {
		t.Fatalf("promoted log starts at seq %d; want 1 (keep_segments should keep everything)", first)
	}
	logged := map[uint64]string{}
	drawn := map[string]int64{}
	seeded := map[string]int64{}
	epochRecs := 0
	for i, r := range recs {
		if r.seq != uint64(i+1) {
			t.Fatalf("promoted log: record %d has seq %d (gap or duplicate)", i, r.seq)
		}
		switch r.kind {
		case wal.KindAdd:
			seeded[r.item] = r.qty
		case wal.KindDraw, wal.KindDrawFailed:
			if prev, dup := logged[r.reqID]; dup {
				t.Fatalf("promoted log: request id %d twice (%s, then %s at seq %d)", r.reqID, prev, r.item, r.seq)
			}
			logged[r.reqID] = r.item
			if r.kind == wal.KindDraw {
				drawn[r.item]++
			}
		case wal.KindEpoch:
			epochRecs++
		case wal.KindKey: // idempotency keys (none sent here): nothing to count
		default:
			t.Fatalf("promoted log: unexpected record %+v", r)
		}
	}
	if fmt.Sprint(seeded) != fmt.Sprint(failoverInitial) {
		t.Fatalf("seed records %v, want %v", seeded, failoverInitial)
	}
	if epochRecs != 1 {
		t.Errorf("promoted log holds %d EPOCH records, want 1 (the promotion)", epochRecs)
	}
	if uint64(len(recs)) != promoted.Seq {
		t.Errorf("promoted log ends at seq %d, its state says %d", len(recs), promoted.Seq)
	}
	missing := 0
	for id, item := range acked {
		if got, ok := logged[id]; !ok || got != item {
			if missing < 10 {
				t.Errorf("acknowledged draw %d -> %s: in the promoted log as %q (present %v)", id, item, got, ok)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged draws missing or different in the promoted replica", missing, len(acked))
	}
	q := promoted.quantities()
	for id, init := range failoverInitial {
		if q[id] < 0 {
			t.Errorf("item %s: quantity %d (over-issued)", id, q[id])
		}
		if init-drawn[id] != q[id] {
			t.Errorf("item %s: initial %d - %d drawn in the log = %d, but %d remain", id, init, drawn[id], init-drawn[id], q[id])
		}
	}
	if uint64(len(logged)) != promoted.LastRequestID {
		t.Errorf("%d draws in the promoted log, last_request_id %d", len(logged), promoted.LastRequestID)
	}
	t.Logf("promoted log: %d records, %d draws (%d acknowledged, %d more the clients never saw answered), gold left %d",
		len(recs), len(logged), len(acked), len(logged)-len(acked), q["gold"])

	// The promoted node, restarted alone without min_sync, draws above every
	// acknowledged id, in the promoted epoch.
	alone := startServer(t, bin, rDir, aloneCfg)
	next := httpDraw(t, alone.addr, failoverPool, 1)
	if next[0].RequestID <= maxAcked || next[0].RequestID <= promoted.LastRequestID {
		t.Fatalf("next id from the promoted node %d, not above acknowledged %d / promoted %d",
			next[0].RequestID, maxAcked, promoted.LastRequestID)
	}
	after := getEpochPool(t, alone.addr, failoverPool)
	if after.Epoch != pr.Epoch {
		t.Fatalf("after the restart the pool is in epoch %d, want %d", after.Epoch, pr.Epoch)
	}
	if after.LastRequestID != next[0].RequestID {
		t.Errorf("after one draw last_request_id %d, want %d", after.LastRequestID, next[0].RequestID)
	}
	// The restart kept the promoted catalog (the config did not reseed it):
	// only the drawn item, if any, moved by one.
	qa := after.quantities()
	for id, was := range q {
		want := was
		if next[0].Error == "" && id == next[0].ItemID {
			want--
		}
		if qa[id] != want {
			t.Errorf("after the restart and one draw (%+v) item %s has %d, want %d", next[0], id, qa[id], want)
		}
	}
	alone.stop()
}

func (p e2eEpochPool) quantities() map[string]int64 {
	m := map[string]int64{}
	for _, it := range p.Items {
		m[it.ID] = it.Quantity
	}
	return m
}
