package rewardpool

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/wal"
)

// Regression (found in review): the Committed hook is the streamer's input, and the streamer
// reads dropped batches back through ScanLog (stream.Source). The hook must
// therefore run only once ScanLog can serve the batch it announces. It runs
// before lastSeq is published, so a read-back of the batch just handed over
// finds nothing (the streamer's fill then logs "source ended" and jumps,
// and its sinks fail with "source has no record at seq").
func TestCommittedBatchVisibleToScanLog(t *testing.T) {
	var (
		e     *Engine
		mu    sync.Mutex
		short []string
	)
	o := testOptions()
	o.Committed = func(recs []wal.Record) {
		if e == nil {
			return
		}
		n := 0
		_ = e.ScanLog(recs[0].Seq, func(*wal.Record) error { n++; return nil })
		if n < len(recs) {
			mu.Lock()
			short = append(short, "batch ending at seq "+itoa(recs[len(recs)-1].Seq)+": ScanLog saw "+itoa(uint64(n))+" of "+itoa(uint64(len(recs))))
			mu.Unlock()
		}
	}
	var err error
	e, err = Open(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for range 3 {
		if _, err := e.Draw(context.Background(), DrawRequest{Count: 2}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(short) > 0 {
		t.Errorf("Committed announced records ScanLog cannot serve yet: %v", short)
	}
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}

// Under DurabilityInterval a batch is answered after the write, before the
// fsync. Observers (replication) and ScanLog must not see it until the
// fsync: a replica holding records its primary could still lose to a power
// cut would diverge undetected.
func TestIntervalObserversSeeOnlyDurable(t *testing.T) {
	var mu sync.Mutex
	var seen []uint64
	o := testOptions()
	o.Durability = DurabilityInterval
	o.SyncInterval = time.Hour // no timer fsync during the test
	o.Committed = func(recs []wal.Record) {
		mu.Lock()
		for _, r := range recs {
			seen = append(seen, r.Seq)
		}
		mu.Unlock()
	}
	e := mustOpen(t, t.TempDir(), o)
	start := e.DurableSeq()
	mustDraw(t, e, DrawRequest{Count: 3})
	if e.LastSeq() != start+3 || e.DurableSeq() != start {
		t.Fatalf("after an unsynced write: last %d durable %d, want %d and %d", e.LastSeq(), e.DurableSeq(), start+3, start)
	}
	mu.Lock()
	n := len(seen)
	mu.Unlock()
	if n != 0 {
		t.Fatalf("observers saw %d unsynced records", n)
	}
	scanned := 0
	if err := e.ScanLog(start+1, func(*wal.Record) error { scanned++; return nil }); err != nil || scanned != 0 {
		t.Fatalf("ScanLog returned %d unsynced records (%v)", scanned, err)
	}
	// The fsync (here: at Close) releases them, in order.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []uint64{start + 1, start + 2, start + 3}; !slices.Equal(seen, want) {
		t.Fatalf("observers saw %v after the fsync, want %v", seen, want)
	}
}
