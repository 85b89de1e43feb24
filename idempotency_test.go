package rewardpool

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// idemBytes reads the writer's accounting of the window.
func idemBytes(t *testing.T, e *Engine) (bytes int64, keys int) {
	t.Helper()
	if err := e.onWriter(ctx, func() { bytes, keys = e.w.idem.bytes, len(e.w.idem.answers) }); err != nil {
		t.Fatal(err)
	}
	return bytes, keys
}

// Issue 7, defect 8: the window was bounded by key count only, so keys
// with many draws each could take gigabytes (in memory and in every
// snapshot). With a byte budget the oldest keys go once the budget is
// reached, long before the count bound; the newest answers stay, also
// after a reopen through the log and through a snapshot.
func TestIdempotencyWindowBoundedInBytes(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.Items = []Item{{ID: "mud", Quantity: Unlimited, Weight: WeightUnit}}
	o.MaxDrawCount = 100
	o.IdempotencyWindow = 1000 // never reached here
	o.SnapshotEvery = 1 << 40
	// Room for three answers of 100 draws, not four.
	o.IdempotencyBytes = 3*answerCost(8, 100) + answerCost(8, 100)/2
	e := mustOpen(t, dir, o)
	keys := []string{"order-00", "order-01", "order-02", "order-03", "order-04", "order-05"}
	answers := map[string][]DrawResult{}
	for _, k := range keys {
		answers[k] = mustDraw(t, e, DrawRequest{Count: 100, IdempotencyKey: k})
		if b, _ := idemBytes(t, e); b > o.IdempotencyBytes {
			t.Fatalf("after key %s the window holds %d bytes, over the budget of %d", k, b, o.IdempotencyBytes)
		}
	}
	if _, n := idemBytes(t, e); n != 3 {
		t.Errorf("window holds %d keys, want the 3 that fit the byte budget", n)
	}
	check := func(when string, e *Engine) {
		t.Helper()
		for _, k := range keys[3:] {
			if got := mustDraw(t, e, DrawRequest{Count: 100, IdempotencyKey: k}); !slices.Equal(got, replayed(answers[k])) {
				t.Fatalf("%s: retry of recent key %s drew again", when, k)
			}
		}
		last := mustState(t, e).LastRequestID
		got := mustDraw(t, e, DrawRequest{Count: 100, IdempotencyKey: keys[0]})
		if got[0].RequestID <= last {
			t.Fatalf("%s: key %s should have left the byte-bounded window, got its old answer", when, keys[0])
		}
		answers[keys[0]] = got
	}
	check("live", e)
	crashed := t.TempDir()
	copyDirForCrash(t, dir, crashed) // no snapshot: replay from the log
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// The live check above used keys[0] again: it is now the newest key.
	keys = append(keys[1:], keys[0])
	e2 := mustOpen(t, crashed, o)
	check("replayed from the log", e2)
	e2.Close()
	e3 := mustOpen(t, dir, o) // from the snapshot written at Close
	defer e3.Close()
	if b, n := idemBytes(t, e3); b > o.IdempotencyBytes || n > 3 {
		t.Fatalf("after reopen from a snapshot: %d keys, %d bytes; budget %d", n, b, o.IdempotencyBytes)
	}
}

func TestIdempotencyBytesValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"negative", Options{IdempotencyBytes: -1}, "IdempotencyBytes"},
		{"below one answer", Options{IdempotencyBytes: 1000}, "at least"},
		{"below one answer of MaxDrawCount", Options{MaxDrawCount: 50_000, IdempotencyBytes: answerCost(maxKeyLen, 40_000)}, "MaxDrawCount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(t.TempDir(), tc.o)
			if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want ErrBadOptions mentioning %q", err, tc.want)
			}
		})
	}
}

// Issue 7, defect 8: a retry with the same key but a different count got
// the first answer (of another size) as if it were the answer to this
// request. It is refused, draws nothing, and the first answer stands.
func TestIdempotencyKeyReusedWithOtherCountIsRefused(t *testing.T) {
	e := mustOpen(t, t.TempDir(), testOptions())
	defer e.Close()
	first := mustDraw(t, e, DrawRequest{Count: 2, IdempotencyKey: "order-7"})
	before := mustState(t, e)
	for _, n := range []int{0, 1, 3} { // 0 means 1
		res, err := e.Draw(ctx, DrawRequest{Count: n, IdempotencyKey: "order-7"})
		if !errors.Is(err, ErrIdempotencyMismatch) || !strings.Contains(err.Error(), "order-7") {
			t.Errorf("count %d with a key used for 2: %v (%+v), want ErrIdempotencyMismatch naming the key", n, err, res)
		}
	}
	if after := mustState(t, e); after.LastRequestID != before.LastRequestID || after.Seq != before.Seq {
		t.Fatalf("refused retries changed state: %+v -> %+v", before, after)
	}
	if again := mustDraw(t, e, DrawRequest{Count: 2, IdempotencyKey: "order-7"}); !slices.Equal(again, replayed(first)) {
		t.Fatalf("retry with the same count: %+v, want %+v", again, first)
	}
}
