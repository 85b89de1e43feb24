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
		crashChild(dir, crashVariantFromEnv())
		return
	}
	os.Exit(m.Run())
}

// crashVariant is one configuration the crash test runs.
type crashVariant struct {
	codec, storage string
	durability     Durability
	prune          bool // delete covered segments (the audit then sees only the kept log)
	players        bool // draw for players under rules (crash_players_test.go)
}

func (v crashVariant) name() string {
	n := v.codec + "/" + v.storage + "/" + string(v.durability)
	if v.prune {
		n += "/pruned"
	}
	return n
}

func (v crashVariant) env() []string {
	return []string{"REWARDPOOL_CRASH_CODEC=" + v.codec, "REWARDPOOL_CRASH_STORAGE=" + v.storage,
		"REWARDPOOL_CRASH_DURABILITY=" + string(v.durability), "REWARDPOOL_CRASH_PRUNE=" + strconv.FormatBool(v.prune),
		"REWARDPOOL_CRASH_PLAYERS=" + strconv.FormatBool(v.players)}
}

func crashVariantFromEnv() crashVariant {
	prune, _ := strconv.ParseBool(os.Getenv("REWARDPOOL_CRASH_PRUNE"))
	players, _ := strconv.ParseBool(os.Getenv("REWARDPOOL_CRASH_PLAYERS"))
	return crashVariant{os.Getenv("REWARDPOOL_CRASH_CODEC"), os.Getenv("REWARDPOOL_CRASH_STORAGE"),
		Durability(os.Getenv("REWARDPOOL_CRASH_DURABILITY")), prune, players}
}

func crashOptions(v crashVariant) Options {
	keep, segment := 1<<30, int64(32<<10) // keep the whole log so the parent can audit it
	if v.prune {
		keep, segment = 0, 8<<10
	}
	return Options{
		Items: []Item{
			{ID: "rare", Quantity: 300, Weight: 5 * WeightUnit},
			{ID: "common", Quantity: 1000, Weight: 20 * WeightUnit},
			{ID: "dust", Quantity: Unlimited, Weight: WeightUnit / 10},
		},
		Codec:         v.codec,
		Storage:       v.storage,
		Durability:    v.durability,
		SegmentSize:   segment, // rotate often
		SnapshotEvery: 400,     // snapshot often
		KeepSegments:  keep,
		Logger:        quietLogger(),
	}
}

// crashChild draws until it is killed. Output lines:
//
//	D <request id> <item id|FAILED>   an acknowledged draw
//	S <item id> <quantity>            an acknowledged restock
func crashChild(dir string, v crashVariant) {
	if v.players {
		crashChildPlayers(dir, v)
		return
	}
	e, err := Open(dir, crashOptions(v))
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
	seed := uint64(time.Now().UnixNano())
	if env := os.Getenv("REWARDPOOL_CRASH_SEED"); env != "" {
		seed, _ = strconv.ParseUint(env, 10, 64)
	}
	t.Logf("kill points from seed %d (set REWARDPOOL_CRASH_SEED to repeat)", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	var variants []crashVariant
	for _, codec := range []string{"binary", "text", "jsonl"} {
		for _, storage := range []string{"file", "mmap"} {
			variants = append(variants, crashVariant{codec, storage, DurabilityAlways, false, false})
		}
	}
	// Interval mode acknowledges after the write, before the fsync: that
	// still survives kill -9 (the page cache outlives the process).
	variants = append(variants, crashVariant{"binary", "file", DurabilityInterval, false, false},
		crashVariant{"binary", "mmap", DurabilityInterval, false, false},
		// Snapshots delete covered segments: recovery must still be exact.
		crashVariant{"binary", "file", DurabilityAlways, true, false})
	if len(variants)*6 < 20 {
		t.Fatalf("only %d crash cycles planned, want at least 20", len(variants)*6)
	}
	for _, v := range variants {
		t.Run(v.name(), func(t *testing.T) {
			dir := t.TempDir()
			acked := map[uint64]string{}
			restocks := map[int64]int{}
			var maxAcked uint64
			for cycle := range 6 {
				killAfter := 20 + rng.IntN(1500)
				lines := runAndKill(t, exe, dir, v, killAfter)
				maxBefore := maxAcked
				var cycleMin uint64
				for _, l := range lines {
					f := strings.Fields(l)
					if len(f) == 3 && f[0] == "S" {
						q, _ := strconv.ParseInt(f[2], 10, 64)
						restocks[q]++
						continue
					}
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
				auditCrashDir(t, dir, v, acked, restocks, maxAcked)
			}
			// Finally: the next id after all the crashes is above every acknowledged one.
			e := mustOpen(t, dir, crashOptions(v))
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

// runAndKill starts the child on dir, lets it acknowledge killAfter lines,
// kill -9s it, and returns every line it printed (all of them acknowledged).
func runAndKill(t *testing.T, exe, dir string, v crashVariant, killAfter int) []string {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), crashChildEnv+"="+dir), v.env()...)
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
// acknowledged draws: every acknowledged draw and restock is in the log,
// the recovered state is exactly what the log implies, and no limited item
// was issued beyond its stock. With pruning, the log starts after the
// oldest kept snapshot, so only what it still holds can be checked against
// it; the id and quantity checks still apply to everything.
func auditCrashDir(t *testing.T, dir string, v crashVariant, acked map[uint64]string, restocks map[int64]int, maxAcked uint64) {
	t.Helper()
	e := mustOpen(t, dir, crashOptions(v))
	st := mustState(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if st.LastRequestID < maxAcked {
		t.Fatalf("recovered last request id %d is below acknowledged %d", st.LastRequestID, maxAcked)
	}
	for _, it := range st.Items {
		if it.Quantity < Unlimited {
			t.Fatalf("item %s over-issued: %d", it.ID, it.Quantity)
		}
	}

	l, err := wal.Open(filepath.Join(dir, walDir), crashOptions(v).walOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	first := l.FirstSeq()
	if v.prune {
		t.Logf("log kept from seq %d", first)
	}
	if !v.prune && first != 1 {
		t.Fatalf("log starts at seq %d, want 1 (nothing is pruned)", first)
	}
	logged := map[uint64]string{}
	remaining := map[string]int64{}
	// The binary codec logs draws by slot. No item is ever removed here, so
	// the live items are the slots in order (and a pruned log may have lost
	// the ADD records).
	slotID := map[int32]string{}
	for i, it := range st.Items {
		slotID[int32(i)] = it.ID
	}
	sets := map[int64]int{}
	var firstID, lastID uint64
	err = l.Scan(first, func(r *wal.Record) error {
		switch r.Kind {
		case wal.KindAdd:
			slotID[r.Item] = r.ItemID
			remaining[r.ItemID] = r.Quantity
		case wal.KindSet:
			remaining[r.ItemID] = r.Quantity
			if r.ItemID == "rare" {
				sets[r.Quantity]++
			}
		case wal.KindDraw:
			id := r.ItemID
			if id == "" {
				id = slotID[r.Item]
			}
			logged[r.RequestID] = id
			if rem, ok := remaining[id]; ok && rem != Unlimited {
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
		if (r.Kind == wal.KindDraw || r.Kind == wal.KindDrawFailed) && firstID == 0 {
			firstID = r.RequestID
		}
		return nil
	})
	if err != nil {
		t.Fatalf("audit scan: %v", err)
	}
	for id, item := range acked {
		if v.prune && id < firstID {
			continue // in a deleted segment, covered by a snapshot
		}
		if got, ok := logged[id]; !ok || got != item {
			t.Fatalf("acknowledged draw %d -> %s is in the log as %q (present=%v)", id, item, got, ok)
		}
	}
	switch {
	case lastID == 0:
	case v.durability != DurabilityAlways && st.LastRequestID > lastID:
		// A torn tail cut under a mode that answers before the fsync may
		// have held acknowledged draws: ids continue above the ceiling.
	case st.LastRequestID != lastID:
		t.Fatalf("recovered last request id %d, log says %d", st.LastRequestID, lastID)
	}
	if v.prune {
		return
	}
	for q, n := range restocks {
		if sets[q] < n {
			t.Fatalf("%d acknowledged restocks of rare to %d, only %d in the log", n, q, sets[q])
		}
	}
	for _, it := range st.Items {
		if it.Quantity != remaining[it.ID] {
			t.Fatalf("item %s: recovered quantity %d, log implies %d", it.ID, it.Quantity, remaining[it.ID])
		}
	}
}
