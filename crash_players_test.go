package rewardpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/gacha"
	"github.com/rewardpool/rewardpool/wal"
)

// The crash test with players: the child draws for 32 players of a pool
// with pity, a featured guarantee, a lifetime cap and an item cap; the
// parent kill -9s it, reopens the directory and checks every player's
// state against the log and the acknowledged draws, and the rules against
// every logged pull (hard pity fired on time, no cap exceeded).

const crashPlayers = 32

func crashPlayerOptions(v crashVariant) Options {
	o := crashOptions(v)
	o.Items = []Item{
		{ID: "ssr_f", Quantity: 200, Weight: WeightUnit},
		{ID: "ssr_s", Quantity: Unlimited, Weight: WeightUnit},
		{ID: "sr", Quantity: 500, Weight: 5 * WeightUnit},
		{ID: "dust", Quantity: Unlimited, Weight: 30 * WeightUnit},
	}
	o.Rules = &gacha.Rules{
		Items: []gacha.ItemTier{{Item: "ssr_f", Tier: "ssr", Featured: true}, {Item: "ssr_s", Tier: "ssr"}, {Item: "sr", Tier: "sr"}},
		Pity: []gacha.Pity{
			{Tier: "ssr", Hard: 12, SoftStart: 8, SoftStep: 0.1, FeaturedGuarantee: true},
			{Tier: "sr", Hard: 4},
		},
		PerUser:  gacha.PerUser{MaxDraws: 100},
		ItemCaps: []gacha.ItemCap{{Item: "ssr_f", MaxPerUser: 3}},
	}
	return o
}

// crashChildPlayers draws until killed, printing "D <id> <item|FAILED>
// <user>" for every acknowledged draw. Once every player has been refused
// by the lifetime cap it exits: a child running ahead of the parent (whose
// kill lands late under load) must not spin with nothing to print.
func crashChildPlayers(dir string, v crashVariant) {
	e, err := Open(dir, crashPlayerOptions(v))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	capped := map[string]bool{}
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				user := "p" + strconv.Itoa((g*7+i)%crashPlayers)
				res, err := e.Draw(context.Background(), DrawRequest{Count: 1 + i%3, UserID: user})
				if errors.Is(err, ErrUserLimit) {
					mu.Lock()
					capped[user] = true
					if len(capped) == crashPlayers {
						os.Exit(0) // everything printed is acknowledged
					}
					mu.Unlock()
					continue
				}
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
					fmt.Fprintf(&b, "D %d %s %s\n", r.RequestID, item, user)
				}
				mu.Lock()
				os.Stdout.WriteString(b.String())
				mu.Unlock()
			}
		}()
	}
	select {}
}

func TestCrashRecoveryPlayers(t *testing.T) {
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
	rng := rand.New(rand.NewPCG(seed, 11))
	for _, v := range []crashVariant{
		{"binary", "file", DurabilityAlways, false, true},
		{"text", "mmap", DurabilityAlways, false, true},
		{"jsonl", "file", DurabilityInterval, false, true},
	} {
		t.Run(v.name(), func(t *testing.T) {
			dir := t.TempDir()
			acked := map[uint64]string{} // id -> "item user"
			for cycle := range 4 {
				// The lifetime cap allows 3,200 draws in all: late cycles
				// may find every player capped (the child then exits).
				lines := runAndKill(t, exe, dir, v, 20+rng.IntN(680))
				for _, l := range lines {
					f := strings.Fields(l)
					if len(f) != 4 || f[0] != "D" {
						continue
					}
					id, err := strconv.ParseUint(f[1], 10, 64)
					if err != nil {
						t.Fatalf("bad child line %q", l)
					}
					if _, dup := acked[id]; dup {
						t.Fatalf("cycle %d: request id %d acknowledged twice", cycle, id)
					}
					acked[id] = f[2] + " " + f[3]
				}
				auditPlayers(t, dir, v, acked)
			}
		})
	}
}

// auditPlayers replays the log with a reference of the rules, checking each
// logged pull against them, and compares the engine's recovered players
// with the reference and the acknowledged draws with the log.
func auditPlayers(t *testing.T, dir string, v crashVariant, acked map[uint64]string) {
	t.Helper()
	o := crashPlayerOptions(v)
	e := mustOpen(t, dir, o)
	got := map[string]gacha.PlayerState{}
	for i := range crashPlayers {
		u := "p" + strconv.Itoa(i)
		ps, _, err := e.Player(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		got[u] = ps
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	l, err := wal.Open(filepath.Join(dir, walDir), o.walOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	slotID := map[int32]string{}
	remaining := map[string]int64{}
	ref := map[string]*refPlayer{}
	logged := map[uint64]string{}
	err = l.Scan(1, func(r *wal.Record) error {
		switch r.Kind {
		case wal.KindAdd:
			slotID[r.Item], remaining[r.ItemID] = r.ItemID, r.Quantity
		case wal.KindDrawFailed:
			logged[r.RequestID] = "FAILED " + r.User
		case wal.KindDraw:
			item := r.ItemID
			if item == "" {
				item = slotID[r.Item]
			}
			logged[r.RequestID] = item + " " + r.User
			if remaining[item] != Unlimited {
				if remaining[item]--; remaining[item] < 0 {
					return fmt.Errorf("%s over-issued at request %d", item, r.RequestID)
				}
			}
			if r.User == "" {
				return fmt.Errorf("request %d: a draw without a player", r.RequestID)
			}
			p := ref[r.User]
			if p == nil {
				p = &refPlayer{}
				ref[r.User] = p
			}
			tier := map[string]string{"ssr_f": "ssr", "ssr_s": "ssr", "sr": "sr"}[item]
			switch {
			case p.ssr+1 >= 12 && tier != "ssr":
				return fmt.Errorf("request %d: %s's draw %d without an ssr gave %s", r.RequestID, r.User, p.ssr+1, item)
			case p.ssr+1 < 8 && p.sr+1 >= 4 && remaining["sr"]+boolInt(item == "sr") > 0 && tier != "sr":
				return fmt.Errorf("request %d: %s's draw %d without an sr gave %s", r.RequestID, r.User, p.sr+1, item)
			case p.owed && tier == "ssr" && p.heldFeatured < 3 && remaining["ssr_f"]+boolInt(item == "ssr_f") > 0 && item != "ssr_f":
				return fmt.Errorf("request %d: %s was owed the featured ssr, got %s", r.RequestID, r.User, item)
			}
			p.draws++
			p.ssr++
			p.sr++
			switch item {
			case "ssr_f":
				p.ssr, p.owed = 0, false
				p.heldFeatured++
			case "ssr_s":
				p.ssr, p.owed = 0, true
			case "sr":
				p.sr = 0
			}
			if p.draws > 100 || p.heldFeatured > 3 {
				return fmt.Errorf("request %d: %s has %d draws and %d ssr_f, caps 100 and 3", r.RequestID, r.User, p.draws, p.heldFeatured)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("audit scan: %v", err)
	}
	for id, want := range acked {
		if logged[id] != want {
			t.Fatalf("acknowledged draw %d (%s) is in the log as %q", id, want, logged[id])
		}
	}
	for u, ps := range got {
		p := ref[u]
		if p == nil {
			p = &refPlayer{}
		}
		g := fmt.Sprintf("draws=%d ssr=%d owed=%t sr=%d held=%d", ps.Draws, ps.Pity[0].Count, ps.Pity[0].FeaturedOwed, ps.Pity[1].Count, ps.Held[0].Count)
		w := fmt.Sprintf("draws=%d ssr=%d owed=%t sr=%d held=%d", p.draws, p.ssr, p.owed, p.sr, p.heldFeatured)
		if g != w {
			t.Fatalf("%s recovered %s, the log implies %s", u, g, w)
		}
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
