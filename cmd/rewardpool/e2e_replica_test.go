package main

// End-to-end replication test: a primary and a replica as real processes
// on loopback. The replica is killed with SIGKILL while the primary is under
// load from 8 HTTP clients, restarted on the same data directory, and must
// catch up to the primary's seq and state digest with a log that has no gap,
// no duplicate, and every draw a client saw acknowledged.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/wal"
)

const (
	e2eReplToken = "e2e-repl-token"
	replPool     = "load"
)

const replPrimaryConfig = `admin_token: ` + e2eAdminToken + `
durability: always
wal:
  keep_segments: 1000
replication:
  token: ` + e2eReplToken + `
pools:
  - name: ` + replPool + `
    items:
      - {id: gold, quantity: 3000, weight: 1}
      - {id: silver, quantity: 5000, weight: 2}
      - {id: bronze, quantity: 8000, weight: 3}
`

// The replica's pools section is ignored (the pools come from the primary);
// it keeps every segment so its whole log can be checked afterwards.
const replReplicaConfig = `admin_token: ` + e2eAdminToken + `
durability: always
wal:
  keep_segments: 1000
replication:
  token: ` + e2eReplToken + `
`

// startReplicaProc is startServer for `serve --replica-of primary`.
func startReplicaProc(t *testing.T, bin, dataDir, cfgPath, primary string) *serverProc {
	t.Helper()
	s := startListening(t, bin, dataDir, cfgPath, "--replica-of", primary)
	s.waitLog(regexp.MustCompile(`msg="rewardpool: ready"`), startTimeout)
	return s
}

type e2eReplPool struct {
	Name          string `json:"name"`
	LastRequestID uint64 `json:"last_request_id"`
	Seq           uint64 `json:"seq"`
	StateDigest   string `json:"state_digest"`
}

// poolSeq reads GET /v1/pools/{pool}; ok is false on any failure (a
// replica may answer 503 while it starts).
func poolSeq(addr, pool string) (e2eReplPool, bool) {
	code, b, err := httpDo("GET", "http://"+addr+"/v1/pools/"+pool, "", "")
	var p e2eReplPool
	if err != nil || code != http.StatusOK || json.Unmarshal(b, &p) != nil {
		return p, false
	}
	return p, true
}

type e2eReplView struct {
	Role    string `json:"role"`
	Primary string `json:"primary"`
	Pools   []struct {
		Name       string `json:"name"`
		AppliedSeq uint64 `json:"applied_seq"`
		PrimarySeq uint64 `json:"primary_seq"`
		Connected  bool   `json:"connected"`
	} `json:"pools"`
}

// appliedSeq reads the replica's applied seq of pool from /v1/replication.
func appliedSeq(t *testing.T, addr, pool string) (uint64, bool) {
	t.Helper()
	code, b, err := httpDo("GET", "http://"+addr+"/v1/replication", "", "")
	if err != nil || code != http.StatusOK {
		return 0, false
	}
	var v e2eReplView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("/v1/replication: %v: %s", err, b)
	}
	if v.Role != "replica" {
		t.Fatalf("/v1/replication on the replica: role %q: %s", v.Role, b)
	}
	for _, p := range v.Pools {
		if p.Name == pool {
			return p.AppliedSeq, p.Connected
		}
	}
	return 0, false
}

// pollUntil calls cond every few milliseconds until it is true or the
// timeout passes (then it fails with what()).
func pollUntil(t *testing.T, timeout time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what())
		}
		<-tick.C
	}
}

// logRec is what the check keeps of one WAL record.
type logRec struct {
	seq   uint64
	kind  wal.Kind
	reqID uint64
	item  string // draws: item id or "FAILED"; catalog changes: item id
	qty   int64
}

// readLog reads a stopped node's log of pool with the wal package, from its
// first kept seq, resolving draw slots to item ids through the ADD records.
func readLog(t *testing.T, dataDir, pool string) (first uint64, recs []logRec) {
	t.Helper()
	l, err := wal.Open(filepath.Join(dataDir, pool, "wal"), wal.Options{})
	if err != nil {
		t.Fatalf("open log %s: %v", dataDir, err)
	}
	defer l.Close()
	first = l.FirstSeq()
	var slots []string
	err = l.Scan(first, func(r *wal.Record) error {
		lr := logRec{seq: r.Seq, kind: r.Kind, reqID: r.RequestID, item: r.ItemID, qty: r.Quantity}
		switch r.Kind {
		case wal.KindAdd:
			slot := int(r.Item)
			if slot < 0 {
				slot = len(slots)
			}
			for len(slots) <= slot {
				slots = append(slots, "")
			}
			slots[slot] = r.ItemID
		case wal.KindDraw:
			if lr.item == "" {
				if r.Item < 0 || int(r.Item) >= len(slots) {
					return fmt.Errorf("seq %d: draw of unknown slot %d", r.Seq, r.Item)
				}
				lr.item = slots[r.Item]
			}
		case wal.KindDrawFailed:
			lr.item = "FAILED"
		}
		recs = append(recs, lr)
		return nil
	})
	if err != nil {
		t.Fatalf("scan log %s: %v", dataDir, err)
	}
	return first, recs
}

func TestE2EReplica(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	pDir, rDir := filepath.Join(dir, "primary"), filepath.Join(dir, "replica")
	pCfg := writeConfig(t, t.TempDir(), replPrimaryConfig)
	rCfg := writeConfig(t, t.TempDir(), replReplicaConfig)

	primary := startServer(t, bin, pDir, pCfg)
	rep := startReplicaProc(t, bin, rDir, rCfg, primary.addr)

	// Load: 8 clients drawing 1-3 at a time until told to stop.
	const (
		clients     = 8
		maxRequests = 20000 // per client, a bound on the loop
	)
	load := startHTTPLoad(t, "http://"+primary.addr+"/v1/pools/"+replPool+"/draw", clients, maxRequests, 7, false)
	defer load.stop()
	acked, n := load.acked, &load.n
	stopLoad, loadOK := load.stop, load.errText
	waitDraws := func(target int64) {
		t.Helper()
		pollUntil(t, 60*time.Second, func() bool {
			if loadOK() != "" {
				t.Fatal(loadOK())
			}
			return n.Load() >= target
		}, func() string { return fmt.Sprintf("%d of %d draws acknowledged", n.Load(), target) })
	}

	// Phase 1: the replica follows, some hundreds of draws in.
	var seqAtKill uint64
	pollUntil(t, 60*time.Second, func() bool {
		if loadOK() != "" {
			t.Fatal(loadOK())
		}
		s, _ := appliedSeq(t, rep.addr, replPool)
		seqAtKill = s
		return s > 0 && n.Load() >= 500
	}, func() string { return fmt.Sprintf("replica applied seq %d, %d draws", seqAtKill, n.Load()) })

	// Phase 2: kill -9 the replica mid-stream; the primary keeps drawing.
	drawsAtKill := n.Load()
	rep.kill()
	p, _ := poolSeq(primary.addr, replPool)
	t.Logf("replica killed at applied seq >= %d (primary at seq %d, %d draws acknowledged)", seqAtKill, p.Seq, drawsAtKill)
	waitDraws(drawsAtKill + 1000)

	// Phase 3: restart on the same data directory, under load.
	rep2 := startReplicaProc(t, bin, rDir, rCfg, primary.addr)
	m := rep2.waitLog(regexp.MustCompile(`msg="replica: following primary".* pool=`+replPool+` .*from_seq=(\d+)`), startTimeout)
	from, _ := strconv.ParseUint(m[1], 10, 64)
	if from <= 1 {
		t.Errorf("restarted replica resumed from seq %d, not from its own log", from)
	}
	drawsAtRestart := n.Load()
	waitDraws(drawsAtRestart + 500)
	stopLoad()
	if e := loadOK(); e != "" {
		t.Fatal(e)
	}

	// Phase 4: the replica catches up to the primary's seq and digest.
	want, ok := poolSeq(primary.addr, replPool)
	if !ok {
		t.Fatal("GET pool on the primary failed")
	}
	var got e2eReplPool
	pollUntil(t, 60*time.Second, func() bool {
		got, _ = poolSeq(rep2.addr, replPool)
		if got.Seq > want.Seq {
			t.Fatalf("replica at seq %d, beyond the primary's %d", got.Seq, want.Seq)
		}
		return got.Seq == want.Seq
	}, func() string { return fmt.Sprintf("replica at seq %d, primary at %d", got.Seq, want.Seq) })
	if got.StateDigest != want.StateDigest || got.LastRequestID != want.LastRequestID {
		t.Fatalf("at seq %d: replica digest %s last id %d, primary %s %d", want.Seq,
			got.StateDigest, got.LastRequestID, want.StateDigest, want.LastRequestID)
	}
	t.Logf("%d draws acknowledged (%d after the kill, %d after the restart); both at seq %d, digest %s, resumed from seq %d",
		len(acked), n.Load()-drawsAtKill, n.Load()-drawsAtRestart, want.Seq, want.StateDigest, from)

	rep2.stop()
	primary.stop()
	if rep2.waitErr != nil || primary.waitErr != nil {
		t.Fatalf("exit: replica %v, primary %v", rep2.waitErr, primary.waitErr)
	}

	// The replica's log: consecutive seqs from 1 to the primary's seq, each
	// request id once, every acknowledged draw with the same item, and the
	// same records as the primary's log.
	rFirst, rLog := readLog(t, rDir, replPool)
	pFirst, pLog := readLog(t, pDir, replPool)
	if rFirst != 1 || pFirst != 1 {
		t.Fatalf("first seq: replica %d, primary %d; want 1 (keep_segments should keep everything)", rFirst, pFirst)
	}
	logged := map[uint64]string{}
	for i, r := range rLog {
		if r.seq != uint64(i+1) {
			t.Fatalf("replica log: record %d has seq %d (gap or duplicate)", i, r.seq)
		}
		if r.kind == wal.KindDraw || r.kind == wal.KindDrawFailed {
			if prev, dup := logged[r.reqID]; dup {
				t.Fatalf("replica log: request id %d twice (%s at an earlier seq, %s at seq %d)", r.reqID, prev, r.item, r.seq)
			}
			logged[r.reqID] = r.item
		}
	}
	if uint64(len(rLog)) != want.Seq {
		t.Fatalf("replica log ends at seq %d, the primary was at %d", len(rLog), want.Seq)
	}
	missing := 0
	for id, item := range acked {
		if got, ok := logged[id]; !ok || got != item {
			if missing < 10 {
				t.Errorf("acknowledged draw %d -> %s: in the replica's log as %q (present %v)", id, item, got, ok)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged draws missing or different in the replica's log", missing, len(acked))
	}
	if len(pLog) != len(rLog) {
		t.Fatalf("primary log has %d records, replica %d", len(pLog), len(rLog))
	}
	for i := range pLog {
		if pLog[i] != rLog[i] {
			t.Fatalf("logs differ at seq %d: primary %+v, replica %+v", pLog[i].seq, pLog[i], rLog[i])
		}
	}
	t.Logf("replica log: %d records, %d draws, all %d acknowledged draws present; identical to the primary's", len(rLog), len(logged), len(acked))
}
