package stream

import (
	"sync"
	"sync/atomic"

	"github.com/rewardpool/rewardpool/wal"
)

// ring holds the last window records the hub has, seqs [lo, hi]
// consecutive (empty when hi == lo-1). The hub writes, sinks read. buf
// starts small and doubles up to window as records arrive: a full window
// of records is megabytes, which an idle pool (a node may hold hundreds)
// should not pay for.
type ring struct {
	mu     sync.RWMutex
	buf    []wal.Record // record seq s is at buf[s%len(buf)]
	window int
	lo     uint64
	hi     uint64

	// Copies of lo and hi for lock-free peeks; updated under mu.
	loA atomic.Uint64
	hiA atomic.Uint64
}

// minRing is the ring's first size.
const minRing = 64

func newRing(window int) *ring {
	r := &ring{buf: make([]wal.Record, min(window, minRing)), window: window, lo: 1}
	r.loA.Store(1)
	return r
}

// growLocked doubles buf until it holds need records or window, keeping
// the records it holds. The caller holds mu.
func (r *ring) growLocked(need uint64) {
	size := uint64(len(r.buf))
	for size < need && size < uint64(r.window) {
		size *= 2
	}
	size = min(size, uint64(r.window))
	if size == uint64(len(r.buf)) {
		return
	}
	buf := make([]wal.Record, size)
	for s := r.lo; s <= r.hi && r.hi >= r.lo; s++ {
		buf[s%size] = r.buf[s%uint64(len(r.buf))]
	}
	r.buf = buf
}

// reset empties the ring so that next is the first seq it will hold.
func (r *ring) reset(next uint64) {
	r.mu.Lock()
	clear(r.buf) // drop string references
	r.lo, r.hi = next, next-1
	r.loA.Store(r.lo)
	r.hiA.Store(r.hi)
	r.mu.Unlock()
}

// push appends recs, which must continue at hi+1.
func (r *ring) push(recs []wal.Record) {
	if len(recs) == 0 {
		return
	}
	r.mu.Lock()
	if need := r.hi - r.lo + 1 + uint64(len(recs)); need > uint64(len(r.buf)) {
		r.growLocked(need)
	}
	size := uint64(len(r.buf))
	for i := range recs {
		r.buf[recs[i].Seq%size] = recs[i]
	}
	r.hi = recs[len(recs)-1].Seq
	if r.hi-r.lo+1 > size {
		r.lo = r.hi - size + 1
	}
	r.loA.Store(r.lo)
	r.hiA.Store(r.hi)
	r.mu.Unlock()
}

// read appends to dst the records from seq pos on, at most max of them. ok
// is false if pos is no longer in the ring (evicted, or the hub jumped over
// it); dst is empty if pos is past hi.
func (r *ring) read(pos uint64, dst []wal.Record, max int) (out []wal.Record, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	size := uint64(len(r.buf))
	if pos < r.lo {
		return dst, false
	}
	for s := pos; s <= r.hi && len(dst) < max; s++ {
		dst = append(dst, r.buf[s%size])
	}
	return dst, true
}
