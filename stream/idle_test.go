package stream

import (
	"runtime"
	"testing"

	"github.com/rewardpool/rewardpool/wal"
)

// An idle streamer must be cheap: a node serves hundreds of pools, each
// with its own streamer. With the default options every streamer used to
// allocate its whole Window (65,536 records) and a queue slot per Buffer
// record up front, megabytes per pool.
func TestIdleStreamerIsSmall(t *testing.T) {
	const n = 20
	src := SourceFunc(func(from uint64, fn func(*wal.Record) error) error { return nil })
	before := liveHeap()
	list := make([]*Streamer, n)
	for i := range list {
		list[i] = New(src, Options{})
	}
	per := (int64(liveHeap()) - int64(before)) / n
	runtime.KeepAlive(list)
	if per > 64<<10 {
		t.Fatalf("an idle streamer holds %d KiB of heap, want at most 64 KiB", per>>10)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// The ring grows as records arrive and keeps every record it holds, in
// order, up to its window.
func TestRingGrowsKeepingRecords(t *testing.T) {
	const window = 1000
	r := newRing(window)
	if len(r.buf) > minRing {
		t.Fatalf("a new ring holds %d slots, want at most %d", len(r.buf), minRing)
	}
	r.reset(5)
	seq := uint64(5)
	for _, n := range []int{1, 63, 1, 100, 300, 7, 900, 2000, 3} {
		recs := make([]wal.Record, n)
		for i := range recs {
			recs[i] = wal.Record{Seq: seq, Kind: wal.KindDraw, RequestID: seq * 3}
			seq++
		}
		r.push(recs)
		lo, hi := r.loA.Load(), r.hiA.Load()
		if hi != seq-1 || hi-lo+1 != min(seq-5, window) {
			t.Fatalf("after %d pushed: ring holds [%d, %d], want the last %d up to %d", seq-5, lo, hi, min(seq-5, window), seq-1)
		}
		got, ok := r.read(lo, nil, window+1)
		if !ok || uint64(len(got)) != hi-lo+1 {
			t.Fatalf("read from %d: %d records, ok=%v; want %d", lo, len(got), ok, hi-lo+1)
		}
		for i, rec := range got {
			if rec.Seq != lo+uint64(i) || rec.RequestID != rec.Seq*3 {
				t.Fatalf("record %d read back as seq %d request %d, want seq %d", i, rec.Seq, rec.RequestID, lo+uint64(i))
			}
		}
	}
	if len(r.buf) > window {
		t.Fatalf("ring grew to %d slots past its window %d", len(r.buf), window)
	}
}
