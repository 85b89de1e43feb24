package rewardpool

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

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

// The rules themselves are state too: a RULES record (the rules' JSON)
// replaces them, written when an admin replaces them (SetRules) or when
// Open finds Options.Rules different from the pool's; replay and replicas
// take them from the log, snapshots hold them. A change keeps every
// player's counters whose rule (by tier, or capped item) still exists.

// checkOptionRules fails fast on rules in Options that cannot be right.
// Items the rules name need not be in the catalog yet (admin calls may add
// them): the configuration checks them against its items.
func (e *Engine) checkOptionRules() error {
	if r := e.opts.Rules; r != nil {
		if err := r.Validate(nil); err != nil {
			return fmt.Errorf("%w: Rules: %w", ErrBadOptions, err)
		}
	}
	return nil
}

// adoptOptionRules runs once the writer is up: a primary whose rules differ
// from Options.Rules (set) logs the new ones.
func (e *Engine) adoptOptionRules() error {
	r := e.opts.Rules
	if r == nil || e.opts.Replica {
		return nil
	}
	var cur string
	var prev *gacha.Rules
	if err := e.onWriter(context.Background(), func() {
		cur = e.w.rulesJSON
		if e.w.rules != nil {
			prev = e.w.rules.Rules()
		}
	}); err != nil {
		return err
	}
	// The logged rules carry the pacing start their first logging stamped;
	// Options' rules are the same rules when they equal them once stamped
	// from them.
	same := *r
	same.Stamp(prev, e.opts.clock())
	if same.Encode() == cur {
		return nil
	}
	if err := e.SetRules(context.Background(), *r); err != nil {
		return fmt.Errorf("rewardpool: log the rules of Options: %w", err)
	}
	return nil
}

// rulesUndo is what undo needs to reverse a RULES record.
type rulesUndo struct {
	table   *gacha.Table
	players *gacha.Players
	json    string
}

// installRules makes js (the rules' JSON, "" for none) the pool's rules,
// carrying the players' counters over by name, and returns what undo needs.
// Removing the rules drops the players.
func (w *writerState) installRules(js string) (rulesUndo, error) {
	u := rulesUndo{table: w.rules, players: w.players, json: w.rulesJSON}
	if js == "" {
		w.rules, w.players, w.rulesJSON = nil, nil, ""
		w.needsUser.Store(false)
		return u, nil
	}
	r, err := gacha.Parse(js)
	if err == nil {
		err = r.Validate(nil)
	}
	var t *gacha.Table
	if err == nil {
		t, err = gacha.New(r)
	}
	if err != nil {
		return u, err
	}
	p := gacha.NewPlayers(t.Stride())
	if w.players != nil {
		ids, chunks := w.players.Capture()
		rows := gacha.Flatten(chunks, len(ids), w.players.Stride())
		if err := t.Restore(p, w.rules.Columns(), ids, rows); err != nil {
			return u, err
		}
	}
	w.rules, w.players, w.rulesJSON = t, p, js
	w.needsUser.Store(r.NeedsUser())
	return u, nil
}

// undoRules reverses the newest RULES record of the batch.
func (w *writerState) undoRules() {
	n := len(w.rulesUndo) - 1
	u := w.rulesUndo[n]
	w.rulesUndo[n] = rulesUndo{}
	w.rulesUndo = w.rulesUndo[:n]
	w.rules, w.players, w.rulesJSON = u.table, u.players, u.json
	w.needsUser.Store(u.table != nil && u.table.Rules().NeedsUser())
}

// decideRules validates and installs new rules and appends their record.
// Rules that release stock without a window start are first stamped with
// the time releases count from (gacha.Rules.Stamp): now, the writer's
// clock, or the start of the rules they replace; the record holds it.
func (w *writerState) decideRules(js string, now time.Time) error {
	if js != "" {
		r, err := gacha.Parse(js)
		if err != nil {
			return err
		}
		var prev *gacha.Rules
		if w.rules != nil {
			prev = w.rules.Rules()
		}
		r.Stamp(prev, now)
		js = r.Encode()
	}
	u, err := w.installRules(js)
	if err != nil {
		return err
	}
	w.rulesUndo = append(w.rulesUndo, u)
	w.seq++
	w.recs = append(w.recs, wal.Record{Seq: w.seq, Epoch: w.epoch, Kind: wal.KindRules, Item: -1, Key: js})
	return nil
}

// SetRules replaces the pool's player rules through the log (a RULES
// record). Players' counters are kept for the pity rules (by tier) and
// item caps (by item) that remain. Rules with no rule at all remove them
// (and the players' state). Errors wrap gacha.ErrInvalidRules (and
// ErrInvalidRequest) for rules that do not validate; ErrReplica on a
// replica.
func (e *Engine) SetRules(ctx context.Context, r gacha.Rules) error {
	if err := r.Validate(nil); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return e.admin(ctx, adminOp{kind: wal.KindRules, rules: r.Encode()})
}

// Rules returns the pool's player rules (the zero Rules for none).
func (e *Engine) Rules(ctx context.Context) (gacha.Rules, error) {
	var js string
	if err := e.onWriter(ctx, func() { js = e.w.rulesJSON }); err != nil {
		return gacha.Rules{}, err
	}
	return gacha.Parse(js)
}

// loadRules installs the rules and players of a snapshot, the players
// under the snapshot's own columns.
func (w *writerState) loadRules(st *snapshot.State) error {
	if st.Rules == "" {
		return nil
	}
	if _, err := w.installRules(st.Rules); err != nil {
		return err
	}
	if p := st.Players; p != nil {
		return w.rules.Restore(w.players, p.Columns, p.IDs, p.Rows)
	}
	return nil
}

// capturePlayers copies the players for a snapshot.
func (w *writerState) capturePlayers() *snapshot.Players {
	if w.players == nil {
		return nil
	}
	ids, chunks := w.players.Capture()
	return &snapshot.Players{Columns: w.rules.Columns(), IDs: ids, Chunks: chunks, ChunkRows: gacha.ChunkPlayers}
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
	paced := w.paced()
	w.atNow(w.now)
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
	if paced {
		// The pool's row counts the units of paced items drawn; it is
		// changed after the player's, as replay does.
		w.rules.ApplyPool(cat, w.players.Edit(gacha.PoolRow), p.Slot)
	}
}

// replayRules applies a logged RULES record.
func (w *writerState) replayRules(r *wal.Record) error {
	u, err := w.installRules(r.Key)
	if err != nil {
		return err
	}
	if w.applying {
		w.rulesUndo = append(w.rulesUndo, u)
	}
	return nil
}

// explain is the pity explanation the answer to the logged draw r of slot
// gave ("" none), computed from the state before the draw is applied, as
// the writer decided it. Only a player's draw can have one: pity rules
// need a user id.
func (w *writerState) explain(r *wal.Record, slot int32) string {
	if w.rules == nil || r.User == "" || slot < 0 {
		return ""
	}
	row, _ := w.players.Lookup(r.User)
	w.atNow(r.Time)
	p := w.rules.Explain(ruleCat{w.cat}, row, slot)
	if p.Rule >= 0 || p.Guaranteed || p.Fallback {
		return p.Reason(w.rules)
	}
	return ""
}

// replayPlayer applies a logged draw of slot to its player.
func (w *writerState) replayPlayer(r *wal.Record, slot int32) {
	if w.rules == nil || slot < 0 {
		return
	}
	if r.User != "" {
		w.rules.Apply(ruleCat{w.cat}, w.players.Edit(r.User), slot, r.Time)
	}
	if w.rules.Paced() {
		w.rules.ApplyPool(ruleCat{w.cat}, w.players.Edit(gacha.PoolRow), slot)
	}
}

// paced reports whether the pool paces items: a draw may then find nothing
// while the catalog still has stock.
func (w *writerState) paced() bool { return w.rules != nil && w.rules.Paced() }

// atNow sets the rules' pacing context to ms and the pool's row.
func (w *writerState) atNow(ms int64) {
	if !w.paced() {
		return
	}
	var pool gacha.Row
	if i, ok := w.players.Index(gacha.PoolRow); ok {
		pool = w.players.Row(i)
	}
	w.rules.At(ms, pool)
}

// available returns, for each paced live item, the units drawable at ms
// (its release schedule bounded by its remaining quantity).
func (w *writerState) available(ms int64) map[string]int64 {
	if !w.paced() {
		return nil
	}
	w.atNow(ms)
	out := map[string]int64{}
	for s := range w.cat.Slots() {
		it, removed := w.cat.Item(int32(s))
		if removed {
			continue
		}
		if n, ok := w.rules.Available(ruleCat{w.cat}, int32(s)); ok {
			if it.Quantity != Unlimited {
				n = min(n, uint64(it.Quantity))
			}
			out[it.ID] = int64(n)
		}
	}
	return out
}

// digestPlayers adds the players to a state digest.
func (w *writerState) digestPlayers(h interface{ Write([]byte) (int, error) }) {
	if w.rulesJSON == "" {
		return
	}
	var buf [8]byte
	h.Write(binary.LittleEndian.AppendUint64(buf[:0], uint64(len(w.rulesJSON))))
	h.Write([]byte(w.rulesJSON))
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
		w.atNow(now)
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
		fmt.Fprintf(h, "%s\n", e.w.rulesJSON)
		for s := range e.w.cat.Slots() {
			it, removed := e.w.cat.Item(int32(s))
			fmt.Fprintf(h, "%s %d %t\n", it.ID, it.Weight, removed)
		}
		sum = fmt.Sprintf("%x", h.Sum(nil)[:12])
	})
	return sum, err
}
