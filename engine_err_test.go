package rewardpool

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/rewardpool/rewardpool/wal"
)

// Err reports a failed log (readiness depends on it): nil while the log
// works, the failure wrapped in ErrWAL once a sync failed, and nil again
// after a reopen.
func TestErrReportsLogFailure(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("injected ENOSPC")
	var fail atomic.Bool
	o := testOptions()
	o.walHooks = wal.Hooks{Sync: func() error {
		if fail.Load() {
			return boom
		}
		return nil
	}}
	e := mustOpen(t, dir, o)
	mustDraw(t, e, DrawRequest{})
	if err := e.Err(); err != nil {
		t.Fatalf("Err on a healthy engine: %v", err)
	}
	fail.Store(true)
	if _, err := e.Draw(context.Background(), DrawRequest{}); err == nil {
		t.Fatal("Draw with failing fsync succeeded")
	}
	if err := e.Err(); !errors.Is(err, ErrWAL) || !errors.Is(err, boom) {
		t.Fatalf("Err after the log failed = %v, want ErrWAL wrapping the cause", err)
	}
	e.Close()
	o.walHooks = wal.Hooks{}
	e = mustOpen(t, dir, o)
	defer e.Close()
	if err := e.Err(); err != nil {
		t.Fatalf("Err after reopening: %v", err)
	}
}
