package rewardpool

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/journal"
)

// BenchmarkPoolsShareCommit is the many-banners case at the engine:
// 16 callers, each drawing one at a time, either all on one pool or one per
// pool, with every pool fsyncing its own log or all sharing the node
// journal. Compare draws/s of pools=16 with pools=1 in the same mode:
//
//	go test -run '^$' -bench BenchmarkPoolsShareCommit -benchtime 3s -count 5 .
func BenchmarkPoolsShareCommit(b *testing.B) {
	for _, mode := range []string{"own-log", "journal"} {
		for _, pools := range []int{1, 16} {
			b.Run(fmt.Sprintf("commit=%s/pools=%d/callers=16", mode, pools), func(b *testing.B) {
				benchPools(b, mode == "journal", pools, 16)
			})
		}
	}
}

func benchPools(b *testing.B, shared bool, pools, callers int) {
	dir := b.TempDir()
	var j *journal.Journal
	if shared {
		var err error
		if j, err = journal.Open(filepath.Join(dir, ".journal"), journal.Options{Logger: quietLogger()}); err != nil {
			b.Fatal(err)
		}
		defer j.Close()
	}
	engines := make([]*Engine, pools)
	for i := range engines {
		engines[i] = mustOpen(b, filepath.Join(dir, fmt.Sprintf("pool%d", i)), Options{
			Items: benchItems(6), Durability: DurabilityAlways, Logger: quietLogger(), Journal: j,
		})
		defer engines[i].Close()
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(e *Engine) {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if _, err := e.Draw(ctx, DrawRequest{Count: 1}); err != nil {
					b.Error(err)
					return
				}
			}
		}(engines[c%pools])
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "draws/s")
	var syncs uint64
	for _, e := range engines {
		syncs += e.Stats().Batches
	}
	b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "draws/batch")
}
