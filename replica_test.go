package rewardpool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rewardpool/rewardpool/snapshot"
	"github.com/rewardpool/rewardpool/wal"
)

// feed collects a primary's committed batches (copies) in order.
type feed struct {
	mu      sync.Mutex
	batches [][]wal.Record
}

func (f *feed) committed(recs []wal.Record) {
	f.mu.Lock()
	f.batches = append(f.batches, append([]wal.Record(nil), recs...))
	f.mu.Unlock()
}

func (f *feed) take() [][]wal.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.batches
	f.batches = nil
	return b
}

func replicaOptions() Options {
	o := testOptions()
	o.Items = nil
	o.Replica = true
	return o
}

func mustDigest(t *testing.T, e *Engine) (uint64, string) {
	t.Helper()
	seq, d, err := e.Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return seq, d
}

// A replica that applies its primary's batches in order has the same
// state: equal digests at equal seq, across a replica restart.
func TestReplicaFollowsPrimary(t *testing.T) {
	f := &feed{}
	po := testOptions()
	po.Committed = f.committed
	p := mustOpen(t, t.TempDir(), po)
	defer p.Close()
	rdir := t.TempDir()
	r := mustOpen(t, rdir, replicaOptions())

	// The seed batch was written before the hook could see it: ship the
	// primary's log from seq 1, as a replica's stream would.
	var seedRecs []wal.Record
	if err := p.ScanLog(1, func(rec *wal.Record) error { seedRecs = append(seedRecs, *rec); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, seedRecs); err != nil {
		t.Fatalf("apply seed: %v", err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				key := ""
				if i%7 == 0 {
					key = fmt.Sprintf("g%d-%d", g, i)
				}
				if _, err := p.Draw(ctx, DrawRequest{Count: 1 + i%3, IdempotencyKey: key}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := p.SetItem(ctx, Item{ID: "diamond", Quantity: 7, Weight: WeightUnit}); err != nil {
		t.Fatal(err)
	}
	if err := p.AddItem(ctx, Item{ID: "ruby", Quantity: 2, Weight: 3}); err != nil {
		t.Fatal(err)
	}
	for i, b := range f.take() {
		if err := r.Apply(ctx, b); err != nil {
			t.Fatalf("apply batch %d: %v", i, err)
		}
	}
	ps, pd := mustDigest(t, p)
	rs, rd := mustDigest(t, r)
	if ps != rs || pd != rd {
		t.Fatalf("replica seq %d digest %s, primary seq %d digest %s", rs, rd, ps, pd)
	}
	// Replicas refuse writes.
	if _, err := r.Draw(ctx, DrawRequest{}); !errors.Is(err, ErrReplica) {
		t.Fatalf("Draw on replica = %v, want ErrReplica", err)
	}
	if err := r.AddItem(ctx, Item{ID: "x", Quantity: 1, Weight: 1}); !errors.Is(err, ErrReplica) {
		t.Fatalf("AddItem on replica = %v, want ErrReplica", err)
	}
	if err := p.Apply(ctx, seedRecs); !errors.Is(err, ErrNotReplica) {
		t.Fatalf("Apply on primary = %v, want ErrNotReplica", err)
	}
	// The replica's copy is durable: reopen and compare again.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = mustOpen(t, rdir, replicaOptions())
	defer r.Close()
	if rs2, rd2 := mustDigest(t, r); rs2 != ps || rd2 != pd {
		t.Fatalf("after replica restart: seq %d digest %s, want %d %s", rs2, rd2, ps, pd)
	}
	// Idempotency keys came along: the primary's answer is the replica's.
	pst := mustState(t, p)
	if got := mustState(t, r); fmt.Sprint(got) != fmt.Sprint(pst) {
		t.Fatalf("replica state %+v, primary %+v", got, pst)
	}
}

// A bad batch (a gap, or a draw the state cannot take) is refused whole and
// changes nothing; the next good batch applies.
func TestReplicaRejectsBadBatches(t *testing.T) {
	f := &feed{}
	po := testOptions()
	po.Committed = f.committed
	p := mustOpen(t, t.TempDir(), po)
	defer p.Close()
	r := mustOpen(t, t.TempDir(), replicaOptions())
	defer r.Close()
	var seedRecs []wal.Record
	p.ScanLog(1, func(rec *wal.Record) error { seedRecs = append(seedRecs, *rec); return nil })
	if err := r.Apply(ctx, seedRecs); err != nil {
		t.Fatal(err)
	}
	mustDraw(t, p, DrawRequest{Count: 3, IdempotencyKey: "k"})
	batch := f.take()[0]
	_, before := mustDigest(t, r)

	gap := append([]wal.Record(nil), batch...)
	for i := range gap {
		gap[i].Seq += 5
	}
	stock := append([]wal.Record(nil), batch...)
	for i := range stock {
		if stock[i].Kind == wal.KindDraw {
			stock[i].Item, stock[i].ItemID = 99, "" // no such slot
		}
	}
	if batch[0].Kind != wal.KindKey || len(batch) != 4 {
		t.Fatalf("expected KEY + 3 draws, got %v", batch)
	}
	split := append([]wal.Record(nil), batch[:2]...) // ends inside the key's draws
	for name, bad := range map[string][]wal.Record{"gap": gap, "unknown slot": stock, "split key": split} {
		if len(bad) > 0 {
			bad[len(bad)-1].Commit = true
		}
		if err := r.Apply(ctx, bad); !errors.Is(err, ErrRecovery) {
			t.Errorf("%s: Apply = %v, want ErrRecovery", name, err)
		}
		if _, d := mustDigest(t, r); d != before {
			t.Fatalf("%s: a refused batch changed the replica", name)
		}
	}
	if err := r.Apply(ctx, batch); err != nil {
		t.Fatalf("good batch after refused ones: %v", err)
	}
	_, pd := mustDigest(t, p)
	if _, rd := mustDigest(t, r); rd != pd {
		t.Fatalf("replica digest %s, primary %s", rd, pd)
	}
}

// A replica bootstraps from a copy of the primary's snapshot, then applies
// the records after it; promoted, it starts a new epoch and continues the
// request ids above everything it has.
func TestReplicaBootstrapAndPromote(t *testing.T) {
	pdir := t.TempDir()
	f := &feed{}
	po := testOptions()
	po.Committed = f.committed
	p := mustOpen(t, pdir, po)
	for range 10 {
		mustDraw(t, p, DrawRequest{Count: 2})
	}
	if err := p.Close(); err != nil { // writes a snapshot
		t.Fatal(err)
	}
	f.take()
	p = mustOpen(t, pdir, po)
	defer p.Close()
	for range 5 {
		mustDraw(t, p, DrawRequest{})
	}

	rdir := t.TempDir()
	infos, _ := snapshot.List(filepath.Join(pdir, snapDir))
	snap := infos[len(infos)-1]
	b, err := os.ReadFile(filepath.Join(pdir, snapDir, snap.Name))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(rdir, snapDir), 0o755)
	if err := os.WriteFile(filepath.Join(rdir, snapDir, snap.Name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustOpen(t, rdir, replicaOptions())
	defer r.Close()
	for _, batch := range f.take() {
		if err := r.Apply(ctx, batch); err != nil {
			t.Fatalf("apply after snapshot: %v", err)
		}
	}
	ps, pd := mustDigest(t, p)
	if rs, rd := mustDigest(t, r); rs != ps || rd != pd {
		t.Fatalf("bootstrapped replica at %d %s, primary at %d %s", rs, rd, ps, pd)
	}
	last := mustState(t, p).LastRequestID

	epoch, err := r.Promote(ctx)
	if err != nil || EpochGeneration(epoch) != 1 || epoch <= 1 {
		t.Fatalf("Promote = %d, %v; want an epoch of generation 1", epoch, err)
	}
	if r.Epoch() != epoch {
		t.Fatalf("Epoch() = %d after promotion, want %d", r.Epoch(), epoch)
	}
	if r.IsReplica() {
		t.Fatal("still a replica after Promote")
	}
	res := mustDraw(t, r, DrawRequest{Count: 2})
	if res[0].RequestID != last+1 {
		t.Fatalf("first id after promotion %d, want %d", res[0].RequestID, last+1)
	}
	st := mustState(t, r)
	if st.Epoch != epoch || st.Seq != ps+3 {
		t.Fatalf("after promotion: epoch %d seq %d, want %d and %d", st.Epoch, st.Seq, epoch, ps+3)
	}
	if _, err := r.Promote(ctx); !errors.Is(err, ErrNotReplica) {
		t.Fatalf("second Promote = %v, want ErrNotReplica", err)
	}
	// The new epoch survives a restart, opened as a primary.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	ro := replicaOptions()
	ro.Replica = false
	r = mustOpen(t, rdir, ro)
	if st := mustState(t, r); st.Epoch != epoch || st.LastRequestID != last+2 {
		t.Fatalf("after restart: %+v", st)
	}
}

// Issue 8, defect 4: two replicas of one primary, both promoted (a split
// brain), must start two different epochs of the same generation, so a
// follower can tell their histories apart by (epoch, seq); each is newer
// than the primary's epoch.
func TestPromotionsNeverShareAnEpoch(t *testing.T) {
	p := mustOpen(t, t.TempDir(), testOptions())
	defer p.Close()
	var recs []wal.Record
	if err := p.ScanLog(1, func(rec *wal.Record) error { recs = append(recs, *rec); return nil }); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i := range 8 {
		r := mustOpen(t, t.TempDir(), replicaOptions())
		if err := r.Apply(ctx, recs); err != nil {
			t.Fatalf("replica %d: apply: %v", i, err)
		}
		epoch, err := r.Promote(ctx)
		if err != nil {
			t.Fatalf("replica %d: promote: %v", i, err)
		}
		if seen[epoch] {
			t.Fatalf("replica %d: epoch %d was already started by another promotion", i, epoch)
		}
		seen[epoch] = true
		if epoch <= p.Epoch() || EpochGeneration(epoch) != EpochGeneration(p.Epoch())+1 {
			t.Fatalf("replica %d: epoch %d (generation %d) after the primary's %d", i, epoch, EpochGeneration(epoch), p.Epoch())
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
