package rewardpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rewardpool/rewardpool/snapshot"
	"github.com/rewardpool/rewardpool/wal"
)

var ctx = context.Background()

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testItems() []Item {
	return []Item{
		{ID: "diamond", Quantity: 3, Weight: 10 * WeightUnit},
		{ID: "gold", Quantity: 20, Weight: 30 * WeightUnit},
		{ID: "mud", Quantity: Unlimited, Weight: WeightUnit / 2},
	}
}

func testOptions() Options {
	return Options{Items: testItems(), Logger: quietLogger(), Seed: &[32]byte{1}}
}

func mustOpen(t testing.TB, dir string, o Options) *Engine {
	t.Helper()
	e, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return e
}

func mustDraw(t testing.TB, e *Engine, req DrawRequest) []DrawResult {
	t.Helper()
	res, err := e.Draw(ctx, req)
	if err != nil {
		t.Fatalf("Draw(%+v): %v", req, err)
	}
	return res
}

func mustState(t testing.TB, e *Engine) State {
	t.Helper()
	st, err := e.State(ctx)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return st
}

func quantities(st State) map[string]int64 {
	m := map[string]int64{}
	for _, it := range st.Items {
		m[it.ID] = it.Quantity
	}
	return m
}

func TestDrawTakesStockAndIncreasingIDs(t *testing.T) {
	e := mustOpen(t, t.TempDir(), testOptions())
	defer e.Close()
	res := mustDraw(t, e, DrawRequest{Count: 10})
	if len(res) != 10 {
		t.Fatalf("got %d results, want 10", len(res))
	}
	taken := map[string]int64{}
	for i, r := range res {
		if r.Err != nil || r.ItemID == "" {
			t.Fatalf("result %d: %+v", i, r)
		}
		if r.RequestID != uint64(i+1) {
			t.Fatalf("result %d has request id %d, want %d", i, r.RequestID, i+1)
		}
		taken[r.ItemID]++
	}
	st := mustState(t, e)
	q := quantities(st)
	if q["diamond"] != 3-taken["diamond"] || q["gold"] != 20-taken["gold"] || q["mud"] != Unlimited {
		t.Fatalf("quantities %v after taking %v", q, taken)
	}
	if st.LastRequestID != 10 {
		t.Fatalf("LastRequestID = %d, want 10", st.LastRequestID)
	}
}

func TestEmptyPoolDrawTakesAnID(t *testing.T) {
	o := testOptions()
	o.Items = []Item{{ID: "only", Quantity: 2, Weight: WeightUnit}}
	dir := t.TempDir()
	e := mustOpen(t, dir, o)
	res := mustDraw(t, e, DrawRequest{Count: 4})
	want := []DrawResult{{RequestID: 1, ItemID: "only"}, {RequestID: 2, ItemID: "only"},
		{RequestID: 3, Err: ErrPoolEmpty}, {RequestID: 4, Err: ErrPoolEmpty}}
	for i := range want {
		if res[i].RequestID != want[i].RequestID || res[i].ItemID != want[i].ItemID || !errors.Is(res[i].Err, want[i].Err) {
			t.Fatalf("result %d = %+v, want %+v", i, res[i], want[i])
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = mustOpen(t, dir, o)
	defer e.Close()
	if r := mustDraw(t, e, DrawRequest{}); r[0].RequestID != 5 || !errors.Is(r[0].Err, ErrPoolEmpty) {
		t.Fatalf("after reopen: %+v, want id 5 and pool empty", r[0])
	}
}

func TestInvalidDrawRequests(t *testing.T) {
	e := mustOpen(t, t.TempDir(), testOptions())
	defer e.Close()
	for _, req := range []DrawRequest{
		{Count: -1},
		{Count: defaultMaxDrawCount + 1},
		{IdempotencyKey: string(make([]byte, maxKeyLen+1))},
	} {
		if _, err := e.Draw(ctx, req); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Draw(count=%d, key len %d) = %v, want ErrInvalidRequest", req.Count, len(req.IdempotencyKey), err)
		}
	}
	if st := mustState(t, e); st.LastRequestID != 0 || st.Seq != 3 {
		t.Fatalf("invalid requests changed state: %+v", st)
	}
}

func TestStateSurvivesReopen(t *testing.T) {
	for _, codec := range []string{"binary", "text", "jsonl"} {
		for _, storage := range []string{"file", "mmap"} {
			t.Run(codec+"/"+storage, func(t *testing.T) {
				dir := t.TempDir()
				o := testOptions()
				o.Codec, o.Storage = codec, storage
				o.SegmentSize = 4096 // force rotations
				o.SnapshotEvery = 50 // and snapshots
				e := mustOpen(t, dir, o)
				for range 40 {
					mustDraw(t, e, DrawRequest{Count: 3})
				}
				if err := e.PutItem(ctx, Item{ID: "gold", Quantity: 5, Weight: 7 * WeightUnit}); err != nil {
					t.Fatal(err)
				}
				if err := e.AddItem(ctx, Item{ID: "ruby", Quantity: 9, Weight: 2500000}); err != nil {
					t.Fatal(err)
				}
				mustDraw(t, e, DrawRequest{Count: 5, IdempotencyKey: "k1"})
				before := mustState(t, e)
				if err := e.Close(); err != nil {
					t.Fatal(err)
				}
				o.Items = nil // the directory holds state now; Items must not matter
				e = mustOpen(t, dir, o)
				after := mustState(t, e)
				if fmt.Sprint(before) != fmt.Sprint(after) {
					t.Fatalf("state changed across reopen:\nbefore %+v\nafter  %+v", before, after)
				}
				if r := mustDraw(t, e, DrawRequest{}); r[0].RequestID != before.LastRequestID+1 {
					t.Fatalf("next id %d, want %d", r[0].RequestID, before.LastRequestID+1)
				}
				if err := e.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestAdminChanges(t *testing.T) {
	e := mustOpen(t, t.TempDir(), testOptions())
	defer e.Close()
	cases := []struct {
		name string
		do   func() error
		want error
	}{
		{"add duplicate", func() error { return e.AddItem(ctx, Item{ID: "gold", Quantity: 1, Weight: 1}) }, ErrDuplicateItem},
		{"add bad weight", func() error { return e.AddItem(ctx, Item{ID: "x", Quantity: 1, Weight: 0}) }, ErrInvalidItem},
		{"add bad quantity", func() error { return e.AddItem(ctx, Item{ID: "x", Quantity: -2, Weight: 1}) }, ErrInvalidItem},
		{"add empty id", func() error { return e.AddItem(ctx, Item{ID: "", Quantity: 1, Weight: 1}) }, ErrInvalidItem},
		{"add id with space", func() error { return e.AddItem(ctx, Item{ID: "a b", Quantity: 1, Weight: 1}) }, ErrInvalidItem},
		{"set unknown", func() error { return e.SetItem(ctx, Item{ID: "nope", Quantity: 1, Weight: 1}) }, ErrUnknownItem},
		{"remove unknown", func() error { return e.RemoveItem(ctx, "nope") }, ErrUnknownItem},
		{"set bad weight", func() error { return e.SetItem(ctx, Item{ID: "gold", Quantity: 1, Weight: 0}) }, ErrInvalidItem},
	}
	before := mustState(t, e)
	for _, tc := range cases {
		if err := tc.do(); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if after := mustState(t, e); fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("rejected changes changed state:\n%+v\n%+v", before, after)
	}

	if err := e.RemoveItem(ctx, "mud"); err != nil {
		t.Fatal(err)
	}
	if err := e.SetItem(ctx, Item{ID: "gold", Quantity: 0, Weight: WeightUnit}); err != nil {
		t.Fatal(err)
	}
	// Only diamond (3) is left: exactly 3 draws succeed.
	res := mustDraw(t, e, DrawRequest{Count: 5})
	for i, r := range res {
		if (i < 3) != (r.ItemID == "diamond") || (i >= 3) != errors.Is(r.Err, ErrPoolEmpty) {
			t.Fatalf("draw %d = %+v", i, r)
		}
	}
	if err := e.AddItem(ctx, Item{ID: "mud", Quantity: 1, Weight: WeightUnit}); err != nil {
		t.Fatalf("re-adding a removed item: %v", err)
	}
	if r := mustDraw(t, e, DrawRequest{}); r[0].ItemID != "mud" {
		t.Fatalf("draw after re-add = %+v", r[0])
	}
}

func TestIdempotentRetry(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	e := mustOpen(t, dir, o)
	first := mustDraw(t, e, DrawRequest{Count: 3, IdempotencyKey: "order-1"})
	again := mustDraw(t, e, DrawRequest{Count: 3, IdempotencyKey: "order-1"})
	if !slices.Equal(replayed(first), again) {
		t.Fatalf("retry got %+v, want %+v", again, first)
	}
	st := mustState(t, e)
	if st.LastRequestID != 3 {
		t.Fatalf("retry drew again: last id %d", st.LastRequestID)
	}
	e.Close()

	// Once through the log only, once through a snapshot.
	for _, viaSnapshot := range []bool{false, true} {
		if !viaSnapshot {
			removeSnapshots(t, dir)
		}
		e = mustOpen(t, dir, o)
		if got := mustDraw(t, e, DrawRequest{Count: 3, IdempotencyKey: "order-1"}); !slices.Equal(got, replayed(first)) {
			t.Fatalf("after reopen (snapshot=%v) retry got %+v, want %+v", viaSnapshot, got, first)
		}
		e.Close()
	}
}

// replayed is res as a retry with the same key answers it: the same
// results, each marked Replayed (nothing was drawn).
func replayed(res []DrawResult) []DrawResult {
	out := slices.Clone(res)
	for i := range out {
		out[i].Replayed = true
	}
	return out
}

func TestIdempotencyWindowForgetsOldest(t *testing.T) {
	o := testOptions()
	o.IdempotencyWindow = 2
	e := mustOpen(t, t.TempDir(), o)
	defer e.Close()
	a := mustDraw(t, e, DrawRequest{IdempotencyKey: "a"})
	mustDraw(t, e, DrawRequest{IdempotencyKey: "b"})
	mustDraw(t, e, DrawRequest{IdempotencyKey: "c"})
	if again := mustDraw(t, e, DrawRequest{IdempotencyKey: "a"}); again[0].RequestID == a[0].RequestID {
		t.Fatalf("key a should have left the window of 2")
	}
}

func removeSnapshots(t *testing.T, dir string) {
	t.Helper()
	infos, err := snapshot.List(filepath.Join(dir, snapDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		os.Remove(filepath.Join(dir, snapDir, in.Name))
	}
}

// TestWriteOrSyncFailureUndoesTheBatch: a batch whose write or fsync fails
// is undone in memory and its caller hears ErrOutcomeUnknown, because what
// reaches the file is not known: after a failed write the torn batch is cut
// on reopen, after a failed fsync the whole batch is usually in the file
// (the page cache) and is replayed. The state after reopen is checked
// exactly for each case, and the retry with the same key tells the caller
// the outcome.
func TestWriteOrSyncFailureUndoesTheBatch(t *testing.T) {
	boom := errors.New("disk on fire")
	for _, tc := range []struct {
		name  string
		hooks func(fail *bool) wal.Hooks
		inLog bool // the failed batch is in the log after reopen
	}{
		{"write fails", func(fail *bool) wal.Hooks {
			return wal.Hooks{Write: func(p []byte) (int, error) {
				if *fail {
					return 0, boom
				}
				return len(p), nil
			}}
		}, false},
		{"short write", func(fail *bool) wal.Hooks {
			return wal.Hooks{Write: func(p []byte) (int, error) {
				if *fail {
					return len(p) / 2, boom
				}
				return len(p), nil
			}}
		}, false},
		{"sync fails", func(fail *bool) wal.Hooks {
			return wal.Hooks{Sync: func() error {
				if *fail {
					return boom
				}
				return nil
			}}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var fail bool // only touched by the writer goroutine while it runs
			var mu sync.Mutex
			o := testOptions()
			h := tc.hooks(&fail)
			o.walHooks = wal.Hooks{
				Write: func(p []byte) (int, error) {
					mu.Lock()
					defer mu.Unlock()
					if h.Write == nil {
						return len(p), nil
					}
					return h.Write(p)
				},
				Sync: func() error {
					mu.Lock()
					defer mu.Unlock()
					if h.Sync == nil {
						return nil
					}
					return h.Sync()
				},
			}
			e := mustOpen(t, dir, o)
			mustDraw(t, e, DrawRequest{Count: 2})
			before := mustState(t, e)

			mu.Lock()
			fail = true
			mu.Unlock()
			_, err := e.Draw(ctx, DrawRequest{Count: 5, IdempotencyKey: "k"})
			if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, boom) || errors.Is(err, ErrWAL) {
				t.Fatalf("Draw with failing disk: err = %v, want ErrOutcomeUnknown (not ErrWAL) wrapping the cause", err)
			}
			if after := mustState(t, e); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("failed batch changed state:\nbefore %+v\nafter  %+v", before, after)
			}
			// Poisoned: even with a healthy disk again, writes are refused,
			// and those refusals wrote nothing: ErrWAL, not ErrOutcomeUnknown.
			mu.Lock()
			fail = false
			mu.Unlock()
			if _, err := e.Draw(ctx, DrawRequest{}); !errors.Is(err, ErrWAL) || errors.Is(err, ErrOutcomeUnknown) {
				t.Fatalf("Draw after failure: err = %v, want ErrWAL (not ErrOutcomeUnknown)", err)
			}
			if err := e.AddItem(ctx, Item{ID: "new", Quantity: 1, Weight: 1}); !errors.Is(err, ErrWAL) || errors.Is(err, ErrOutcomeUnknown) {
				t.Fatalf("AddItem after failure: err = %v, want ErrWAL (not ErrOutcomeUnknown)", err)
			}
			if err := e.Close(); !errors.Is(err, ErrWAL) {
				t.Fatalf("Close after failure: err = %v, want ErrWAL", err)
			}

			// Reopen recovers exactly the acknowledged state, plus the failed
			// batch where it reached the file.
			o.walHooks = wal.Hooks{}
			e = mustOpen(t, dir, o)
			defer e.Close()
			var tail []wal.Record
			if err := e.ScanLog(before.Seq+1, func(r *wal.Record) error {
				tail = append(tail, *r)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			got := mustState(t, e)
			if !tc.inLog {
				if len(tail) != 0 {
					t.Fatalf("log after reopen holds records past the acknowledged seq %d: %+v", before.Seq, tail)
				}
				if fmt.Sprint(got) != fmt.Sprint(before) {
					t.Fatalf("state after reopen:\n got  %+v\n want %+v (the acknowledged state)", got, before)
				}
				// The retry draws for the first time, with the next ids.
				r := mustDraw(t, e, DrawRequest{Count: 5, IdempotencyKey: "k"})
				for i, d := range r {
					if want := before.LastRequestID + 1 + uint64(i); d.RequestID != want {
						t.Fatalf("retry draw %d: id %d, want %d", i, d.RequestID, want)
					}
				}
				return
			}
			// The whole batch was replayed: one KEY record and five draws,
			// ids right after the acknowledged ones.
			if len(tail) != 6 || tail[0].Kind != wal.KindKey || tail[0].Key != "k" || tail[0].Count != 5 {
				t.Fatalf("log after reopen: %+v, want the KEY record of k and its 5 draws", tail)
			}
			retry := mustDraw(t, e, DrawRequest{Count: 5, IdempotencyKey: "k"})
			want := quantities(before)
			for i, d := range retry {
				if wantID := before.LastRequestID + 1 + uint64(i); d.RequestID != wantID || d.Err != nil {
					t.Fatalf("retry draw %d: %+v, want id %d with an item", i, d, wantID)
				}
				// No item was removed, so catalog slots are indexes into Items.
				if r := tail[1+i]; r.Kind != wal.KindDraw || r.RequestID != d.RequestID || before.Items[r.Item].ID != d.ItemID {
					t.Fatalf("retry draw %d %+v is not the logged record %+v", i, d, r)
				}
				if want[d.ItemID] != Unlimited {
					want[d.ItemID]--
				}
			}
			got = mustState(t, e) // after the retry: it must not have drawn
			if got.LastRequestID != before.LastRequestID+5 || got.Seq != before.Seq+6 {
				t.Fatalf("after reopen and retry: last id %d seq %d, want %d and %d",
					got.LastRequestID, got.Seq, before.LastRequestID+5, before.Seq+6)
			}
			if !maps.Equal(quantities(got), want) {
				t.Fatalf("quantities after reopen: %v, want %v (acknowledged minus the replayed batch)", quantities(got), want)
			}
			if r := mustDraw(t, e, DrawRequest{}); r[0].RequestID != before.LastRequestID+6 {
				t.Fatalf("next id %d, want %d", r[0].RequestID, before.LastRequestID+6)
			}
		})
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"durability", Options{Durability: "sometimes"}, "Durability"},
		{"codec", Options{Codec: "xml"}, "odec"},
		{"storage", Options{Storage: "tape"}, "torage"},
		{"item", Options{Items: []Item{{ID: "a", Quantity: 1, Weight: 0}}}, "Items[0]"},
		{"max draw count", Options{MaxDrawCount: -1}, "MaxDrawCount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(t.TempDir(), tc.o)
			if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want ErrBadOptions naming %q", err, tc.want)
			}
		})
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, testOptions())
	if _, err := Open(dir, testOptions()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	// The offline tools take the same lock.
	if _, err := LockDir(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("LockDir beside an open engine = %v, want ErrLocked", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after Close: %v", err)
	}
	unlock()
}

func TestCallsAfterCloseFail(t *testing.T) {
	e := mustOpen(t, t.TempDir(), testOptions())
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Draw(ctx, DrawRequest{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Draw after Close = %v", err)
	}
	if err := e.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	e := mustOpen(t, t.TempDir(), testOptions())
	defer e.Close()
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.Draw(c, DrawRequest{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Draw with cancelled ctx = %v", err)
	}
	if st := mustState(t, e); st.LastRequestID != 0 {
		t.Fatalf("cancelled draw took an id")
	}
}

// Replaying the log onto the state it started from must give byte-identical
// state: compare the snapshot encoding after a live run with the one after
// recovering from the log alone.
func TestReplayIsDeterministic(t *testing.T) {
	for _, codec := range []string{"binary", "text", "jsonl"} {
		t.Run(codec, func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions()
			o.Codec = codec
			e := mustOpen(t, dir, o)
			for i := range 30 {
				// Key k<j> always asks for 1+j%4 draws: a retry with another
				// count would be refused (ErrIdempotencyMismatch).
				mustDraw(t, e, DrawRequest{Count: 1 + (i%7)%4, IdempotencyKey: fmt.Sprintf("k%d", i%7)})
				if i == 10 {
					e.RemoveItem(ctx, "mud")
				}
				if i == 20 {
					e.AddItem(ctx, Item{ID: "mud", Quantity: 4, Weight: 3})
				}
			}
			live := snapshot.Encode(nil, stateOf(t, e))
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			removeSnapshots(t, dir)
			e = mustOpen(t, dir, o)
			defer e.Close()
			if replayed := snapshot.Encode(nil, stateOf(t, e)); !slices.Equal(live, replayed) {
				t.Fatalf("replayed state differs from live state")
			}
		})
	}
}

// stateOf captures the full writer state, as a snapshot would, on the
// writer goroutine between batches.
func stateOf(t *testing.T, e *Engine) *snapshot.State {
	t.Helper()
	var st *snapshot.State
	if err := e.onWriter(ctx, func() { st = e.captureState() }); err != nil {
		t.Fatal(err)
	}
	return st
}
