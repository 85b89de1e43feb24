package main

// End-to-end tests of the operator's replication actions with real
// processes on loopback: restarting a former primary with --replica-of,
// and the failover drill (e2e_drill_test.go). They share one binary.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/wal"
)

func TestE2EReplicationOps(t *testing.T) {
	bin := buildBinary(t)
	t.Run("RestartAsReplicaOfABehindReplica", func(t *testing.T) { testRestartAsReplicaOfBehind(t, bin) })
	t.Run("FailoverDrill", func(t *testing.T) { testFailoverDrill(t, bin) })
}

// logsMatch reports whether the process has logged a line matching re.
func (s *serverProc) logsMatch(re *regexp.Regexp) bool { return re.MatchString(s.log.String()) }

// Issue 8, defect 2: a primary restarted with --replica-of a replica that
// is merely behind (same epoch, never promoted) took "behind" for
// divergence and cut its own tail, so draws it had acknowledged survived
// only in divergent-*.log; then the two nodes followed each other. Now the
// behind replica is refused with a clear error, nothing is cut, and the
// replica (pointed back at the former primary's address) is refused as a
// cycle.
func testRestartAsReplicaOfBehind(t *testing.T, bin string) {
	dir := t.TempDir()
	pDir, rDir := filepath.Join(dir, "primary"), filepath.Join(dir, "replica")
	pCfg := writeConfig(t, t.TempDir(), replPrimaryConfig)
	rCfg := writeConfig(t, t.TempDir(), replReplicaConfig)
	primary := startServer(t, bin, pDir, pCfg)
	pAddr := primary.addr
	rep := startReplicaProc(t, bin, rDir, rCfg, pAddr)

	acked := map[uint64]string{}
	for range 20 {
		recordAcks(t, acked, httpDraw(t, pAddr, replPool, 1))
	}
	want, _ := poolSeq(pAddr, replPool)
	var applied uint64
	pollUntil(t, 20*time.Second, func() bool { applied, _ = appliedSeq(t, rep.addr, replPool); return applied == want.Seq },
		func() string { return fmt.Sprintf("replica at %d, primary at %d", applied, want.Seq) })

	// The replica dies; the primary acknowledges more draws it never gets.
	rep.kill()
	for range 20 {
		recordAcks(t, acked, httpDraw(t, pAddr, replPool, 1))
	}
	before, _ := poolSeq(pAddr, replPool)
	primary.stop()

	// The replica comes back (its primary is down: it serves what it has),
	// then the former primary is restarted, on its old address, as a
	// replica of the replica: an operator's mistake.
	rep2 := startReplicaProc(t, bin, rDir, rCfg, pAddr)
	behind, _ := poolSeq(rep2.addr, replPool)
	if behind.Seq >= before.Seq {
		t.Fatalf("test setup: replica at seq %d, not behind the primary's %d", behind.Seq, before.Seq)
	}
	p2 := startListening(t, bin, pDir, pCfg, "--listen", pAddr, "--replica-of", rep2.addr)
	p2.waitLog(regexp.MustCompile(`msg="rewardpool: ready"`), startTimeout)

	refusedBehind := regexp.MustCompile(`refused to stream this pool.* pool=` + replPool + `.*behind`)
	refusedCycle := regexp.MustCompile(`refused to stream this pool.* pool=` + replPool + `.*cycle`)
	cut := regexp.MustCompile(`cut the tail`)
	pollUntil(t, 15*time.Second, func() bool {
		if p2.logsMatch(cut) || rep2.logsMatch(cut) {
			t.Fatalf("a node cut its tail:\nformer primary:\n%s\nreplica:\n%s", p2.log.String(), rep2.log.String())
		}
		return p2.logsMatch(refusedBehind) && rep2.logsMatch(refusedCycle)
	}, func() string {
		return fmt.Sprintf("no clear refusals (behind on the former primary, cycle on the replica):\nformer primary:\n%s\nreplica:\n%s",
			p2.log.String(), rep2.log.String())
	})
	if got, ok := poolSeq(pAddr, replPool); !ok || got.Seq != before.Seq || got.StateDigest != before.StateDigest {
		t.Fatalf("former primary now at seq %d digest %s, was %d %s", got.Seq, got.StateDigest, before.Seq, before.StateDigest)
	}
	if got, ok := poolSeq(rep2.addr, replPool); !ok || got.Seq != behind.Seq {
		t.Fatalf("replica now at seq %d, was %d", got.Seq, behind.Seq)
	}
	p2.stop()
	rep2.stop()

	if files, _ := filepath.Glob(filepath.Join(pDir, replPool, "divergent-*.log")); len(files) != 0 {
		b, _ := os.ReadFile(files[0])
		t.Fatalf("former primary saved a divergent tail %v:\n%s", files, b)
	}
	_, recs := readLog(t, pDir, replPool)
	logged := map[uint64]string{}
	for _, r := range recs {
		if r.kind == wal.KindDraw || r.kind == wal.KindDrawFailed {
			logged[r.reqID] = r.item
		}
	}
	for id, item := range acked {
		if logged[id] != item {
			t.Errorf("acknowledged draw %d -> %s: in the former primary's log as %q", id, item, logged[id])
		}
	}
	t.Logf("former primary kept seq %d (%d acknowledged draws); the behind replica stayed at %d; refusals: %q",
		before.Seq, len(acked), behind.Seq, strings.TrimSpace(refusedBehind.FindString(p2.log.String())))
}
