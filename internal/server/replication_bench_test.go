package server

// BenchmarkPrimaryWithSlowSubscriber measures a primary's draw throughput
// (draws/s) with no subscriber, with a slow StreamWAL subscriber and with a
// normal replica. Issue 4 asks that a slow subscriber lower it by at most
// 10 % and still receive every record in order; the slow case checks the
// latter after the timed part and fails otherwise.
//
// The primary runs with durability "none" and the default file storage, so
// no fsync hides the writer's cost: the writer goroutine (encode, write,
// apply, the Committed hook) is the bottleneck, which is where a streamer
// that blocked or slowed the writer would show. 16 goroutines call
// Engine.Draw (count 1) directly on the server's pool engine, so the
// numbers are not diluted by gRPC/HTTP handling of the draws themselves.
// The in-process replica and subscriber share the machine's cores with the
// primary, so on a small machine their CPU use shows in the figures too.
//
//	go test ./internal/server -run '^$' -bench BenchmarkPrimaryWithSlowSubscriber -benchtime 200000x -count 3

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

const (
	benchPool    = "bench"
	benchCallers = 16
	// The slow subscriber sleeps slowEvery after every slowBatch records.
	slowBatch = 100
	slowEvery = time.Millisecond
)

// benchNode starts an in-process server (a replica of replicaOf when set)
// and stops it when the benchmark ends.
func benchNode(b *testing.B, replicaOf string) *Server {
	b.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = b.TempDir()
	cfg.Durability = "none"
	cfg.ReplicaOf = replicaOf
	cfg.Replication.Token = replToken
	cfg.ShutdownTimeout = config.Duration(10 * time.Second)
	// Keep every segment: a subscriber that fell far behind reads them.
	cfg.WAL.KeepSegments = 1000
	cfg.Pools = []config.Pool{{Name: benchPool, Items: []config.Item{
		{ID: "gold", Quantity: 1 << 40, Weight: 10 * rewardpool.WeightUnit},
		{ID: "mud", Quantity: rewardpool.Unlimited, Weight: 90 * rewardpool.WeightUnit},
	}}}
	if err := cfg.Validate(); err != nil {
		b.Fatalf("config: %v", err)
	}
	srv := New(cfg, slog.New(slog.DiscardHandler), "bench")
	srv.replicaBackoff = 5 * time.Millisecond
	if err := srv.Listen(); err != nil {
		b.Fatalf("Listen: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
	})
	if err := srv.Recover(); err != nil {
		b.Fatalf("Recover: %v", err)
	}
	return srv
}

// slowSubscriber reads a StreamWAL stream, sleeping slowEvery after every
// slowBatch records, and checks that seqs are consecutive from its from_seq.
type slowSubscriber struct {
	from   uint64
	last   atomic.Uint64 // last seq received in order
	errMu  sync.Mutex
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *slowSubscriber) setErr(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *slowSubscriber) getErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func startSlowSubscriber(b *testing.B, primary *Server, from uint64) *slowSubscriber {
	b.Helper()
	conn, err := grpc.NewClient("passthrough:///"+primary.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+replToken)
	stream, err := rpv1.NewReplicationClient(conn).StreamWAL(ctx, &rpv1.StreamWALRequest{Pool: benchPool, FromSeq: from})
	if err == nil {
		_, err = stream.Header() // the server has registered the sink
	}
	if err != nil {
		cancel()
		conn.Close()
		b.Fatalf("StreamWAL: %v", err)
	}
	s := &slowSubscriber{from: from, cancel: cancel, done: make(chan struct{})}
	s.last.Store(from - 1)
	go func() {
		defer close(s.done)
		defer conn.Close()
		n := 0
		for {
			rec, err := stream.Recv()
			if err != nil {
				if ctx.Err() == nil {
					s.setErr(fmt.Errorf("Recv after seq %d: %w", s.last.Load(), err))
				}
				return
			}
			if want := s.last.Load() + 1; rec.GetSeq() != want {
				s.setErr(fmt.Errorf("received seq %d, want %d (gap or duplicate)", rec.GetSeq(), want))
				return
			}
			s.last.Store(rec.GetSeq())
			if n++; n%slowBatch == 0 {
				time.Sleep(slowEvery)
			}
		}
	}()
	b.Cleanup(s.stop)
	return s
}

func (s *slowSubscriber) stop() {
	s.cancel()
	<-s.done
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

func BenchmarkPrimaryWithSlowSubscriber(b *testing.B) {
	for _, mode := range []string{"none", "slow", "replica"} {
		b.Run(mode, func(b *testing.B) { benchPrimary(b, mode) })
	}
}

func benchPrimary(b *testing.B, mode string) {
	primary := benchNode(b, "")
	e, err := primary.pool(benchPool)
	if err != nil {
		b.Fatal(err)
	}
	start := e.LastSeq()
	var sub *slowSubscriber
	var rep *Server
	switch mode {
	case "slow":
		sub = startSlowSubscriber(b, primary, start+1)
	case "replica":
		rep = benchNode(b, primary.Addr().String())
		ok := waitFor(30*time.Second, func() bool {
			v := rep.replicationStatus()
			return len(v.Pools) == 1 && v.Pools[0].Connected && v.Pools[0].AppliedSeq == start
		})
		if !ok {
			b.Fatalf("replica not following: %+v", rep.replicationStatus())
		}
	}

	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchCallers)
	b.ResetTimer()
	for range benchCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []rewardpool.DrawResult
			for next.Add(1) <= int64(b.N) {
				var err error
				dst, err = e.DrawInto(ctx, dst[:0], rewardpool.DrawRequest{Count: 1})
				if err == nil && dst[0].Err != nil {
					err = dst[0].Err
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatalf("draw: %v", err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "draws/s")

	end := e.LastSeq()
	if end-start != uint64(b.N) {
		b.Fatalf("primary log grew by %d records for %d draws", end-start, b.N)
	}
	switch mode {
	case "slow":
		t0 := time.Now()
		ok := waitFor(5*time.Minute, func() bool { return sub.last.Load() >= end || sub.getErr() != nil })
		if err := sub.getErr(); err != nil {
			b.Fatalf("slow subscriber: %v", err)
		}
		if !ok {
			b.Fatalf("slow subscriber at seq %d, primary at %d after 5m", sub.last.Load(), end)
		}
		if got := sub.last.Load(); got != end {
			b.Fatalf("slow subscriber at seq %d, beyond the primary's %d", got, end)
		}
		b.ReportMetric(time.Since(t0).Seconds(), "s-sub-catchup")
	case "replica":
		ok := waitFor(2*time.Minute, func() bool { r, _ := rep.pool(benchPool); return r != nil && r.LastSeq() >= end })
		if !ok {
			b.Fatalf("replica did not catch up to seq %d: %+v", end, rep.replicationStatus())
		}
	}
}
