package rewardpool

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/rewardpool/rewardpool/snapshot"
)

// A snapshot of a big catalog must not copy the catalog, nor encode it
// in memory: each one used to copy every slot (40 bytes each) on the
// writer and build the whole encoding (about 20 bytes a slot, grown by
// doubling) before writing it, which at 1M items was most of the peak RSS
// while drawing. Now the writer copies the counts (8 bytes a slot) and
// the encoding streams to the file.
func TestSnapshotOfBigCatalogAllocatesLittle(t *testing.T) {
	const n = 200_000
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{ID: fmt.Sprintf("item%07d", i), Quantity: 1_000_000, Weight: WeightUnit}
	}
	dir := t.TempDir()
	e, err := Open(dir, Options{Items: items, Logger: quietLogger(), Durability: DurabilityNone})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := e.Draw(ctx, DrawRequest{Count: 100}); err != nil {
			t.Fatal(err)
		}
	}
	// Close writes a snapshot (the first may build what later ones
	// share). Once the writer is gone, the test may call the snapshot
	// path itself, as the writer does: capture, then write.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e.w.seq++ // a new file name; the content is the same state
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := e.writeSnapshot(e.captureState())
	runtime.ReadMemStats(&after)
	if res.err != nil {
		t.Fatal(res.err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a snapshot of %d slots (%d bytes) allocated %d bytes, %.1f per slot", n, res.size, alloc, float64(alloc)/n)
	if perSlot := float64(alloc) / n; perSlot > 12 {
		t.Errorf("a snapshot allocated %.1f bytes per slot, want at most 12 (the counts, 8 a slot)", perSlot)
	}
	// What it wrote reads back as the engine's state.
	st, _, err := snapshot.In(nil, filepath.Join(dir, snapDir)).LoadNewest(nil)
	if err != nil || st == nil {
		t.Fatalf("load the snapshot: %v", err)
	}
	if st.Seq != e.w.seq || len(st.Slots) != n {
		t.Fatalf("snapshot at seq %d with %d slots, want %d and %d", st.Seq, len(st.Slots), e.w.seq, n)
	}
	for i, s := range st.Slots {
		it, removed := e.w.cat.Item(int32(i))
		if s.Item != it || s.Removed != removed {
			t.Fatalf("slot %d: snapshot has %+v, catalog %+v (removed %v)", i, s, it, removed)
		}
	}
}

// Snapshots share the catalog's ids and weights until an admin record
// changes them: a snapshot taken after a change must hold the change, not
// the table an earlier snapshot built.
func TestSnapshotAfterAdminChangeHoldsIt(t *testing.T) {
	dir := t.TempDir()
	items := []Item{
		{ID: "gem", Quantity: 50, Weight: 5 * WeightUnit},
		{ID: "coin", Quantity: 500, Weight: 20 * WeightUnit},
		{ID: "mud", Quantity: Unlimited, Weight: WeightUnit},
	}
	opts := Options{Items: items, Logger: quietLogger(), SnapshotEvery: 1, KeepSegments: 1 << 20}
	e, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	draw := func() {
		t.Helper()
		if _, err := e.Draw(ctx, DrawRequest{Count: 3}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []func() error{
		func() error { return e.PutItem(ctx, Item{ID: "gem", Quantity: 7, Weight: 9 * WeightUnit}) },
		func() error { return e.RemoveItem(ctx, "coin") },
		func() error { return e.PutItem(ctx, Item{ID: "star", Quantity: 3, Weight: 2 * WeightUnit}) },
		func() error { return e.PutItem(ctx, Item{ID: "coin", Quantity: 4, Weight: 3 * WeightUnit}) },
	}
	for i, step := range steps {
		draw() // a snapshot of the catalog before the change
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		draw()
		want, err := e.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The newest snapshot after Close covers the whole state.
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		st, _, err := snapshot.In(nil, filepath.Join(dir, snapDir)).LoadNewest(nil)
		if err != nil || st == nil {
			t.Fatalf("step %d: load the snapshot: %v", i, err)
		}
		var got []Item
		for _, s := range st.Slots {
			if !s.Removed {
				got = append(got, s.Item)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want.Items) || st.Seq != want.Seq {
			t.Fatalf("step %d: the snapshot at seq %d holds %v; the state at seq %d is %v", i, st.Seq, got, want.Seq, want.Items)
		}
		if e, err = Open(dir, opts); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
}
