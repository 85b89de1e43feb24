package rewardpool

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/rewardpool/rewardpool/gacha"
	"github.com/rewardpool/rewardpool/pool"
	"github.com/rewardpool/rewardpool/snapshot"
	"github.com/rewardpool/rewardpool/wal"
)

// Player rules (package gacha) in the engine. The writer decides a player's
// draw with the rules in the same batch as the draw, and the DRAW record
// carries the player and the writer's clock: a player's state is derived
// only from those records (gacha.Table.Apply, live and in replay), so the
// log alone rebuilds it, replicas derive the same, and undo of a failed
// batch rolls it back with the catalog.

// ruleCat shows the catalog to the rules. One pointer: passing it as an
// interface does not allocate.
type ruleCat struct{ c *pool.Catalog }

func (r ruleCat) Slots() int { return r.c.Slots() }

func (r ruleCat) ID(s int32) string {
	it, _ := r.c.Item(s)
	return it.ID
}

func (r ruleCat) Weight(s int32) uint64 {
	it, removed := r.c.Item(s)
	if removed || it.Quantity == 0 {
		return 0
	}
	return it.Weight
}

// setupRules compiles Options.Rules before recovery replays the log.
func (e *Engine) setupRules() error {
	r := e.opts.Rules
	if r == nil || r.Empty() {
		return nil
	}
	// Items the rules name need not be in the catalog yet (a replica's
	// arrives from its primary, admin calls add items later): the
	// configuration checks them against its items.
	if err := r.Validate(nil); err != nil {
		return fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	t, err := gacha.New(*r)
	if err != nil {
		return fmt.Errorf("%w: Rules: %w", ErrBadOptions, err)
	}
	e.w.rules = t
	e.w.players = gacha.NewPlayers(t.Stride())
	e.needsUser = r.NeedsUser()
	return nil
}

// loadPlayers restores the players of a snapshot.
func (w *writerState) loadPlayers(p *snapshot.Players) error {
	if p == nil || w.rules == nil {
		return nil
	}
	return w.rules.Restore(w.players, p.Columns, p.IDs, p.Rows)
}

// capturePlayers copies the players for a snapshot.
func (w *writerState) capturePlayers() *snapshot.Players {
	if w.players == nil {
		return nil
	}
	ids, rows := w.players.Capture()
	return &snapshot.Players{Columns: w.rules.Columns(), IDs: ids, Rows: rows}
}

// playerRef is the player of the request being decided: found once per
// request, journaled once for undo.
type playerRef struct {
	user      string
	idx       uint32
	known     bool // in the table
	journaled bool // its row is saved for undo in this request
}

// checkPlayer refuses a request of c.count draws that the window or a
// per-user cap does not allow, all or nothing, before it takes any id.
func (e *Engine) checkPlayer(c *call, pr *playerRef) error {
	w := &e.w
	w.now = e.opts.clock().UnixMilli()
	*pr = playerRef{user: c.user}
	var row gacha.Row
	if c.user != "" {
		if pr.idx, pr.known = w.players.Index(c.user); pr.known {
			row = w.players.Row(pr.idx)
		}
	}
	return w.rules.Check(row, c.count, w.now)
}

// drawPlayer decides one draw under the rules into rec and res (which come
// in as an empty-pool draw) and applies it to the player.
func (w *writerState) drawPlayer(pr *playerRef, rec *wal.Record, res *DrawResult) {
	cat := ruleCat{w.cat}
	var row gacha.Row
	user := pr.user
	if user != "" {
		if pr.known {
			row = w.players.Row(pr.idx)
		}
		rec.User, rec.Time = user, w.now
	}
	p := w.rules.Draw(cat, row, w.rng)
	if p.Slot < 0 {
		return
	}
	w.cat.Take(p.Slot)
	it, _ := w.cat.Item(p.Slot)
	rec.Kind, rec.Item, rec.ItemID = wal.KindDraw, p.Slot, it.ID
	*res = DrawResult{RequestID: rec.RequestID, ItemID: it.ID}
	if p.Rule >= 0 || p.Guaranteed || p.Fallback {
		res.Pity = p.Reason(w.rules)
	}
	if user != "" {
		if !pr.journaled {
			pr.idx = w.players.EditIndex(user, pr.idx, pr.known)
			pr.known, pr.journaled = true, true
		}
		w.rules.Apply(cat, w.players.Row(pr.idx), p.Slot, w.now)
	}
}

// replayPlayer applies a logged draw of slot to its player.
func (w *writerState) replayPlayer(r *wal.Record, slot int32) {
	if w.rules == nil || r.User == "" || slot < 0 {
		return
	}
	w.rules.Apply(ruleCat{w.cat}, w.players.Edit(r.User), slot, r.Time)
}

// digestPlayers adds the players to a state digest.
func (w *writerState) digestPlayers(h interface{ Write([]byte) (int, error) }) {
	if w.players == nil {
		return
	}
	var buf [8]byte
	h.Write(binary.LittleEndian.AppendUint64(buf[:0], uint64(w.players.Len())))
	for i := range w.players.Len() {
		id, row := w.players.At(i)
		h.Write(binary.LittleEndian.AppendUint64(buf[:0], uint64(len(id))))
		h.Write([]byte(id))
		for _, v := range row {
			h.Write(binary.LittleEndian.AppendUint32(buf[:0], v))
		}
	}
}

// Odds are the probabilities of a player's next single draw, computed by
// the code that draws.
type Odds struct {
	Items    []ItemOdds
	Tiers    []gacha.TierOdds
	Base     []ItemOdds // the same without the player's pity and caps (a new player)
	Rule     string     // the pity rule that applies ("ssr hard pity"), "" none
	Fallback bool       // a due pity tier has nothing available
	Player   gacha.PlayerState
}

// ItemOdds is one live item's probability.
type ItemOdds struct {
	ItemID string
	P      float64
}

// Odds returns the odds of user's next single draw ("" for a player who
// never drew) with the stock, caps and pity as they are now.
func (e *Engine) Odds(ctx context.Context, user string) (Odds, error) {
	if err := gacha.CheckUser(user); err != nil {
		return Odds{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	var o Odds
	err := e.onWriter(ctx, func() {
		w := &e.w
		cat := ruleCat{w.cat}
		if w.rules == nil {
			total := w.cat.Total()
			for s := range w.cat.Slots() {
				if wt := cat.Weight(int32(s)); wt > 0 {
					o.Items = append(o.Items, ItemOdds{cat.ID(int32(s)), float64(wt) / float64(total)})
				}
			}
			o.Base = o.Items
			return
		}
		var row gacha.Row
		if user != "" {
			row, _ = w.players.Lookup(user)
		}
		now := e.opts.clock().UnixMilli()
		g := w.rules.Odds(cat, row, nil)
		o.Items = itemOdds(cat, g.Items)
		o.Tiers = g.Tiers
		o.Fallback = g.Fallback
		if g.Rule >= 0 {
			o.Rule = gacha.Pull{Rule: g.Rule, Forced: g.Forced}.Reason(w.rules)
		}
		o.Base = itemOdds(cat, w.rules.Odds(cat, nil, nil).Items)
		o.Player = w.rules.Describe(row, now)
	})
	return o, err
}

func itemOdds(cat ruleCat, ps []float64) []ItemOdds {
	var out []ItemOdds
	for s, p := range ps {
		if cat.Weight(int32(s)) > 0 {
			out = append(out, ItemOdds{cat.ID(int32(s)), p})
		}
	}
	return out
}

// Player returns user's state under the pool's rules as of the writer's
// clock; known is false for a player who never drew (their state is the
// zero one).
func (e *Engine) Player(ctx context.Context, user string) (ps gacha.PlayerState, known bool, err error) {
	if err := gacha.CheckUser(user); err != nil || user == "" {
		if err == nil {
			err = gacha.ErrInvalidUser
		}
		return ps, false, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	err = e.onWriter(ctx, func() {
		w := &e.w
		if w.rules == nil {
			return
		}
		row, ok := w.players.Lookup(user)
		ps, known = w.rules.Describe(row, e.opts.clock().UnixMilli()), ok
	})
	return ps, known, err
}

// RulesHash is a digest of the pool's rules and weights that changes
// whenever either does (the odds endpoint's config_hash).
func (e *Engine) RulesHash(ctx context.Context) (string, error) {
	var sum string
	err := e.onWriter(ctx, func() {
		h := sha256.New()
		if r := e.opts.Rules; r != nil {
			fmt.Fprintf(h, "%+v\n", *r)
		}
		for s := range e.w.cat.Slots() {
			it, removed := e.w.cat.Item(int32(s))
			fmt.Fprintf(h, "%s %d %t\n", it.ID, it.Weight, removed)
		}
		sum = fmt.Sprintf("%x", h.Sum(nil)[:12])
	})
	return sum, err
}
