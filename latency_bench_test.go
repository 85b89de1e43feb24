package rewardpool

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// syncTimes is an Observer that keeps every fsync's duration.
type syncTimes struct {
	mu    sync.Mutex
	times []time.Duration
}

func (s *syncTimes) Batch(int, int, int) {}
func (s *syncTimes) Sync(took time.Duration, err error) {
	s.mu.Lock()
	s.times = append(s.times, took)
	s.mu.Unlock()
}
func (s *syncTimes) Snapshot(uint64, time.Duration, error) {}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkDrawLatencyInFsyncs is "durability costs one fsync" at the
// engine: 16 closed-loop callers, each waiting a round trip (think) between
// its answer and its next request, as a network client does. It reports
// the draw's p50 latency in units of the p50 fsync measured in the same
// run (the service's p50(draw) - p50(no-op) over fsync p50, without the
// transport): 1.0 is the floor, 2.0 means most callers wait for a commit
// already under way and then their own.
//
//	go test -run '^$' -bench BenchmarkDrawLatencyInFsyncs -benchtime 3s -count 5 .
func BenchmarkDrawLatencyInFsyncs(b *testing.B) {
	for _, think := range []time.Duration{0, 50 * time.Microsecond, 200 * time.Microsecond} {
		for _, gather := range []time.Duration{-1, 0} {
			b.Run(fmt.Sprintf("callers=16/think=%s/gather=%v", think, gather != 0), func(b *testing.B) {
				benchLatency(b, think, gather)
			})
		}
	}
}

func benchLatency(b *testing.B, think, gather time.Duration) {
	obs := &syncTimes{}
	e := mustOpen(b, b.TempDir(), Options{Items: benchItems(6), Durability: DurabilityAlways,
		Logger: quietLogger(), Observer: obs, GatherWait: gather})
	defer e.Close()
	const callers = 16
	lat := make([][]time.Duration, callers)
	per := b.N/callers + 1
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			l := make([]time.Duration, 0, per)
			for i := 0; i < per; i++ {
				if think > 0 {
					time.Sleep(think)
				}
				t0 := time.Now()
				if _, err := e.Draw(ctx, DrawRequest{Count: 1}); err != nil {
					b.Error(err)
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[c] = l
		}(c)
	}
	wg.Wait()
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	obs.mu.Lock()
	fs := median(obs.times)
	obs.mu.Unlock()
	p50 := median(all)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(fs.Microseconds()), "fsync-p50-µs")
	b.ReportMetric(float64(p50)/float64(fs), "p50-in-fsyncs")
	b.ReportMetric(float64(b.N)/float64(max(e.Stats().Batches, 1)), "draws/batch")
}
