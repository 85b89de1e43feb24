package rewardpool

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/rewardpool/rewardpool/internal/fsys/sim"
	"github.com/rewardpool/rewardpool/journal"
	"github.com/rewardpool/rewardpool/wal"
)

// TestPowerLossPlayersThroughAJournal: a pool with player rules commits
// through the node journal on the power-loss simulator; after every power
// cut and restart (the journal's batches redone into the pool's log) each
// player's draw count is exactly what the log holds for them, never below
// what they were acknowledged, and never above the lifetime cap.
func TestPowerLossPlayersThroughAJournal(t *testing.T) {
	runs := 12
	if raceEnabled || testing.Short() {
		runs = 3
	}
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		if err := playersJournalRun(seed); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func playersJournalRun(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 13))
	fs := sim.New(seed)
	rules := hardOnly()
	rules.PerUser.MaxDraws = 40
	acked := map[string]int{}
	dead := func() bool {
		select {
		case <-fs.Crashed():
			return true
		default:
			return false
		}
	}
	for cycle := 0; cycle < 8; cycle++ {
		fs.CrashAfter(20 + rng.IntN(400))
		err := func() error {
			j, err := journal.Open("/data/.journal", journal.Options{FS: fs, Logger: quietLogger(), SegmentSize: 2048})
			if err != nil {
				return err
			}
			defer j.Close()
			sb := [32]byte{byte(seed), byte(cycle)}
			e, err := Open("/data/banner", Options{Items: playerItems(), Rules: rules, Codec: []string{"binary", "text", "jsonl"}[cycle%3],
				SegmentSize: 1024, Logger: quietLogger(), Seed: &sb, KeepSegments: 1 << 30, Journal: j, fs: fs})
			if err != nil {
				return err
			}
			defer e.Close()
			var cerr error
			fs.Hold(func() { cerr = checkPlayersAgainstLog(e, acked, int(rules.PerUser.MaxDraws)) })
			if cerr != nil {
				return fmt.Errorf("cycle %d: %w", cycle, cerr)
			}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for g := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := 0; k < 20; k++ {
						u := fmt.Sprintf("p%d", (g*5+k)%6)
						res, err := e.Draw(ctx, DrawRequest{Count: 1 + k%3, UserID: u})
						if err != nil {
							continue // a cap, or the power went
						}
						mu.Lock()
						for _, r := range res {
							if r.Err == nil {
								acked[u]++
							}
						}
						mu.Unlock()
					}
				}()
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

// checkPlayersAgainstLog compares each player's recovered draw count with
// the DRAW records of the pool's log (when it holds the whole history) and
// with what was acknowledged.
func checkPlayersAgainstLog(e *Engine, acked map[string]int, maxDraws int) error {
	logged := map[string]int{}
	whole := e.FirstLogSeq() == 1
	if whole {
		if err := e.ScanLog(1, func(r *wal.Record) error {
			if r.Kind == wal.KindDraw && r.User != "" {
				logged[r.User]++
			}
			return nil
		}); err != nil {
			return err
		}
	}
	for i := range 6 {
		u := fmt.Sprintf("p%d", i)
		ps, _, err := e.Player(ctx, u)
		if err != nil {
			return err
		}
		switch {
		case int(ps.Draws) < acked[u]:
			return fmt.Errorf("%s: %d draws recovered, %d acknowledged", u, ps.Draws, acked[u])
		case int(ps.Draws) > maxDraws:
			return fmt.Errorf("%s: %d draws, above the cap of %d", u, ps.Draws, maxDraws)
		case whole && int(ps.Draws) != logged[u]:
			return fmt.Errorf("%s: %d draws recovered, the log holds %d", u, ps.Draws, logged[u])
		}
	}
	return nil
}
