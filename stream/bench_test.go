package stream_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/stream"
	"github.com/rewardpool/rewardpool/wal"
)

// BenchmarkWriterWithSlowSink measures the engine's draws/s (16 callers,
// durability none, one draw per request) with the streamer attached and no
// sink, and with a slow sink (200µs per Stream call of at most 64 records,
// so at most ~320k records/s: slower than the writer, so it falls out of
// the window and reads from disk). "engine" is the bare engine for
// reference: the streamer cases also append every batch to the mirror log
// the tests use as Source (see env), which costs the writer one write(2)
// per batch in both of them.
func BenchmarkWriterWithSlowSink(b *testing.B) {
	const callers = 16
	b.Run("engine", func(b *testing.B) {
		eng, err := rewardpool.Open(b.TempDir(), rewardpool.Options{Items: testItems()[1:],
			Durability: rewardpool.DurabilityNone, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		defer eng.Close()
		benchDraws(b, eng, callers)
	})
	b.Run("streamer-only", func(b *testing.B) {
		// The hook and the hub alone: no mirror, no sink, no Source (with
		// the default Buffer nothing is dropped in practice).
		st := stream.New(nil, stream.Options{Logger: quietLogger()})
		eng, err := rewardpool.Open(b.TempDir(), rewardpool.Options{Items: testItems()[1:],
			Durability: rewardpool.DurabilityNone, Logger: quietLogger(), Committed: st.Committed})
		if err != nil {
			b.Fatal(err)
		}
		state, _ := eng.State(context.Background())
		st.Start(state.Seq)
		defer eng.Close()
		defer st.Close()
		benchDraws(b, eng, callers)
	})
	b.Run("streamer/no-sink", func(b *testing.B) {
		e := newEnvMirror(b, stream.Options{MaxBatch: 64}, benchMirror)
		benchDraws(b, e.eng, callers)
	})
	b.Run("streamer/slow-sink", func(b *testing.B) {
		e := newEnvMirror(b, stream.Options{MaxBatch: 64}, benchMirror)
		slow := &orderedSink{delay: 200 * time.Microsecond}
		if err := e.st.AddSink("slow", slow, e.start+1); err != nil {
			b.Fatal(err)
		}
		benchDraws(b, e.eng, callers)
		st := e.st.Stats()
		b.ReportMetric(float64(st.Sinks[0].Lag), "slow-lag-records")
		b.ReportMetric(float64(st.Sinks[0].CatchUps), "slow-disk-reads")
		// Not timed: the slow sink gets everything, in order.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.st.WaitSink(ctx, "slow", st.Committed); err != nil {
			b.Fatal(err)
		}
		if err := slow.check(e.start+1, st.Committed); err != nil {
			b.Fatal(err)
		}
	})
}

// benchMirror: an mmap mirror makes its append a memory copy, so that the
// mirror (a test artefact) costs the writer as little as possible.
var benchMirror = wal.Options{Storage: "mmap", SegmentSize: 64 << 20}

// benchDraws runs b.N single draws from callers goroutines and reports draws/s.
func benchDraws(b *testing.B, eng *rewardpool.Engine, callers int) {
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]rewardpool.DrawResult, 0, 1)
			for left.Add(-1) >= 0 {
				var err error
				if dst, err = eng.DrawInto(context.Background(), dst[:0], rewardpool.DrawRequest{Count: 1}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "draws/s")
}

// orderedSink sleeps per call and checks seqs are consecutive.
type orderedSink struct {
	delay time.Duration
	mu    sync.Mutex
	first uint64
	last  uint64
	err   error
}

func (s *orderedSink) Stream(recs []wal.Record) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range recs {
		switch {
		case s.first == 0:
			s.first = recs[i].Seq
		case recs[i].Seq != s.last+1 && s.err == nil:
			s.err = fmt.Errorf("seq %d after %d", recs[i].Seq, s.last)
		}
		s.last = recs[i].Seq
	}
	return nil
}

func (s *orderedSink) Close() error { return nil }

func (s *orderedSink) check(first, last uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.first != first || s.last != last {
		return fmt.Errorf("slow sink got seqs %d..%d, want %d..%d", s.first, s.last, first, last)
	}
	return nil
}
