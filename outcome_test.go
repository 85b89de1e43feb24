package rewardpool

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/rewardpool/rewardpool/internal/fsys/sim"
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
	o.walHooks = wal.Hooks{Sync: func() error {
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

	o.walHooks = wal.Hooks{}
	e = mustOpen(t, dir, o)
	defer e.Close()
	if q, ok := quantities(mustState(t, e))["ruby"]; !ok || q != 7 {
		t.Fatalf("after reopen ruby = %d (present %v): the failed-fsync batch was expected to be replayed", q, ok)
	}
}

// A batch that must first raise the IDENTITY ceilings, where storing them
// fails, never reached the log: its callers get ErrWAL (not applied), not
// ErrOutcomeUnknown, and the reopened engine shows nothing of it.
func TestFailedCeilingRaiseIsNotApplied(t *testing.T) {
	fs := sim.New(1)
	o := testOptions()
	o.fs = fs
	const dir = "/pool"
	e := mustOpen(t, dir, o)
	mustDraw(t, e, DrawRequest{Count: 2})
	before := mustState(t, e)
	// Pretend the ceilings were reached: the next batch must raise them.
	if err := e.onWriter(ctx, func() { e.w.ident.IDCeiling = e.w.reqID }); err != nil {
		t.Fatal(err)
	}
	fs.SetFault(func(op sim.Op, name string) error {
		if strings.Contains(name, identityFile) && (op == sim.OpWrite || op == sim.OpSync) {
			return syscall.EIO
		}
		return nil
	})
	_, err := e.Draw(ctx, DrawRequest{Count: 3, IdempotencyKey: "k"})
	if !errors.Is(err, ErrWAL) || errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, syscall.EIO) {
		t.Errorf("Draw whose ceiling raise failed: err = %v, want ErrWAL (not applied) wrapping EIO", err)
	}
	e.Close()
	fs.SetFault(nil)
	e = mustOpen(t, dir, o)
	defer e.Close()
	if got := mustState(t, e); fmt.Sprint(got.Items) != fmt.Sprint(before.Items) || got.Seq != before.Seq {
		t.Fatalf("after reopen: %+v, want the acknowledged state %+v", got, before)
	}
}

// Under the weaker durability modes a failed write is just as unknown: the
// callers of the batch hear ErrOutcomeUnknown, later calls ErrWAL.
func TestFailedWriteIsOutcomeUnknownInEveryMode(t *testing.T) {
	for _, mode := range []Durability{DurabilityInterval, DurabilityNone} {
		t.Run(string(mode), func(t *testing.T) {
			boom := errors.New("write: ENOSPC")
			var failing atomic.Bool
			o := testOptions()
			o.Durability = mode
			o.walHooks = wal.Hooks{Write: func(p []byte) (int, error) {
				if failing.Load() {
					return len(p) / 3, boom
				}
				return len(p), nil
			}}
			e := mustOpen(t, t.TempDir(), o)
			mustDraw(t, e, DrawRequest{})
			failing.Store(true)
			if _, err := e.Draw(ctx, DrawRequest{Count: 2, IdempotencyKey: "k"}); !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, boom) {
				t.Errorf("Draw with failing write: err = %v, want ErrOutcomeUnknown wrapping the cause", err)
			}
			if _, err := e.Draw(ctx, DrawRequest{}); !errors.Is(err, ErrWAL) || errors.Is(err, ErrOutcomeUnknown) {
				t.Errorf("Draw after the failure: err = %v, want ErrWAL", err)
			}
			if err := e.Close(); !errors.Is(err, ErrWAL) {
				t.Errorf("Close: %v, want ErrWAL", err)
			}
		})
	}
}
