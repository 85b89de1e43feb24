package rewardpool

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/wal"
)

// The crash test runs a real child process (this test binary, re-executed
// with crashChildEnv set) that draws under load from several goroutines and
// prints every acknowledged result as soon as Draw returns. The parent
// kill -9s it at a random moment, then checks the data directory against
// everything the child acknowledged.

const crashChildEnv = "REWARDPOOL_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir, os.Getenv("REWARDPOOL_CRASH_CODEC"), os.Getenv("REWARDPOOL_CRASH_STORAGE"))
		return
	}
	os.Exit(m.Run())
}

func crashOptions(codec, storage string) Options {
	return Options{
		Items: []Item{
			{ID: "rare", Quantity: 300, Weight: 5 * WeightUnit},
			{ID: "common", Quantity: 1000, Weight: 20 * WeightUnit},
			{ID: "dust", Quantity: Unlimited, Weight: WeightUnit / 10},
		},
		Codec:         codec,
		Storage:       storage,
		SegmentSize:   32 << 10, // rotate often
		SnapshotEvery: 400,      // snapshot often
		KeepSegments:  1 << 30,  // keep the whole log so the parent can audit it
		Logger:        quietLogger(),
	}
}

// crashChild draws until it is killed. Output lines:
//
//	D <request id> <item id|FAILED>   an acknowledged draw
//	S <item id> <quantity>            an acknowledged restock
func crashChild(dir, codec, storage string) {
	e, err := Open(dir, crashOptions(codec, storage))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex // one line per write(2), never interleaved
	emit := func(line string) {
		mu.Lock()
		os.Stdout.WriteString(line)
		mu.Unlock()
	}
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				if g == 0 && i%150 == 149 {
					if err := e.SetItem(context.Background(), Item{ID: "rare", Quantity: int64(i % 40), Weight: 5 * WeightUnit}); err != nil {
						fmt.Fprintln(os.Stderr, "restock:", err)
						os.Exit(4)
					}
					emit(fmt.Sprintf("S rare %d\n", i%40))
				}
				res, err := e.Draw(context.Background(), DrawRequest{Count: 1 + i%3})
				if err != nil {
					fmt.Fprintln(os.Stderr, "draw:", err)
					os.Exit(4)
				}
				var b strings.Builder
				for _, r := range res {
					item := r.ItemID
					if r.Err != nil {
						item = "FAILED"
					}
					fmt.Fprintf(&b, "D %d %s\n", r.RequestID, item)
				}
				emit(b.String())
			}
		}()
	}
	select {}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test needs child processes; skipped in -short")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	cycles := 0
	for _, codec := range []string{"binary", "text", "jsonl"} {
		for _, storage := range []string{"file", "mmap"} {
			t.Run(codec+"/"+storage, func(t *testing.T) {
				dir := t.TempDir()
				acked := map[uint64]string{}
				var maxAcked uint64
				for cycle := range 6 {
					cycles++
					killAfter := 20 + rng.IntN(1500)
					lines := runAndKill(t, exe, dir, codec, storage, killAfter)
					maxBefore := maxAcked
					var cycleMin uint64
					for _, l := range lines {
						f := strings.Fields(l)
						if len(f) != 3 || f[0] != "D" {
							continue
						}
						id, err := strconv.ParseUint(f[1], 10, 64)
						if err != nil {
							t.Fatalf("bad child line %q", l)
						}
						if _, dup := acked[id]; dup {
							t.Fatalf("cycle %d: request id %d acknowledged twice", cycle, id)
						}
						if cycleMin == 0 || id < cycleMin {
							cycleMin = id
						}
						acked[id] = f[2]
						maxAcked = max(maxAcked, id)
					}
					if cycleMin != 0 && cycleMin <= maxBefore {
						t.Fatalf("cycle %d: child handed out id %d, not above the ids acknowledged before the crash", cycle, cycleMin)
					}
					auditCrashDir(t, dir, codec, storage, acked)
				}
				// Finally: the next id after all the crashes is above every acknowledged one.
				e := mustOpen(t, dir, crashOptions(codec, storage))
				r := mustDraw(t, e, DrawRequest{})
				if err := e.Close(); err != nil {
					t.Fatal(err)
				}
				if r[0].RequestID <= maxAcked {
					t.Fatalf("next request id %d is not above acknowledged %d", r[0].RequestID, maxAcked)
				}
				t.Logf("%d acknowledged draws survived 6 kill -9 cycles", len(acked))
			})
		}
	}
	if cycles < 20 {
		t.Fatalf("only %d crash cycles ran", cycles)
	}
}

// runAndKill starts the child on dir, lets it acknowledge killAfter lines,
// kill -9s it, and returns every line it printed (all of them acknowledged).
func runAndKill(t *testing.T, exe, dir, codec, storage string, killAfter int) []string {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir,
		"REWARDPOOL_CRASH_CODEC="+codec, "REWARDPOOL_CRASH_STORAGE="+storage)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	enough := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if len(lines) == killAfter {
				close(enough)
			}
		}
	}()
	select {
	case <-enough:
	case <-readDone:
	case <-time.After(60 * time.Second):
		t.Errorf("child printed only some lines in 60s")
	}
	cmd.Process.Kill() // SIGKILL: no chance to flush or close
	<-readDone         // the pipe closes when the child is gone; every line it wrote is read
	cmd.Wait()
	if len(lines) < killAfter && stderr.Len() > 0 {
		t.Fatalf("child failed before the kill: %s", stderr.String())
	}
	return lines
}

// auditCrashDir reopens dir and checks the promises against the log and the
// acknowledged draws: every acknowledged draw is in the log with its item,
// the recovered state is exactly what the log implies, and no limited item
// was issued beyond its stock.
func auditCrashDir(t *testing.T, dir, codec, storage string, acked map[uint64]string) {
	t.Helper()
	e := mustOpen(t, dir, crashOptions(codec, storage))
	st := mustState(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	l, err := wal.Open(filepath.Join(dir, walDir), crashOptions(codec, storage).walOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	logged := map[uint64]string{}
	remaining := map[string]int64{}
	slotID := map[int32]string{}
	var lastID uint64
	err = l.Scan(1, func(r *wal.Record) error {
		switch r.Kind {
		case wal.KindAdd:
			slotID[r.Item] = r.ItemID
			remaining[r.ItemID] = r.Quantity
		case wal.KindSet:
			remaining[r.ItemID] = r.Quantity
		case wal.KindDraw:
			id := r.ItemID
			if id == "" {
				id = slotID[r.Item]
			}
			logged[r.RequestID] = id
			if remaining[id] != Unlimited {
				remaining[id]--
				if remaining[id] < 0 {
					return fmt.Errorf("item %s over-issued at request %d", id, r.RequestID)
				}
			}
			lastID = r.RequestID
		case wal.KindDrawFailed:
			logged[r.RequestID] = "FAILED"
			lastID = r.RequestID
		}
		return nil
	})
	if err != nil {
		t.Fatalf("audit scan: %v", err)
	}
	for id, item := range acked {
		if got, ok := logged[id]; !ok || got != item {
			t.Fatalf("acknowledged draw %d -> %s is in the log as %q (present=%v)", id, item, got, ok)
		}
	}
	if st.LastRequestID != lastID {
		t.Fatalf("recovered last request id %d, log says %d", st.LastRequestID, lastID)
	}
	for _, it := range st.Items {
		if it.Quantity != remaining[it.ID] {
			t.Fatalf("item %s: recovered quantity %d, log implies %d", it.ID, it.Quantity, remaining[it.ID])
		}
		if it.Quantity < Unlimited {
			t.Fatalf("item %s over-issued: %d", it.ID, it.Quantity)
		}
	}
}
