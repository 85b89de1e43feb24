package rewardpool

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func benchItems(n int) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{ID: fmt.Sprintf("item-%d", i), Quantity: Unlimited, Weight: uint64(1+i%100) * WeightUnit}
	}
	return items
}

// BenchmarkDraw measures draws/s through the whole engine (mailbox, writer,
// log, reply) for each durability mode and number of concurrent callers,
// one draw per request. Under "always" it also reports the group-commit
// floor: draws per batch ÷ fsync latency, measured in the same run, and the
// achieved share of it.
func BenchmarkDraw(b *testing.B) {
	for _, d := range []Durability{DurabilityNone, DurabilityInterval, DurabilityAlways} {
		for _, callers := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("durability=%s/callers=%d", d, callers), func(b *testing.B) {
				benchDraw(b, d, callers, 1, 6)
			})
		}
	}
}

// BenchmarkDrawStorage compares the storages under the weaker durability
// modes, where mmap turns the per-batch write(2) into a memory copy.
func BenchmarkDrawStorage(b *testing.B) {
	for _, storage := range []string{"file", "mmap"} {
		for _, d := range []Durability{DurabilityNone, DurabilityAlways} {
			b.Run(fmt.Sprintf("storage=%s/durability=%s/callers=16", storage, d), func(b *testing.B) {
				benchDrawStorage(b, d, storage, 16, 1, 6)
			})
		}
	}
}

// BenchmarkDrawCount100 is BenchmarkDraw with 100 draws per request.
func BenchmarkDrawCount100(b *testing.B) {
	for _, d := range []Durability{DurabilityNone, DurabilityAlways} {
		for _, callers := range []int{1, 16} {
			b.Run(fmt.Sprintf("durability=%s/callers=%d", d, callers), func(b *testing.B) {
				benchDraw(b, d, callers, 100, 6)
			})
		}
	}
}

func benchDraw(b *testing.B, d Durability, callers, count, items int) {
	benchDrawStorage(b, d, "", callers, count, items)
}

func benchDrawStorage(b *testing.B, d Durability, storage string, callers, count, items int) {
	o := Options{Items: benchItems(items), Durability: d, Logger: quietLogger(), Storage: storage,
		SnapshotEvery: 1 << 40, SegmentSize: 256 << 20}
	e := mustOpen(b, b.TempDir(), o)
	defer e.Close()
	// Each caller gets its share up front: a shared counter would put a
	// contended atomic in every request and measure the benchmark itself.
	perCaller := b.N/count/callers + 1
	var wg sync.WaitGroup
	before := e.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]DrawResult, 0, count)
			for range perCaller {
				var err error
				if dst, err = e.DrawInto(ctx, dst[:0], DrawRequest{Count: count}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	after := e.Stats()
	draws := float64(after.Draws - before.Draws)
	b.ReportMetric(draws/elapsed.Seconds(), "draws/s")
	batches := float64(after.Batches - before.Batches)
	b.ReportMetric(draws/batches, "draws/batch")
	if syncs := after.Syncs - before.Syncs; syncs > 0 && d == DurabilityAlways {
		lat := (after.SyncTime - before.SyncTime).Seconds() / float64(syncs)
		floor := draws / batches / lat
		b.ReportMetric(lat*1e6, "fsync-µs")
		b.ReportMetric(floor, "floor-draws/s")
		b.ReportMetric(draws/elapsed.Seconds()/floor*100, "%floor")
	}
}

// BenchmarkDrawItems compares a small and a large catalog through the engine.
func BenchmarkDrawItems(b *testing.B) {
	for _, n := range []int{6, 10_000, 1_000_000} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) { benchDraw(b, DurabilityNone, 16, 100, n) })
	}
}

// BenchmarkRecovery measures Open on a log of -recovery.records draw records
// and no snapshot: records replayed per second.
func BenchmarkRecovery(b *testing.B) {
	const records = 10_000_000
	for _, codec := range []string{"binary", "text", "jsonl"} {
		b.Run("codec="+codec, func(b *testing.B) {
			dir := b.TempDir()
			o := Options{Items: benchItems(6), Durability: DurabilityNone, Logger: quietLogger(),
				Codec: codec, SnapshotEvery: 1 << 40, SegmentSize: 256 << 20, KeepSegments: 1 << 30}
			e := mustOpen(b, dir, o)
			dst := make([]DrawResult, 0, 10_000)
			for range records / 10_000 {
				var err error
				if dst, err = e.DrawInto(ctx, dst[:0], DrawRequest{Count: 10_000}); err != nil {
					b.Fatal(err)
				}
			}
			if err := e.Close(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				os.RemoveAll(filepath.Join(dir, snapDir))
				b.StartTimer()
				e := mustOpen(b, dir, o)
				b.StopTimer()
				e.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
