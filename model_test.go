package rewardpool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/gacha"
	"github.com/rewardpool/rewardpool/snapshot"
	"pgregory.net/rapid"
)

// refModel is the tiny reference the engine is checked against: a list of
// slots in catalog order, the last request id, and the answered keys.
type refModel struct {
	slots  []refSlot
	lastID uint64
	keys   map[string][]DrawResult
	order  []string // keys in arrival order; the window is the last `window`
	window int
}

// remember adds an answered key and forgets the oldest beyond the window.
func (m *refModel) remember(key string, res []DrawResult) {
	m.keys[key] = res
	m.order = append(m.order, key)
	for len(m.order) > m.window {
		delete(m.keys, m.order[0])
		m.order = m.order[1:]
	}
}

type refSlot struct {
	Item
	removed bool
}

func (m *refModel) find(id string) int {
	for i, s := range m.slots {
		if s.ID == id {
			return i
		}
	}
	return -1
}

func (m *refModel) live(id string) (int, bool) {
	i := m.find(id)
	return i, i >= 0 && !m.slots[i].removed
}

func (m *refModel) available() bool {
	for _, s := range m.slots {
		if !s.removed && s.Quantity != 0 {
			return true
		}
	}
	return false
}

func (m *refModel) items() []Item {
	var out []Item
	for _, s := range m.slots {
		if !s.removed {
			out = append(out, s.Item)
		}
	}
	return out
}

// TestModel runs random sequences of draws (plain and idempotent, with a
// small key window so keys are forgotten and reused), admin changes, clean
// reopens and reopens with a damaged newest snapshot against
// the reference model, checking after every step that the state matches,
// that no item went below zero, and that ids only ever grow.
func TestModel(t *testing.T) {
	base := t.TempDir()
	n := 0
	ids := []string{"a", "b", "c", "d"}
	rapid.Check(t, func(rt *rapid.T) {
		n++
		dir := filepath.Join(base, fmt.Sprint(n))
		o := Options{
			Logger:            quietLogger(),
			Durability:        rapid.SampledFrom([]Durability{DurabilityNone, DurabilityInterval, DurabilityAlways}).Draw(rt, "durability"),
			IdempotencyWindow: rapid.IntRange(1, 4).Draw(rt, "window"),
			Codec:             rapid.SampledFrom([]string{"binary", "text", "jsonl"}).Draw(rt, "codec"),
			Storage:           rapid.SampledFrom([]string{"file", "mmap"}).Draw(rt, "storage"),
			SegmentSize:       2048,
			SnapshotEvery:     uint64(rapid.IntRange(5, 60).Draw(rt, "snapshotEvery")),
			Items:             []Item{{ID: "a", Quantity: 3, Weight: WeightUnit}, {ID: "b", Quantity: Unlimited, Weight: 1}},
		}
		m := &refModel{keys: map[string][]DrawResult{}, window: o.IdempotencyWindow}
		for _, it := range o.Items {
			m.slots = append(m.slots, refSlot{Item: it})
		}
		e, err := Open(dir, o)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { e.Close() }()

		genItem := func(rt *rapid.T) Item {
			return Item{
				ID:       rapid.SampledFrom(ids).Draw(rt, "id"),
				Quantity: rapid.Int64Range(-1, 4).Draw(rt, "quantity"),
				Weight:   rapid.Uint64Range(1, 3*WeightUnit).Draw(rt, "weight"),
			}
		}
		reopen := func(rt *rapid.T) {
			if err := e.Close(); err != nil {
				rt.Fatalf("Close: %v", err)
			}
			if e, err = Open(dir, o); err != nil {
				rt.Fatalf("reopen: %v", err)
			}
		}

		rt.Repeat(map[string]func(*rapid.T){
			"draw": func(rt *rapid.T) {
				req := DrawRequest{Count: rapid.IntRange(1, 4).Draw(rt, "count")}
				if rapid.Bool().Draw(rt, "keyed") {
					req.IdempotencyKey = rapid.SampledFrom([]string{"k1", "k2", "k3", "k4", "k5"}).Draw(rt, "key")
				}
				res, err := e.Draw(ctx, req)
				if prev, ok := m.keys[req.IdempotencyKey]; ok && req.IdempotencyKey != "" {
					if len(prev) != req.Count {
						// A remembered key with another count: refused.
						if !errors.Is(err, ErrIdempotencyMismatch) {
							rt.Fatalf("key %q used for %d draws, reused for %d: err = %v, want ErrIdempotencyMismatch", req.IdempotencyKey, len(prev), req.Count, err)
						}
						return
					}
					if err != nil {
						rt.Fatalf("Draw: %v", err)
					}
					if !slices.Equal(replayed(prev), res) {
						rt.Fatalf("retry of %q got %v, want %v", req.IdempotencyKey, res, prev)
					}
					return
				}
				if err != nil {
					rt.Fatalf("Draw: %v", err)
				}
				if len(res) != req.Count {
					rt.Fatalf("got %d results, want %d", len(res), req.Count)
				}
				for _, r := range res {
					if r.RequestID != m.lastID+1 {
						rt.Fatalf("request id %d, want %d", r.RequestID, m.lastID+1)
					}
					m.lastID = r.RequestID
					if !m.available() {
						if !errors.Is(r.Err, ErrPoolEmpty) {
							rt.Fatalf("draw from empty pool gave %+v", r)
						}
						continue
					}
					i, ok := m.live(r.ItemID)
					if r.Err != nil || !ok || m.slots[i].Quantity == 0 {
						rt.Fatalf("draw gave %+v, not an available item (model %+v)", r, m.slots)
					}
					if m.slots[i].Quantity > 0 {
						m.slots[i].Quantity--
					}
				}
				if req.IdempotencyKey != "" {
					m.remember(req.IdempotencyKey, res)
				}
			},
			"add": func(rt *rapid.T) {
				it := genItem(rt)
				err := e.AddItem(ctx, it)
				if _, live := m.live(it.ID); live {
					if !errors.Is(err, ErrDuplicateItem) {
						rt.Fatalf("AddItem(%v) of a live item = %v", it, err)
					}
					return
				}
				if err != nil {
					rt.Fatalf("AddItem(%v) = %v", it, err)
				}
				if i := m.find(it.ID); i >= 0 {
					m.slots[i] = refSlot{Item: it}
				} else {
					m.slots = append(m.slots, refSlot{Item: it})
				}
			},
			"set": func(rt *rapid.T) {
				it := genItem(rt)
				err := e.SetItem(ctx, it)
				i, live := m.live(it.ID)
				if !live {
					if !errors.Is(err, ErrUnknownItem) {
						rt.Fatalf("SetItem(%v) of a missing item = %v", it, err)
					}
					return
				}
				if err != nil {
					rt.Fatalf("SetItem(%v) = %v", it, err)
				}
				m.slots[i].Item = it
			},
			"remove": func(rt *rapid.T) {
				id := rapid.SampledFrom(ids).Draw(rt, "id")
				err := e.RemoveItem(ctx, id)
				i, live := m.live(id)
				if !live {
					if !errors.Is(err, ErrUnknownItem) {
						rt.Fatalf("RemoveItem(%s) of a missing item = %v", id, err)
					}
					return
				}
				if err != nil {
					rt.Fatalf("RemoveItem(%s) = %v", id, err)
				}
				m.slots[i].removed = true
			},
			"reopen": reopen,
			"reopenWithDamagedSnapshot": func(rt *rapid.T) {
				if err := e.Close(); err != nil {
					rt.Fatalf("Close: %v", err)
				}
				infos, _ := snapshot.List(filepath.Join(dir, snapDir))
				if len(infos) > 0 {
					p := filepath.Join(dir, snapDir, infos[len(infos)-1].Name)
					b, _ := os.ReadFile(p)
					b[len(b)/2] ^= 0xff
					os.WriteFile(p, b, 0o644)
				}
				if e, err = Open(dir, o); err != nil {
					rt.Fatalf("reopen with damaged snapshot: %v", err)
				}
			},
			"": func(rt *rapid.T) {
				st, err := e.State(ctx)
				if err != nil {
					rt.Fatalf("State: %v", err)
				}
				if st.LastRequestID != m.lastID {
					rt.Fatalf("LastRequestID %d, model %d", st.LastRequestID, m.lastID)
				}
				if got, want := fmt.Sprint(st.Items), fmt.Sprint(m.items()); got != want {
					rt.Fatalf("items %s, model %s", got, want)
				}
				for _, it := range st.Items {
					if it.Quantity < Unlimited {
						rt.Fatalf("item %s over-issued: quantity %d", it.ID, it.Quantity)
					}
				}
			},
		})
	})
}

// refPlayer is the reference state of one player under playerRules.
type refPlayer struct {
	draws, today, day int
	ssr, sr           int // pity counters: draws since the tier
	owed              bool
	heldFeatured      int
}

// playerItems and playerRules are the pool of TestModelPlayers: a tiny
// banner whose pity fires every few draws, so every rule acts often.
func playerItems() []Item {
	return []Item{
		{ID: "ssr_f", Quantity: Unlimited, Weight: WeightUnit / 100},
		{ID: "ssr_s", Quantity: Unlimited, Weight: WeightUnit / 100},
		{ID: "sr", Quantity: 6, Weight: WeightUnit / 10},
		{ID: "common", Quantity: Unlimited, Weight: WeightUnit},
	}
}

var modelStart = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func playerRules() *gacha.Rules {
	return &gacha.Rules{
		Items: []gacha.ItemTier{{Item: "ssr_f", Tier: "ssr", Featured: true}, {Item: "ssr_s", Tier: "ssr"}, {Item: "sr", Tier: "sr"}},
		Pity: []gacha.Pity{
			{Tier: "ssr", Hard: 6, SoftStart: 4, SoftStep: 0.3, FeaturedGuarantee: true},
			{Tier: "sr", Hard: 3},
		},
		PerUser:  gacha.PerUser{MaxDraws: 30, MaxDrawsPerDay: 8},
		ItemCaps: []gacha.ItemCap{{Item: "ssr_f", MaxPerUser: 2}},
		Window:   gacha.Window{Start: modelStart, End: modelStart.Add(5 * 24 * time.Hour)},
	}
}

// TestModelPlayers runs random draws of a few players, clock moves (across
// UTC days and out of the window), reopens and reopens with a damaged
// newest snapshot against a reference of the rules, checking every pull
// against what the rules force (hard pity, the rarest due tier, the
// featured guarantee, the item cap), every refusal (window, lifetime and
// daily caps, all or nothing) and, after each step, every player's state.
func TestModelPlayers(t *testing.T) {
	base := t.TempDir()
	n := 0
	users := []string{"alice", "bob", "carol é"}
	rapid.Check(t, func(rt *rapid.T) {
		n++
		dir := filepath.Join(base, fmt.Sprint(n))
		now := modelStart.Add(-time.Hour) // before the window opens
		o := Options{
			Logger:        quietLogger(),
			Durability:    rapid.SampledFrom([]Durability{DurabilityNone, DurabilityInterval, DurabilityAlways}).Draw(rt, "durability"),
			Codec:         rapid.SampledFrom([]string{"binary", "text", "jsonl"}).Draw(rt, "codec"),
			SegmentSize:   2048,
			SnapshotEvery: uint64(rapid.IntRange(5, 60).Draw(rt, "snapshotEvery")),
			Items:         playerItems(),
			Rules:         playerRules(),
			clock:         func() time.Time { return now },
		}
		sr := 6   // the sr item's stock
		hard := 6 // the ssr hard pity in force (an admin may change it)
		lastID := uint64(0)
		m := map[string]*refPlayer{}
		player := func(u string) *refPlayer {
			if m[u] == nil {
				m[u] = &refPlayer{}
			}
			return m[u]
		}
		e, err := Open(dir, o)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { e.Close() }()
		reopen := func(rt *rapid.T, damage bool) {
			_, before, err := e.Digest(ctx)
			if err != nil {
				rt.Fatal(err)
			}
			if err := e.Close(); err != nil {
				rt.Fatalf("Close: %v", err)
			}
			if damage {
				infos, _ := snapshot.List(filepath.Join(dir, snapDir))
				if len(infos) > 0 {
					p := filepath.Join(dir, snapDir, infos[len(infos)-1].Name)
					b, _ := os.ReadFile(p)
					b[len(b)/2] ^= 0xff
					os.WriteFile(p, b, 0o644)
				}
			}
			if e, err = Open(dir, o); err != nil {
				rt.Fatalf("reopen: %v", err)
			}
			if hard != 6 {
				// Open logs the rules of Options again: the counters stay,
				// the digest moves on with the new RULES record.
				hard = 6
				return
			}
			if _, after, _ := e.Digest(ctx); after != before {
				rt.Fatalf("digest %s after reopen, %s before", after, before)
			}
		}

		rt.Repeat(map[string]func(*rapid.T){
			"draw": func(rt *rapid.T) {
				u := rapid.SampledFrom(users).Draw(rt, "user")
				count := rapid.IntRange(1, 4).Draw(rt, "count")
				p := player(u)
				day := int(gacha.Day(now.UnixMilli()))
				today := p.today
				if day > p.day {
					today = 0
				}
				res, err := e.Draw(ctx, DrawRequest{Count: count, UserID: u})
				switch {
				case now.Before(modelStart) || !now.Before(modelStart.Add(5*24*time.Hour)):
					if !errors.Is(err, ErrPoolClosed) {
						rt.Fatalf("draw at %s outside the window: %v", now, err)
					}
					return
				case p.draws+count > 30 || today+count > 8:
					var le *gacha.LimitError
					if !errors.Is(err, ErrUserLimit) || !errors.As(err, &le) {
						rt.Fatalf("%s: %d+%d draws (%d+%d today): err %v, want a user limit", u, p.draws, count, today, count, err)
					}
					return
				case err != nil:
					rt.Fatalf("Draw: %v", err)
				}
				for _, r := range res {
					if r.RequestID != lastID+1 || r.Err != nil {
						rt.Fatalf("result %+v, want request id %d", r, lastID+1)
					}
					lastID = r.RequestID
					tier := map[string]string{"ssr_f": "ssr", "ssr_s": "ssr", "sr": "sr"}[r.ItemID]
					switch {
					case p.ssr+1 >= hard && tier != "ssr":
						rt.Fatalf("%s: draw %d without an ssr gave %s (%q)", u, p.ssr+1, r.ItemID, r.Pity)
					case p.ssr+1 < 4 && p.sr+1 >= 3 && sr > 0 && tier != "sr":
						rt.Fatalf("%s: draw %d without an sr gave %s (%q)", u, p.sr+1, r.ItemID, r.Pity)
					case p.owed && tier == "ssr" && p.heldFeatured < 2 && r.ItemID != "ssr_f":
						rt.Fatalf("%s: owed the featured ssr, got %s", u, r.ItemID)
					case r.ItemID == "ssr_f" && p.heldFeatured >= 2:
						rt.Fatalf("%s: a third ssr_f past its cap of 2", u)
					case r.ItemID == "sr" && sr == 0:
						rt.Fatalf("sr drawn without stock")
					}
					if day > p.day {
						p.day, p.today = day, 0
					}
					p.draws++
					p.today++
					p.ssr++
					p.sr++
					switch r.ItemID {
					case "ssr_f":
						p.ssr, p.owed = 0, false
						p.heldFeatured++
					case "ssr_s":
						p.ssr, p.owed = 0, true
					case "sr":
						p.sr = 0
						sr--
					}
				}
			},
			"noUser": func(rt *rapid.T) {
				if _, err := e.Draw(ctx, DrawRequest{}); !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "user_id") {
					rt.Fatalf("draw without user_id: %v", err)
				}
			},
			"replaceRules": func(rt *rapid.T) {
				// The ssr hard pity moves between 6 and 7 (soft starts at 4
				// either way); every counter is kept.
				hard = rapid.IntRange(6, 7).Draw(rt, "hard")
				r := playerRules()
				r.Pity[0].Hard = uint32(hard)
				if err := e.SetRules(ctx, *r); err != nil {
					rt.Fatalf("SetRules: %v", err)
				}
			},
			"tick": func(rt *rapid.T) {
				now = now.Add(time.Duration(rapid.IntRange(1, 30).Draw(rt, "hours")) * time.Hour)
			},
			"restock": func(rt *rapid.T) {
				sr = rapid.IntRange(0, 3).Draw(rt, "sr")
				if err := e.SetItem(ctx, Item{ID: "sr", Quantity: int64(sr), Weight: WeightUnit / 10}); err != nil {
					rt.Fatal(err)
				}
			},
			"reopen":                    func(rt *rapid.T) { reopen(rt, false) },
			"reopenWithDamagedSnapshot": func(rt *rapid.T) { reopen(rt, true) },
			"": func(rt *rapid.T) {
				for _, u := range users {
					ps, known, err := e.Player(ctx, u)
					if err != nil {
						rt.Fatal(err)
					}
					p := player(u)
					today := p.today
					if int(gacha.Day(now.UnixMilli())) > p.day {
						today = 0
					}
					got := fmt.Sprintf("%d %d ssr=%d owed=%t sr=%d held=%d", ps.Draws, ps.DrawsToday, ps.Pity[0].Count, ps.Pity[0].FeaturedOwed, ps.Pity[1].Count, ps.Held[0].Count)
					want := fmt.Sprintf("%d %d ssr=%d owed=%t sr=%d held=%d", p.draws, today, p.ssr, p.owed, p.sr, p.heldFeatured)
					if got != want || known != (p.draws > 0) {
						rt.Fatalf("%s: engine %s (known %t), model %s", u, got, known, want)
					}
				}
				if st, err := e.State(ctx); err != nil || st.LastRequestID != lastID {
					rt.Fatalf("LastRequestID %d, model %d (%v)", st.LastRequestID, lastID, err)
				}
			},
		})
	})
}
