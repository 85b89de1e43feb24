package rewardpool

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// idlePools opens n small pools (2 items each) under dir in one process and
// measures what they cost while idle: live heap per pool (after a GC, so it
// counts what the engines keep, not garbage of their start-up), the time to
// open them all, and the disk blocks their directories hold. The engines are
// returned open; the caller closes them.
func idlePools(tb testing.TB, dir string, n, openers int) (engs []*Engine, heapPerPool, diskPerPool int64, took time.Duration) {
	engs, heapPerPool, diskPerPool, took, _ = idlePoolsCPU(tb, dir, n, openers)
	return engs, heapPerPool, diskPerPool, took
}

// idlePoolsCPU is idlePools that also returns the CPU time (user and
// system) the process spent opening the pools: on a machine shared with
// other jobs, wall times follow the neighbours, CPU time much less.
func idlePoolsCPU(tb testing.TB, dir string, n, openers int) (engs []*Engine, heapPerPool, diskPerPool int64, took, cpu time.Duration) {
	tb.Helper()
	items := []Item{
		{ID: "gold", Quantity: 1_000_000, Weight: 1 * WeightUnit},
		{ID: "silver", Quantity: Unlimited, Weight: 9 * WeightUnit},
	}
	quiet := slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError}))
	before := liveHeap()
	cpuStart := cpuTime()
	start := time.Now()
	engs = make([]*Engine, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	slots := make(chan struct{}, openers)
	for i := range n {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			engs[i], errs[i] = Open(filepath.Join(dir, fmt.Sprintf("pool-%04d", i)), Options{Items: items, Logger: quiet})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, e := range engs {
				if e != nil {
					e.Close()
				}
			}
			tb.Fatalf("open pool %d: %v", i, err)
		}
	}
	took = time.Since(start)
	cpu = cpuTime() - cpuStart
	heapPerPool = int64(liveHeap()-before) / int64(n)
	diskPerPool = diskUsage(tb, dir) / int64(n)
	runtime.KeepAlive(engs)
	return engs, heapPerPool, diskPerPool, took, cpu
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// diskUsage sums the blocks allocated to the files under dir (what `du`
// reports: preallocated space counts, holes do not).
func diskUsage(tb testing.TB, dir string) int64 {
	tb.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			var st syscall.Stat_t
			if err := syscall.Stat(path, &st); err != nil {
				return err
			}
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("disk usage of %s: %v", dir, err)
	}
	return total
}

// BenchmarkIdlePools opens REWARDPOOL_IDLE_POOLS (default 500) pools of 2
// items each in one process on a fresh temp dir per run and reports, per
// pool, the live heap and the disk they hold while idle, and the time to
// open all of them (open-s: created; reopen-s: recovered after a Close). One op is one such start-up; run it with -benchtime 1x
// and -count N and take medians. Add -memprofile/-cpuprofile to see where
// the memory and the time go. Pools are opened by 1 and by 64 goroutines
// at once.
func BenchmarkIdlePools(b *testing.B) {
	n := 500
	if s := os.Getenv("REWARDPOOL_IDLE_POOLS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("REWARDPOOL_IDLE_POOLS=%q: want a positive number", s)
		}
		n = v
	}
	// openers=1 is Open one pool after another; 64 is what the server does
	// at start-up (internal/server startupOpeners).
	for _, openers := range []int{1, 64} {
		b.Run(fmt.Sprintf("pools=%d/openers=%d", n, openers), func(b *testing.B) {
			for range b.N {
				dir := b.TempDir()
				engs, heap, disk, took, cpu := idlePoolsCPU(b, dir, n, openers)
				closeStart := time.Now()
				for _, e := range engs {
					if err := e.Close(); err != nil {
						b.Fatal(err)
					}
				}
				closeTook := time.Since(closeStart)
				// Start again on the same directory: every pool is
				// recovered (snapshot + log) rather than created.
				engs, _, _, reopenTook, reopenCPU := idlePoolsCPU(b, dir, n, openers)
				for _, e := range engs {
					if err := e.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(heap)/1024, "heap-KiB/pool")
				b.ReportMetric(float64(disk)/1024, "disk-KiB/pool")
				b.ReportMetric(took.Seconds(), "open-s")
				b.ReportMetric(cpu.Seconds(), "open-cpu-s")
				b.ReportMetric(reopenCPU.Seconds(), "reopen-cpu-s")
				b.ReportMetric(closeTook.Seconds(), "close-s")
				b.ReportMetric(reopenTook.Seconds(), "reopen-s")
			}
		})
	}
}

// An idle small pool must be cheap to keep open: a node serves hundreds.
// Each used to hold a whole preallocated 64 MiB log segment on disk and a
// 64 KiB encode buffer in memory.
func TestIdlePoolIsSmall(t *testing.T) {
	engs, heap, disk, _ := idlePools(t, t.TempDir(), 20, 4)
	for _, e := range engs {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Logf("per idle pool: %d KiB of heap, %d KiB of disk", heap>>10, disk>>10)
	if disk > 256<<10 {
		t.Errorf("an idle pool holds %d KiB of disk, want at most 256 KiB", disk>>10)
	}
	if heap > 64<<10 {
		t.Errorf("an idle pool holds %d KiB of heap, want at most 64 KiB", heap>>10)
	}
}
