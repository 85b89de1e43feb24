package rewardpool

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/rewardpool/rewardpool/snapshot"
)

// BenchmarkIdempotencyMemory measures what one remembered key really costs
// on the heap, in steady state: a window of 100,000 keys after 300,000 keyed
// requests (so eviction, queue compaction and map churn have happened), with
// 16-byte keys like "order-0000000042". heap-B/key is the live heap of the
// window divided by its keys; counted-B/key is what the byte budget counts
// for the same keys (answerCost), which must not be below it;
// snapshot-B/key is the window's share of every snapshot. One op builds one
// window.
func BenchmarkIdempotencyMemory(b *testing.B) {
	const window = 100_000
	for _, draws := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("draws=%d", draws), func(b *testing.B) {
			var heap, counted, snap float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				m := &idempotency{}
				var reqID uint64
				for i := range 3 * window {
					// Like the writer: the key string arrives from the
					// caller, the draws slice is made per keyed request.
					d := make([]snapshot.Draw, draws)
					for j := range d {
						reqID++
						d[j] = snapshot.Draw{RequestID: reqID, Slot: int32(reqID % 1000)}
					}
					m.insert(fmt.Sprintf("order-%010d", i), d, nil)
					m.evict(window)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = float64(after.HeapAlloc-before.HeapAlloc) / window
				counted = float64(m.bytes) / float64(len(m.answers))
				runtime.KeepAlive(m)
				snap = float64(len(snapshot.Encode(nil, &snapshot.State{Keys: m.capture()}))) / window
			}
			b.ReportMetric(heap, "heap-B/key")
			b.ReportMetric(counted, "counted-B/key")
			b.ReportMetric(snap, "snapshot-B/key")
			if counted < heap {
				b.Errorf("the budget counts %.0f B per key, the heap holds %.0f: raise keyOverhead", counted, heap)
			}
		})
	}
}
