package rewardpool

import (
	"testing"
	"time"
)

// TestDrawDoesNotAllocate checks the hot path: a caller that reuses its
// result slice draws with no allocation at all, on its side or the writer's.
// The race detector makes sync.Pool drop items on purpose, so this runs
// without -race (make test runs it in a separate pass).
func TestDrawDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race; make test runs this without it")
	}
	for _, count := range []int{1, 100} {
		o := testOptions()
		o.Items = benchItems(1000)
		o.Durability = DurabilityNone
		o.SnapshotEvery = 1 << 40
		e := mustOpen(t, t.TempDir(), o)
		dst := make([]DrawResult, 0, count)
		for range 100 { // warm up pools and buffers
			dst, _ = e.DrawInto(ctx, dst[:0], DrawRequest{Count: count})
		}
		allocs := testing.AllocsPerRun(2000, func() {
			var err error
			if dst, err = e.DrawInto(ctx, dst[:0], DrawRequest{Count: count}); err != nil {
				t.Fatal(err)
			}
		})
		e.Close()
		// A GC can empty sync.Pool mid-run and cost one call object; allow
		// that, but not an allocation per draw.
		if allocs > 0.05 {
			t.Errorf("count=%d: %.3f allocations per request, want 0", count, allocs)
		}
	}
}

// TestRulesDrawDoesNotAllocate: a player who has drawn before draws from a
// pool with rules without allocating either (pity texts are made once).
func TestRulesDrawDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race; make test runs this without it")
	}
	now := modelStart.Add(time.Hour)
	o := rulesOptions(&now)
	o.Rules = hardOnly()
	o.Durability = DurabilityNone
	o.SnapshotEvery = 1 << 40
	e := mustOpen(t, t.TempDir(), o)
	defer e.Close()
	dst := make([]DrawResult, 0, 3)
	req := DrawRequest{Count: 3, UserID: "alice"}
	for range 100 {
		dst, _ = e.DrawInto(ctx, dst[:0], req)
	}
	allocs := testing.AllocsPerRun(2000, func() {
		var err error
		if dst, err = e.DrawInto(ctx, dst[:0], req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.05 {
		t.Errorf("%.3f allocations per request, want 0", allocs)
	}
}
