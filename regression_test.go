package rewardpool

// Regression tests for bugs found in review; each failed before its fix.
//

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// copyDirForCrash copies a live data directory, as the disk would look after
// kill -9 at this moment (DurabilityAlways: everything acknowledged is on disk).
func copyDirForCrash(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A key that left the window and was used again appears twice in the log.
// Replay inserts both and evicts only at the end, so evicting the old entry
// deletes the answer of the new one: after a crash, a retry of an
// acknowledged keyed draw draws a second time.
func TestReplayForgetsReusedKeyAfterCrash(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.IdempotencyWindow = 2
	o.SnapshotEvery = 1 << 40 // no snapshot before the "crash"
	e := mustOpen(t, dir, o)
	mustDraw(t, e, DrawRequest{IdempotencyKey: "a"})
	mustDraw(t, e, DrawRequest{IdempotencyKey: "b"})
	mustDraw(t, e, DrawRequest{IdempotencyKey: "c"})           // evicts a
	second := mustDraw(t, e, DrawRequest{IdempotencyKey: "a"}) // a new, acknowledged draw
	// Live engine: the retry is answered from the window.
	if again := mustDraw(t, e, DrawRequest{IdempotencyKey: "a"}); !slices.Equal(again, replayed(second)) {
		t.Fatalf("live retry got %+v, want %+v", again, second)
	}
	crashed := t.TempDir()
	copyDirForCrash(t, dir, crashed) // kill -9 now
	e.Close()

	e2 := mustOpen(t, crashed, o)
	defer e2.Close()
	got := mustDraw(t, e2, DrawRequest{IdempotencyKey: "a"})
	if !slices.Equal(got, replayed(second)) {
		t.Fatalf("after crash recovery the retry of key a drew again: got %+v, want the acknowledged %+v", got, second)
	}
}

// Same root cause, second symptom: the snapshot written after such a replay
// stores key a with zero draws, and after the next reopen a retry of a
// returns an empty result list with a nil error.
func TestSnapshotStoresKeyWithNoDraws(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.IdempotencyWindow = 2
	o.SnapshotEvery = 1 << 40
	e := mustOpen(t, dir, o)
	for _, k := range []string{"a", "b", "c", "a"} {
		mustDraw(t, e, DrawRequest{IdempotencyKey: k})
	}
	crashed := t.TempDir()
	copyDirForCrash(t, dir, crashed)
	e.Close()

	e2 := mustOpen(t, crashed, o)      // replay from the log
	if err := e2.Close(); err != nil { // clean close: writes a snapshot
		t.Fatal(err)
	}
	e3 := mustOpen(t, crashed, o)
	defer e3.Close()
	res, err := e3.Draw(ctx, DrawRequest{IdempotencyKey: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("Draw(count 1, key a) returned %d results (%+v), want 1", len(res), res)
	}
}

// Bad input must get a clear error and change nothing. An item id "FAILED"
// passes validation, but the text codec refuses to write a draw of it; the
// engine treats that refusal as a WAL failure and poisons itself, so every
// later write of every caller fails until a reopen.
func TestItemNamedFAILEDPoisonsTextEngine(t *testing.T) {
	o := testOptions()
	o.Codec = "text"
	o.Items = []Item{{ID: "FAILED", Quantity: 5, Weight: WeightUnit}}
	e, err := Open(t.TempDir(), o)
	if err != nil {
		t.Logf("Open rejected the item up front (fine): %v", err)
		return
	}
	defer e.Close()
	if _, err := e.Draw(ctx, DrawRequest{}); err != nil {
		t.Errorf("draw of item FAILED: %v", err)
	}
	if _, err := e.Draw(ctx, DrawRequest{}); errors.Is(err, ErrWAL) {
		t.Fatalf("engine poisoned by an item name: later draw = %v", err)
	}
}

// Same shape with the jsonl codec: an idempotency key that is not valid
// UTF-8 is accepted by Draw, rejected by the codec, and poisons the engine
// for everybody.
func TestInvalidUTF8KeyPoisonsJSONLEngine(t *testing.T) {
	o := testOptions()
	o.Codec = "jsonl"
	e := mustOpen(t, t.TempDir(), o)
	defer e.Close()
	_, err := e.Draw(ctx, DrawRequest{IdempotencyKey: "\xff\xfe"})
	if err != nil && !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("bad key: err = %v, want ErrInvalidRequest", err)
	}
	if _, err := e.Draw(ctx, DrawRequest{}); err != nil {
		t.Fatalf("a later, valid draw by another caller fails: %v", err)
	}
}
