package rewardpool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/rewardpool/rewardpool/internal/fsys/sim"
	"github.com/rewardpool/rewardpool/journal"
)

// TestPowerLossPoolsShareAJournal: three pools commit through one journal
// on the power-loss simulator, drawing at the same time so rounds carry
// batches of several pools; the power goes at a random file-system
// operation. After every restart each pool's log holds every draw it
// acknowledged, with its item, and ids keep increasing.
func TestPowerLossPoolsShareAJournal(t *testing.T) {
	runs := 24
	if raceEnabled || testing.Short() {
		runs = 4
	}
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		if err := sharedJournalRun(seed); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func sharedJournalRun(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 11))
	fs := sim.New(seed)
	pools := []string{"a", "b", "c"}
	acked := map[string]map[uint64]string{}
	maxID := map[string]uint64{}
	for _, p := range pools {
		acked[p] = map[uint64]string{}
	}
	dead := func() bool {
		select {
		case <-fs.Crashed():
			return true
		default:
			return false
		}
	}
	for cycle := 0; cycle < 10; cycle++ {
		fs.CrashAfter(20 + rng.IntN(400))
		err := func() error {
			j, err := journal.Open("/data/.journal", journal.Options{FS: fs, Logger: quietLogger(), SegmentSize: int64(2048 + rng.IntN(3)*1024)})
			if err != nil {
				return err
			}
			defer j.Close()
			engines := map[string]*Engine{}
			defer func() {
				for _, e := range engines {
					e.Close()
				}
			}()
			for i, p := range pools {
				sb := [32]byte{byte(seed), byte(i), byte(cycle)}
				e, err := Open("/data/"+p, Options{
					Items: []Item{
						{ID: "gem", Quantity: 300, Weight: 5 * WeightUnit},
						{ID: "mud", Quantity: Unlimited, Weight: WeightUnit},
					},
					Codec:        []string{"binary", "text"}[i%2],
					SegmentSize:  1024,
					Logger:       quietLogger(),
					Seed:         &sb,
					KeepSegments: 1 << 30,
					Journal:      j,
					fs:           fs,
				})
				if err != nil {
					return err
				}
				engines[p] = e
				var cerr error
				fs.Hold(func() { cerr = checkAcked(fs, "/data/"+p, e, acked[p], maxID[p]) })
				if cerr != nil {
					return fmt.Errorf("cycle %d pool %s: %w", cycle, p, cerr)
				}
			}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for _, p := range pools {
				wg.Add(1)
				go func(p string, e *Engine) {
					defer wg.Done()
					for k := 0; k < 25; k++ {
						res, err := e.Draw(ctx, DrawRequest{Count: 1 + k%3})
						if err != nil {
							return
						}
						mu.Lock()
						for _, r := range res {
							acked[p][r.RequestID] = r.ItemID
							maxID[p] = max(maxID[p], r.RequestID)
						}
						mu.Unlock()
					}
				}(p, engines[p])
			}
			wg.Wait()
			return nil
		}()
		if err != nil && !dead() {
			return err
		}
		if dead() {
			fs = fs.AfterCrash()
		} else {
			fs = fs.PowerCut()
		}
	}
	return nil
}

// checkAcked checks that the pool's logs hold every acknowledged draw with
// its item, and that the next id is above every acknowledged one.
func checkAcked(fs *sim.FS, dir string, e *Engine, acked map[uint64]string, maxID uint64) error {
	hist, err := readHistory(fs, dir, e)
	if err != nil {
		return err
	}
	for id, item := range acked {
		if got, ok := hist.draws[id]; !ok || got != item {
			return fmt.Errorf("acknowledged draw %d (%q) is %q in the log (present: %v)", id, item, got, ok)
		}
	}
	st, err := e.State(ctx)
	if err != nil {
		return err
	}
	if st.LastRequestID < maxID {
		return fmt.Errorf("last request id %d is below the acknowledged %d", st.LastRequestID, maxID)
	}
	return nil
}

// A directory whose run committed through a journal and then lost power
// may hold its last acknowledged draws only in the journal: opening it
// without the journal, or repairing it offline, is refused until a run
// with the journal replays them and closes cleanly.
func TestJournaledDirectoryNeedsItsJournal(t *testing.T) {
	fs := sim.New(3)
	opts := func(j *journal.Journal) Options {
		return Options{Items: []Item{{ID: "gem", Quantity: 50, Weight: WeightUnit}}, Logger: quietLogger(), Journal: j, fs: fs}
	}
	j, err := journal.Open("/data/.journal", journal.Options{FS: fs, Logger: quietLogger(), SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open("/data/p", opts(j))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Draw(ctx, DrawRequest{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	fs = fs.PowerCut()

	if _, err := Open("/data/p", opts(nil)); !errors.Is(err, ErrJournalPending) {
		t.Fatalf("open without the journal after a power cut: %v, want ErrJournalPending", err)
	}
	if _, err := repairLog(fs, "/data/p", quietLogger()); err != nil && !errors.Is(err, ErrJournalPending) {
		t.Fatalf("repair: %v", err)
	}
	j, err = journal.Open("/data/.journal", journal.Options{FS: fs, Logger: quietLogger(), SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	e, err = Open("/data/p", opts(j))
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastRequestID < res[2].RequestID || quantities(st)["gem"] != 47 {
		t.Fatalf("after the journal replayed: last id %d, gem %d; want >= %d and 47", st.LastRequestID, quantities(st)["gem"], res[2].RequestID)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = Open("/data/p", opts(nil))
	if err != nil {
		t.Fatalf("open without the journal after a clean close: %v", err)
	}
	e.Close()
}
