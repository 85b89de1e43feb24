package gacha

import (
	"fmt"
	"math"
	"time"
)

// Catalog is what the rules read of a pool. Slots never change their item
// id (a removed item keeps its slot), so the table caches per-slot facts.
type Catalog interface {
	Slots() int
	ID(slot int32) string
	// Weight is the slot's effective weight: 0 when removed or out of stock.
	Weight(slot int32) uint64
}

// Rand is the random source a draw uses (the engine's ChaCha8).
type Rand interface {
	Uint64N(n uint64) uint64
	Float64() float64
}

// Table is a pool's rules compiled for drawing. It is owned by one
// goroutine (the pool's writer): its decisions reuse scratch space.
type Table struct {
	rules  Rules
	tiers  []string // tier names; index 0 is "no tier"
	pity   []pityRule
	byID   map[string]itemRule
	capMax []uint32
	paces  []pace
	stride int
	zero   Row // the state of a player who never drew

	// The window in Unix milliseconds: [startMs, endMs).
	startMs, endMs int64
	// paceMs is when releases start counting (Rules.PaceStart).
	paceMs int64

	// The pacing context of the next decision (Table.At): the clock and
	// the pool's row, which counts the units of each paced item drawn.
	nowMs int64
	pool  Row

	slots     []itemRule // per catalog slot, extended by sync
	tierSlots [][]int32  // slots of each tier

	pl plan // scratch of the current decision

	reasons []string // Pull.Reason's texts, by rule, hard, guaranteed, fallback
}

type itemRule struct {
	tier     uint8 // 0: no tier
	featured bool
	cap      int16 // index into capMax, -1: not capped
	pace     int16 // index into paces, -1: not paced
}

// pace is one item's release schedule, in Unix milliseconds.
type pace struct {
	every  int64
	amount uint64
}

type pityRule struct {
	tier uint8
	hard uint32
	soft uint32
	step float64
	fg   bool
}

// New compiles rules that Validate accepted.
func New(r Rules) (*Table, error) {
	t := &Table{rules: r, tiers: []string{""}, byID: map[string]itemRule{}}
	tierIdx := map[string]uint8{}
	for _, it := range r.Items {
		ir := itemRule{featured: it.Featured, cap: -1, pace: -1}
		if rel := it.Release; rel != nil {
			ir.pace = int16(len(t.paces))
			t.paces = append(t.paces, pace{every: max(1, time.Duration(rel.Every).Milliseconds()), amount: uint64(rel.Amount)})
		}
		if it.Tier != "" {
			i, ok := tierIdx[it.Tier]
			if !ok {
				if len(t.tiers) > MaxTiers {
					return nil, &RuleError{Path: "items", Msg: fmt.Sprintf("more than %d tiers", MaxTiers)}
				}
				i = uint8(len(t.tiers))
				tierIdx[it.Tier] = i
				t.tiers = append(t.tiers, it.Tier)
			}
			ir.tier = i
		}
		t.byID[it.Item] = ir
	}
	if len(r.Pity) > MaxPity || len(r.ItemCaps) > MaxItemCaps {
		return nil, &RuleError{Path: "pity", Msg: "too many rules"}
	}
	for _, p := range r.Pity {
		ti, ok := tierIdx[p.Tier]
		if !ok {
			return nil, &RuleError{Path: "pity", Msg: fmt.Sprintf("unknown tier %q", p.Tier)}
		}
		t.pity = append(t.pity, pityRule{tier: ti, hard: p.Hard, soft: p.SoftStart, step: p.SoftStep, fg: p.FeaturedGuarantee})
	}
	for i, c := range r.ItemCaps {
		ir, ok := t.byID[c.Item]
		if !ok {
			ir = itemRule{cap: -1, pace: -1}
		}
		ir.cap = int16(i)
		t.byID[c.Item] = ir
		t.capMax = append(t.capMax, c.MaxPerUser)
	}
	t.startMs, t.endMs = math.MinInt64, math.MaxInt64
	if !r.Window.Start.IsZero() {
		t.startMs = r.Window.Start.UnixMilli()
	}
	if !r.Window.End.IsZero() {
		t.endMs = r.Window.End.UnixMilli()
	}
	if len(t.paces) > 0 {
		ps := r.PaceStart()
		if ps.IsZero() {
			return nil, &RuleError{Path: "items", Msg: "a release needs window.start or pace_from (the engine stamps it when it logs the rules)"}
		}
		t.paceMs = ps.UnixMilli()
	}
	for rule := -1; rule < len(t.pity); rule++ {
		for _, forced := range []bool{false, true} {
			if rule < 0 && forced {
				continue
			}
			for _, g := range []bool{false, true} {
				for _, f := range []bool{false, true} {
					t.reasons = append(t.reasons, Pull{Rule: rule, Forced: forced, Guaranteed: g, Fallback: f}.reasonText(t))
				}
			}
		}
	}
	t.stride = rowHeader + len(t.pity) + len(t.capMax) + len(t.paces)
	t.zero = make(Row, t.stride)
	t.pool = t.zero
	t.tierSlots = make([][]int32, len(t.tiers))
	t.pl.tierW = make([]uint64, len(t.tiers))
	t.pl.featW = make([]uint64, len(t.tiers))
	return t, nil
}

// Rules returns the rules the table was compiled from.
func (t *Table) Rules() *Rules { return &t.rules }

// Stride is the number of counters in a player's row.
func (t *Table) Stride() int { return t.stride }

// Zero returns the row of a player who never drew (read only).
func (t *Table) Zero() Row { return t.zero }

// sync learns the slots the catalog gained since the last call.
func (t *Table) sync(cat Catalog) {
	for s := len(t.slots); s < cat.Slots(); s++ {
		ir, ok := t.byID[cat.ID(int32(s))]
		if !ok {
			ir = itemRule{cap: -1, pace: -1}
		}
		t.slots = append(t.slots, ir)
		t.tierSlots[ir.tier] = append(t.tierSlots[ir.tier], int32(s))
	}
}

// plan is everything a single draw decides before its random numbers: the
// weight each tier has for this player, the pity rule that applies, and
// which tiers give only featured items. Draw samples it; Odds reads it.
type plan struct {
	tierW, featW []uint64 // eligible weight per tier, and of its featured items
	total        uint64
	rule         int     // winning pity rule, -1: none
	p            float64 // probability of the rule's tier
	forced       bool    // hard pity
	fallback     bool    // a due rule's tier had nothing available
	restrict     uint64  // bit t: tier t gives only featured items
}

// weight is a slot's weight for this player: 0 when out of stock or capped.
func (t *Table) weight(cat Catalog, row Row, s int32) uint64 {
	w := cat.Weight(s)
	if w == 0 {
		return 0
	}
	if c := t.slots[s].cap; c >= 0 && row[rowHeader+len(t.pity)+int(c)] >= t.capMax[c] {
		return 0
	}
	if k := t.slots[s].pace; k >= 0 && t.released(int(k)) <= uint64(t.pool[t.takenCol(int(k))]) {
		return 0
	}
	return w
}

// Paced reports whether any item's stock is released over time: draws
// then need the pool's row (At) and change it (ApplyPool).
func (t *Table) Paced() bool { return len(t.paces) > 0 }

// PoolRow is the id of the pool's own row in Players: the units of each
// paced item drawn so far. No player can have it (user ids are non-empty).
const PoolRow = ""

// At sets the clock (Unix ms) and the pool's row (nil: nothing drawn yet)
// that the next decisions (Draw, Odds, Available) pace items with.
func (t *Table) At(ms int64, pool Row) {
	if pool == nil {
		pool = t.zero
	}
	t.nowMs, t.pool = ms, pool
}

func (t *Table) takenCol(k int) int { return rowHeader + len(t.pity) + len(t.capMax) + k }

// released is how many units of paced item k the schedule has made
// drawable by the clock of At: Amount at the pacing start (Rules.PaceStart)
// and Amount more each Every.
func (t *Table) released(k int) uint64 {
	if t.nowMs < t.paceMs {
		return 0
	}
	p := t.paces[k]
	return p.amount * uint64((t.nowMs-t.paceMs)/p.every+1)
}

// ApplyPool counts a draw of slot in the pool's row, when its item is paced.
func (t *Table) ApplyPool(cat Catalog, pool Row, slot int32) {
	if slot < 0 || len(t.paces) == 0 {
		return
	}
	t.sync(cat)
	if k := t.slots[slot].pace; k >= 0 {
		c := t.takenCol(int(k))
		pool[c] = sat(pool[c])
	}
}

// Available is how many units of slot's item are drawable now (by the At
// context) under its release schedule, before its remaining quantity
// bounds it; ok is false for an item that is not paced.
func (t *Table) Available(cat Catalog, slot int32) (n uint64, ok bool) {
	t.sync(cat)
	k := t.slots[slot].pace
	if k < 0 {
		return 0, false
	}
	rel, taken := t.released(int(k)), uint64(t.pool[t.takenCol(int(k))])
	if rel <= taken {
		return 0, true
	}
	return rel - taken, true
}

// decide fills t.pl for the next draw of the player whose row is row.
func (t *Table) decide(cat Catalog, row Row) *plan {
	t.sync(cat)
	pl := &t.pl
	clear(pl.tierW)
	clear(pl.featW)
	pl.total, pl.rule, pl.p, pl.forced, pl.fallback, pl.restrict = 0, -1, 0, false, false, 0
	for s := range t.slots {
		w := t.weight(cat, row, int32(s))
		if w == 0 {
			continue
		}
		ir := t.slots[s]
		pl.tierW[ir.tier] += w
		if ir.featured {
			pl.featW[ir.tier] += w
		}
		pl.total += w
	}
	if pl.total == 0 {
		return pl
	}
	flags := row[colFlags]
	for i, r := range t.pity {
		tw := pl.tierW[r.tier]
		if r.fg && flags&(1<<i) != 0 && pl.featW[r.tier] > 0 {
			pl.restrict |= 1 << r.tier
		}
		n := uint64(row[rowHeader+i]) + 1 // this draw's number since the tier
		var p float64
		forced := false
		switch {
		case n >= uint64(r.hard):
			p, forced = 1, true
		case r.soft > 0 && n >= uint64(r.soft):
			p = min(1, float64(tw)/float64(pl.total)+r.step*float64(n-uint64(r.soft)+1))
		default:
			continue
		}
		if tw == 0 {
			pl.fallback = true // due, but nothing of the tier is available
			continue
		}
		// The rarest due tier wins; the other counters keep counting.
		if pl.rule < 0 || tw < pl.tierW[t.pity[pl.rule].tier] {
			pl.rule, pl.p, pl.forced = i, p, forced
		}
	}
	if pl.rule >= 0 {
		pl.fallback = false // another rule acts: not a normal draw
	}
	return pl
}

// tierProb is the probability that the planned draw lands in tier ti.
func (t *Table) tierProb(pl *plan, ti int) float64 {
	if pl.total == 0 {
		return 0
	}
	if pl.rule < 0 {
		return float64(pl.tierW[ti]) / float64(pl.total)
	}
	rt := int(t.pity[pl.rule].tier)
	rest := pl.total - pl.tierW[rt]
	switch {
	case ti == rt && rest == 0:
		return 1
	case ti == rt:
		return pl.p
	case rest == 0:
		return 0
	}
	return (1 - pl.p) * float64(pl.tierW[ti]) / float64(rest)
}

// Pull is the outcome of one draw under rules.
type Pull struct {
	Slot       int32 // -1: nothing is available to this player
	Tier       string
	Rule       int  // pity rule that forced or boosted the tier, -1: none
	Forced     bool // the rule's hard pity (else its soft pity boosted)
	Guaranteed bool // the featured guarantee chose among featured items only
	Fallback   bool // a due pity tier had nothing available: drawn as normal
}

// Reason says why the pull went the way it did, for the answer's "pity"
// field: "" when no rule acted. The texts are made once per table, so a
// draw does not allocate for them.
func (p Pull) Reason(t *Table) string {
	i := 0 // no rule
	if p.Rule >= 0 {
		i = 1 + 2*p.Rule // soft
		if p.Forced {
			i++ // hard
		}
	}
	i = i*4 + boolBit(p.Guaranteed)*2 + boolBit(p.Fallback)
	return t.reasons[i]
}

func boolBit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reasonText builds the text Reason returns.
func (p Pull) reasonText(t *Table) string {
	s := ""
	if p.Rule >= 0 {
		kind := "soft"
		if p.Forced {
			kind = "hard"
		}
		s = t.rules.Pity[p.Rule].Tier + " " + kind + " pity"
	}
	if p.Guaranteed {
		if s != "" {
			s += ", "
		}
		s += "featured guarantee"
	}
	if p.Fallback {
		if s != "" {
			s += ", "
		}
		s += "pity tier unavailable: normal draw"
	}
	return s
}

// Draw picks the slot of the next draw of the player whose row is row (nil
// for a player who never drew). It changes nothing: the caller takes the
// item and calls Apply.
func (t *Table) Draw(cat Catalog, row Row, rng Rand) Pull {
	if row == nil {
		row = t.zero
	}
	pl := t.decide(cat, row)
	res := Pull{Slot: -1, Rule: -1, Fallback: pl.fallback}
	if pl.total == 0 {
		return res
	}
	// The tier first: with a rule, the rule's tier with its probability,
	// else another tier by weight; without one, a tier by weight.
	ti := -1
	if pl.rule >= 0 {
		rt := int(t.pity[pl.rule].tier)
		rest := pl.total - pl.tierW[rt]
		res.Rule, res.Forced = pl.rule, pl.forced
		if rest == 0 || rng.Float64() < pl.p {
			ti = rt
		} else {
			ti = pickIndex(pl.tierW, rng.Uint64N(rest), rt)
		}
	} else {
		ti = pickIndex(pl.tierW, rng.Uint64N(pl.total), -1)
	}
	// Then the item within the tier, by weight among what this player can
	// get (only featured ones when the tier owes a featured item).
	only := pl.restrict&(1<<ti) != 0
	tot := pl.tierW[ti]
	if only {
		tot = pl.featW[ti]
		res.Guaranteed = true
	}
	r := rng.Uint64N(tot)
	for _, s := range t.tierSlots[ti] {
		if only && !t.slots[s].featured {
			continue
		}
		w := t.weight(cat, row, s)
		if r < w {
			res.Slot = s
			break
		}
		r -= w
	}
	res.Tier = t.tiers[ti]
	return res
}

// Intern returns the table's own copy of a Reason text equal to s (s
// itself when there is none), so texts read back from a snapshot share
// memory with the ones draws answer.
func (t *Table) Intern(s string) string {
	for _, r := range t.reasons {
		if r == s {
			return r
		}
	}
	return s
}

// Explain returns the Pull that Draw gave when it drew slot for the player
// whose row is row (nil: never drew), with the catalog, the pacing context
// and row as they were before that draw was applied: what replay needs to
// answer a retried draw with the same Reason. It decides with the code
// Draw samples, without a random number.
func (t *Table) Explain(cat Catalog, row Row, slot int32) Pull {
	if row == nil {
		row = t.zero
	}
	pl := t.decide(cat, row)
	res := Pull{Slot: slot, Rule: -1, Fallback: pl.fallback}
	if pl.total == 0 || slot < 0 || int(slot) >= len(t.slots) {
		return res
	}
	if pl.rule >= 0 {
		res.Rule, res.Forced = pl.rule, pl.forced
	}
	ti := t.slots[slot].tier
	res.Guaranteed = pl.restrict&(1<<ti) != 0
	res.Tier = t.tiers[ti]
	return res
}

// pickIndex returns the index whose cumulative weight covers r, skipping
// index skip.
func pickIndex(ws []uint64, r uint64, skip int) int {
	last := -1
	for i, w := range ws {
		if i == skip || w == 0 {
			continue
		}
		if r < w {
			return i
		}
		r -= w
		last = i
	}
	return last
}

// Odds are the exact probabilities of a player's next single draw.
type Odds struct {
	Items    []float64 // by catalog slot; 0 for what cannot be drawn
	Tiers    []TierOdds
	Rule     int  // pity rule that applies, -1: none
	Forced   bool // hard pity
	Fallback bool
}

// TierOdds is one tier's probability; Tier "" is the items without a tier.
type TierOdds struct {
	Tier     string
	P        float64
	Featured bool // the tier gives only featured items (guarantee owed)
}

// Odds computes the next draw's probabilities with the same plan Draw
// samples. items is reused for Odds.Items when large enough.
func (t *Table) Odds(cat Catalog, row Row, items []float64) Odds {
	if row == nil {
		row = t.zero
	}
	pl := t.decide(cat, row)
	o := Odds{Items: append(items[:0], make([]float64, len(t.slots))...), Rule: pl.rule, Forced: pl.forced, Fallback: pl.fallback}
	for ti := range t.tiers {
		q := t.tierProb(pl, ti)
		only := pl.restrict&(1<<ti) != 0
		o.Tiers = append(o.Tiers, TierOdds{Tier: t.tiers[ti], P: q, Featured: only})
		tot := pl.tierW[ti]
		if only {
			tot = pl.featW[ti]
		}
		if q == 0 || tot == 0 {
			continue
		}
		for _, s := range t.tierSlots[ti] {
			if only && !t.slots[s].featured {
				continue
			}
			o.Items[s] = q * float64(t.weight(cat, row, s)) / float64(tot)
		}
	}
	return o
}

// Day is the UTC day of a writer's clock reading in Unix milliseconds.
func Day(ms int64) uint32 {
	if ms < 0 {
		return 0
	}
	return uint32(ms / (24 * 3600 * 1000))
}

// today is the count of the player's draws on the day of ms. A clock that
// went back keeps the later day's count: the state only moves forward.
func today(row Row, ms int64) uint32 {
	if Day(ms) > row[colDay] {
		return 0
	}
	return row[colToday]
}

// Check decides whether a request of n draws may go ahead at ms, all or
// nothing: the window, then max_draws, then max_draws_per_day. row is nil
// for a player who never drew.
func (t *Table) Check(row Row, n int, ms int64) error {
	if row == nil {
		row = t.zero
	}
	if ms < t.startMs || ms >= t.endMs {
		return &ClosedError{Window: t.rules.Window, Now: time.UnixMilli(ms).UTC()}
	}
	pu := t.rules.PerUser
	if pu.MaxDraws > 0 && uint64(row[colDraws])+uint64(n) > uint64(pu.MaxDraws) {
		return &LimitError{Rule: "max_draws", Limit: pu.MaxDraws, Used: row[colDraws], Asked: n}
	}
	if pu.MaxDrawsPerDay > 0 {
		used := today(row, ms)
		if uint64(used)+uint64(n) > uint64(pu.MaxDrawsPerDay) {
			reset := time.UnixMilli(int64(Day(ms)+1) * 24 * 3600 * 1000).UTC()
			return &LimitError{Rule: "max_draws_per_day", Limit: pu.MaxDrawsPerDay, Used: used, Asked: n, Reset: reset}
		}
	}
	return nil
}

// Apply changes row for a draw of slot at ms (the writer's clock, as
// logged). It is the only way a player's state changes, live and in
// replay. A draw that found nothing (slot < 0) changes nothing.
func (t *Table) Apply(cat Catalog, row Row, slot int32, ms int64) {
	if slot < 0 {
		return
	}
	t.sync(cat)
	if d := Day(ms); d > row[colDay] {
		row[colDay], row[colToday] = d, 0
	}
	row[colToday] = sat(row[colToday])
	row[colDraws] = sat(row[colDraws])
	ir := t.slots[slot]
	for i, r := range t.pity {
		c := rowHeader + i
		if ir.tier != 0 && r.tier == ir.tier {
			row[c] = 0
			if r.fg {
				if ir.featured {
					row[colFlags] &^= 1 << i
				} else {
					row[colFlags] |= 1 << i
				}
			}
			continue
		}
		row[c] = sat(row[c])
	}
	if ir.cap >= 0 {
		c := rowHeader + len(t.pity) + int(ir.cap)
		row[c] = sat(row[c])
	}
}

// sat is v+1 without wrapping.
func sat(v uint32) uint32 {
	if v == ^uint32(0) {
		return v
	}
	return v + 1
}

// PlayerState is a readable copy of a player's row.
type PlayerState struct {
	Draws      uint32 // over the pool's life
	DrawsToday uint32 // on the day of the clock reading asked for
	Pity       []PityState
	Held       []Held
}

// PityState is a player's counter for one pity rule.
type PityState struct {
	Pity                // the rule
	Count        uint32 // draws since the tier was last drawn
	FeaturedOwed bool   // the next item of the tier will be featured
}

// Held is how many of a capped item a player holds.
type Held struct {
	Item  string
	Count uint32
	Max   uint32
}

// Describe turns row (nil: a player who never drew) into a PlayerState as
// of ms.
func (t *Table) Describe(row Row, ms int64) PlayerState {
	if row == nil {
		row = t.zero
	}
	ps := PlayerState{Draws: row[colDraws], DrawsToday: today(row, ms)}
	for i, p := range t.rules.Pity {
		ps.Pity = append(ps.Pity, PityState{Pity: p, Count: row[rowHeader+i],
			FeaturedOwed: row[colFlags]&(1<<i) != 0})
	}
	for i, c := range t.rules.ItemCaps {
		ps.Held = append(ps.Held, Held{Item: c.Item, Count: row[rowHeader+len(t.pity)+i], Max: c.MaxPerUser})
	}
	return ps
}
