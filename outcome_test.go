package rewardpool

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/rewardpool/rewardpool/wal"
)

// Regression (issue 7, defect 6): after a failed fsync the engine answered
// ErrWAL, documented as "nothing in the failed batch was applied", yet the
// batch was in the file and came back on reopen. Here an item change whose
// fsync fails is answered "outcome unknown", and the reopened engine shows
// why: the change was applied after all.
func TestFailedSyncIsOutcomeUnknownNotNothingApplied(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("fsync: EIO")
	var failing atomic.Bool
	o := testOptions()
	o.WALHooks = wal.Hooks{Sync: func() error {
		if failing.Load() {
			return boom
		}
		return nil
	}}
	e := mustOpen(t, dir, o)
	failing.Store(true)
	err := e.AddItem(ctx, Item{ID: "ruby", Quantity: 7, Weight: WeightUnit})
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, boom) {
		t.Errorf("AddItem with failing fsync: err = %v, want ErrOutcomeUnknown wrapping the cause", err)
	}
	if errors.Is(err, ErrWAL) {
		t.Errorf("AddItem with failing fsync: err = %v claims ErrWAL (not applied), but the change is in the log", err)
	}
	e.Close()

	o.WALHooks = wal.Hooks{}
	e = mustOpen(t, dir, o)
	defer e.Close()
	if q, ok := quantities(mustState(t, e))["ruby"]; !ok || q != 7 {
		t.Fatalf("after reopen ruby = %d (present %v): the failed-fsync batch was expected to be replayed", q, ok)
	}
}
