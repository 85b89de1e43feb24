package server

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/internal/config"
)

// refusedPool reports whether the node's follower says pool was refused
// by its upstream, and why.
func refusedPool(t *testing.T, ts *testServer, pool string) (string, bool) {
	t.Helper()
	for _, p := range replicationJSON(t, ts).Pools {
		if p.Name == pool && p.Refused != "" {
			return p.Refused, true
		}
	}
	return "", false
}

// Issue 8, defect 4: two replicas of one primary promoted apart (a split
// brain) used to start the same epoch, so a follower of one, switched to
// the other, found the same epoch at its last seq there and silently
// applied the other history on top of its own. Judged by (epoch, seq) with
// unique epochs, it refuses, and its log stays as it was.
func TestFollowerRefusesTheOtherSideOfASplitBrain(t *testing.T) {
	admin := func(c *config.Config) { c.AdminToken = "adm" }
	a := startNode(t, "", "", admin)
	b := startNode(t, "", a.srv.Addr().String(), admin)
	c := startNode(t, "", a.srv.Addr().String(), admin)
	drawLoad(t, a, "prizes", 2, 20, 2)
	waitSame(t, "prizes", a, b, c)
	stopNode(t, a)
	for _, n := range []*testServer{b, c} {
		if code, body := n.do("POST", "/v1/promote", "adm", ""); code != http.StatusOK {
			t.Fatalf("promote %s: %d %s", n.srv.Addr(), code, body)
		}
	}
	if eb, ec := b.getPool("prizes", "").Epoch, c.getPool("prizes", "").Epoch; eb == ec {
		t.Fatalf("two promotions from one primary share epoch %d", eb)
	}

	// D follows B and holds B's draws after the promotion.
	ddir := t.TempDir()
	d := startNode(t, ddir, b.srv.Addr().String(), admin)
	for range 3 {
		b.draw("prizes", "", `{"count":1}`)
	}
	onB := waitSame(t, "prizes", b, d)
	stopNode(t, d)
	// C takes more draws than B, so its log runs past D's.
	for range 10 {
		c.draw("prizes", "", `{"count":1}`)
	}
	onC := c.getPool("prizes", "")
	if onC.Seq <= onB.Seq {
		t.Fatalf("test setup: C at seq %d, not past D's %d", onC.Seq, onB.Seq)
	}

	// D is repointed at C: it must refuse, not apply C's history.
	d2 := startNode(t, ddir, c.srv.Addr().String(), admin)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if why, ok := refusedPool(t, d2, "prizes"); ok {
			if !strings.Contains(why, "same generation") {
				t.Fatalf("refused for another reason: %s", why)
			}
			break
		}
		if got, _ := d2.getPoolMaybe("prizes"); got.Seq != onB.Seq || time.Now().After(deadline) {
			t.Fatalf("the follower of one side of a split brain took the other's history: seq %d -> %d (other side at %d)\n%s",
				onB.Seq, got.Seq, onC.Seq, d2.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, _ := d2.getPoolMaybe("prizes")
	files, _ := filepath.Glob(filepath.Join(ddir, "prizes", "divergent-*.log"))
	if got.Seq != onB.Seq || got.StateDigest != onB.StateDigest || len(files) != 0 {
		t.Fatalf("follower changed: seq %d digest %s (was %d %s), %d divergent files", got.Seq, got.StateDigest,
			onB.Seq, onB.StateDigest, len(files))
	}
}

// getPoolMaybe is getPool that tolerates a 503 (a pool reopening).
func (ts *testServer) getPoolMaybe(pool string) (httpPool, bool) {
	code, body := ts.do("GET", "/v1/pools/"+pool, "", "")
	var p httpPool
	if code != http.StatusOK {
		return p, false
	}
	decodeStrict(ts.t, body, &p)
	return p, true
}

// Issue 8, defect 5: a node whose log is empty (set aside when it
// recovered from a snapshot the log no longer reached) answered StreamWAL
// with UNAVAILABLE, so a new replica retried forever. It must send the
// replica to its snapshot instead.
func TestReplicaBootstrapsFromANodeWithAnEmptyLog(t *testing.T) {
	snap := func(c *config.Config) { c.SnapshotEvery = 20 }
	pdir := t.TempDir()
	p := startNode(t, pdir, "", snap)
	addr := p.srv.Addr().String()
	drawLoad(t, p, "prizes", 2, 40, 2)
	stopNode(t, p)
	// The log goes aside; recovery continues from the newest snapshot.
	if err := os.Rename(filepath.Join(pdir, "prizes", "wal"), filepath.Join(pdir, "prizes", "wal.lost")); err != nil {
		t.Fatal(err)
	}
	p2 := startNode(t, pdir, "", func(c *config.Config) { snap(c); c.Listen = addr })
	if e, err := p2.srv.pools.Load().get("prizes"); err != nil || e.FirstLogSeq() != 0 || e.LastSeq() == 0 {
		t.Fatalf("test setup: the restarted primary should have an empty log after a snapshot (%v)", err)
	}
	r := startNode(t, "", addr, snap)
	waitSame(t, "prizes", p2, r)
	drawLoad(t, p2, "prizes", 1, 5, 1)
	waitSame(t, "prizes", p2, r)
	waitSame(t, "other", p2, r)
}
