package gacha

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on the shape of a pool's rules. They keep a player's state a few
// fixed-size counters.
const (
	MaxPity     = 8         // pity rules per pool (one flag bit each)
	MaxItemCaps = 64        // item_caps entries per pool
	MaxHard     = 1_000_000 // largest hard pity
	MaxUserLen  = 128       // bytes of a user id
	MaxTiers    = 63        // distinct tier labels per pool
)

// Sentinel errors; test with errors.Is.
var (
	// ErrInvalidRules is wrapped by every *RuleError Validate returns.
	ErrInvalidRules = errors.New("invalid rules")
	// ErrUserLimit is wrapped by *LimitError: a per-user cap refused the
	// whole request.
	ErrUserLimit = errors.New("user limit reached")
	// ErrPoolClosed is wrapped by *ClosedError: the writer's clock is
	// outside the pool's window.
	ErrPoolClosed = errors.New("pool closed")
	// ErrInvalidUser: a user id that is empty where one is needed, too long
	// or not UTF-8.
	ErrInvalidUser = errors.New("invalid user_id")
)

// Rules are one pool's gacha rules. The zero value has no rules.
//
// Its JSON form (Encode, Parse) is what the log and snapshots hold and what
// the admin API takes:
//
//	{"items":[{"item":"ssr_featured","tier":"ssr","featured":true}],
//	 "pity":[{"tier":"ssr","hard":90,"soft_start":74,"soft_step":0.06,"featured_guarantee":true}],
//	 "per_user":{"max_draws":1000,"max_draws_per_day":100},
//	 "item_caps":[{"item":"ssr_featured","max_per_user":7}],
//	 "window":{"start":"2026-12-01T00:00:00Z","end":"2026-12-22T00:00:00Z"}}
type Rules struct {
	// Items gives items a tier and the featured mark. Items not listed have
	// no tier: no pity rule counts them as the tier it waits for.
	Items    []ItemTier `json:"items,omitempty"`
	Pity     []Pity     `json:"pity,omitempty"`
	PerUser  PerUser    `json:"per_user,omitzero"`
	ItemCaps []ItemCap  `json:"item_caps,omitempty"`
	Window   Window     `json:"window,omitzero"`
	// PaceFrom is when releases start counting for rules without a window
	// start: the writer's clock when it first logged rules carrying a
	// release (Stamp). It is part of the logged JSON, so replay, snapshots
	// and replicas pace from the same instant, never from their own clock.
	PaceFrom time.Time `json:"pace_from,omitzero"`
}

// ItemTier is an item's tier label and whether it is the featured item of
// its tier (the one a featured guarantee gives).
type ItemTier struct {
	Item     string `json:"item"`
	Tier     string `json:"tier,omitempty"`
	Featured bool   `json:"featured,omitempty"`
	// Release paces a limited item's stock over time (nil: all of it is
	// drawable at once).
	Release *Release `json:"release,omitempty"`
}

// Release makes Amount units of an item drawable at the window's start
// (without one: when the rules carrying the release were first logged,
// Rules.PaceFrom) and Amount more every Every after it; units not drawn
// carry over. The item's remaining quantity still bounds what is drawable.
type Release struct {
	Every  Duration `json:"every"`
	Amount uint32   `json:"amount"`
}

// Duration is a time.Duration that reads and writes as "1h30m" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration like \"1h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Pity is one pity rule. A player's counter for it counts their draws
// since Tier was last drawn for them. Draw number n = counter+1 gets:
//
//	n >= Hard:              the tier with probability 1
//	n >= SoftStart (if >0): base + SoftStep*(n-SoftStart+1), at most 1
//	otherwise:              the base probability (the tier's share of the weight)
//
// With FeaturedGuarantee, after a non-featured item of the tier the
// player's next item of the tier is a featured one.
type Pity struct {
	Tier              string  `json:"tier"`
	Hard              uint32  `json:"hard"`
	SoftStart         uint32  `json:"soft_start,omitempty"` // 0: no soft pity
	SoftStep          float64 `json:"soft_step,omitempty"`  // absolute probability added per draw, in (0, 1]
	FeaturedGuarantee bool    `json:"featured_guarantee,omitempty"`
}

// PerUser caps a player's draws; 0 means no cap.
type PerUser struct {
	MaxDraws       uint32 `json:"max_draws,omitempty"`         // over the pool's life
	MaxDrawsPerDay uint32 `json:"max_draws_per_day,omitempty"` // per UTC day
}

// ItemCap stops giving Item to a player who holds MaxPerUser of it.
type ItemCap struct {
	Item       string `json:"item"`
	MaxPerUser uint32 `json:"max_per_user"`
}

// Window is when draws are open: Start inclusive, End exclusive; a zero
// bound is open-ended.
type Window struct {
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
}

// Encode returns the canonical JSON form of r ("" for no rules): equal
// rules encode equally, so the engine can tell a change.
func (r *Rules) Encode() string {
	if r == nil || r.Empty() {
		return ""
	}
	c := *r
	c.Window.Start, c.Window.End = c.Window.Start.UTC(), c.Window.End.UTC()
	c.PaceFrom = c.PaceFrom.UTC()
	b, err := json.Marshal(&c)
	if err != nil {
		panic("gacha: encode rules: " + err.Error()) // plain data: cannot fail
	}
	return string(b)
}

// Parse reads the JSON form of rules ("" is no rules), strictly: unknown
// fields are errors. It does not Validate.
func Parse(s string) (Rules, error) {
	var r Rules
	if s == "" {
		return r, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Rules{}, fmt.Errorf("%w: %v", ErrInvalidRules, err)
	}
	if dec.More() {
		return Rules{}, fmt.Errorf("%w: trailing data after the rules", ErrInvalidRules)
	}
	return r, nil
}

// Empty reports whether r holds no rule at all: such a pool draws as a
// pool without rules.
func (r *Rules) Empty() bool {
	return len(r.Items) == 0 && len(r.Pity) == 0 && r.PerUser == (PerUser{}) &&
		len(r.ItemCaps) == 0 && r.Window.Start.IsZero() && r.Window.End.IsZero()
}

// Paced reports whether any item's stock is released over time.
func (r *Rules) Paced() bool {
	for _, it := range r.Items {
		if it.Release != nil {
			return true
		}
	}
	return false
}

// PaceStart is the instant releases count from: the window's start, else
// PaceFrom (zero for rules without either).
func (r *Rules) PaceStart() time.Time {
	if !r.Window.Start.IsZero() {
		return r.Window.Start
	}
	return r.PaceFrom
}

// Stamp sets PaceFrom on rules about to be logged that release stock and
// have no window start (and no PaceFrom yet): to prev's pacing start when
// prev (the rules they replace, nil for none) already released stock, so
// a change of the other rules neither re-releases nor holds back units,
// else to now, in whole milliseconds (the table's resolution).
func (r *Rules) Stamp(prev *Rules, now time.Time) {
	if !r.Paced() || !r.Window.Start.IsZero() || !r.PaceFrom.IsZero() {
		return
	}
	if prev != nil && prev.Paced() && !prev.PaceStart().IsZero() {
		r.PaceFrom = prev.PaceStart()
		return
	}
	r.PaceFrom = time.UnixMilli(now.UnixMilli()).UTC()
}

// NeedsUser reports whether a draw needs a user id: any rule keyed by
// player (pity, per-user caps, item caps).
func (r *Rules) NeedsUser() bool {
	return len(r.Pity) > 0 || r.PerUser != (PerUser{}) || len(r.ItemCaps) > 0
}

// RuleError is one problem Validate found. Path names the rule the way
// the configuration does ("pity[0].hard"), so a config loader can point
// at its line.
type RuleError struct {
	Path string
	Msg  string
}

func (e *RuleError) Error() string { return "rules." + e.Path + ": " + e.Msg }
func (e *RuleError) Unwrap() error { return ErrInvalidRules }

// Validate checks r against the pool's item ids (every id the catalog
// holds; nil: do not check that named items exist, as for an engine whose
// catalog arrives later from its primary) and returns every problem, each
// a *RuleError, joined.
func (r *Rules) Validate(itemIDs []string) error {
	return r.ValidateItems(itemIDs, nil)
}

// ValidateItems is Validate that also knows which items are unlimited
// (a release needs a limited item).
func (r *Rules) ValidateItems(itemIDs []string, unlimited map[string]bool) error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &RuleError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	known := make(map[string]bool, len(itemIDs))
	for _, id := range itemIDs {
		known[id] = true
	}
	exists := func(id string) bool { return itemIDs == nil || known[id] }
	tiers := map[string]bool{}
	featured := map[string]bool{}
	seen := map[string]bool{}
	for i, it := range r.Items {
		p := "items[" + strconv.Itoa(i) + "]"
		switch {
		case it.Item == "" || !exists(it.Item):
			bad(p+".id", "unknown item %q", it.Item)
		case seen[it.Item]:
			bad(p+".id", "item %q has a tier twice", it.Item)
		}
		seen[it.Item] = true
		if rel := it.Release; rel != nil {
			switch {
			case unlimited[it.Item]:
				bad(p+".release", "item %q is unlimited: there is no stock to release", it.Item)
			case rel.Every < Duration(time.Second) || rel.Amount < 1:
				bad(p+".release", "release every %s, amount %d: want every >= 1s and amount >= 1", time.Duration(rel.Every), rel.Amount)
			}
		}
		if it.Tier == "" {
			if it.Featured {
				bad(p+".featured", "item %q is featured but has no tier", it.Item)
			}
			continue
		}
		if len(it.Tier) > 64 || !utf8.ValidString(it.Tier) {
			bad(p+".tier", "tier must be at most 64 bytes of UTF-8")
		}
		tiers[it.Tier] = true
		if it.Featured {
			featured[it.Tier] = true
		}
	}
	if len(tiers) > MaxTiers {
		bad("items", "%d tiers, at most %d", len(tiers), MaxTiers)
	}
	if len(r.Pity) > MaxPity {
		bad("pity", "%d pity rules, at most %d", len(r.Pity), MaxPity)
	}
	pityTier := map[string]bool{}
	for i, p := range r.Pity {
		path := "pity[" + strconv.Itoa(i) + "]"
		switch {
		case p.Tier == "":
			bad(path+".tier", "tier is missing")
		case !tiers[p.Tier]:
			bad(path+".tier", "unknown tier %q: no item has it", p.Tier)
		case pityTier[p.Tier]:
			bad(path+".tier", "tier %q has two pity rules", p.Tier)
		}
		pityTier[p.Tier] = true
		if p.Hard < 1 || p.Hard > MaxHard {
			bad(path+".hard", "hard is %d, want 1..%d", p.Hard, MaxHard)
		}
		if p.SoftStart > 0 && p.Hard < p.SoftStart {
			bad(path+".hard", "hard %d is below soft_start %d", p.Hard, p.SoftStart)
		}
		switch {
		case p.SoftStart > 0 && (!(p.SoftStep > 0) || p.SoftStep > 1 || math.IsNaN(p.SoftStep)):
			bad(path+".soft_step", "soft_step is %v, want > 0 and <= 1", p.SoftStep)
		case p.SoftStart == 0 && p.SoftStep != 0:
			bad(path+".soft_step", "soft_step without soft_start")
		}
		if p.FeaturedGuarantee && p.Tier != "" && tiers[p.Tier] && !featured[p.Tier] {
			bad(path+".featured_guarantee", "tier %q has no featured item", p.Tier)
		}
	}
	if len(r.ItemCaps) > MaxItemCaps {
		bad("item_caps", "%d item caps, at most %d", len(r.ItemCaps), MaxItemCaps)
	}
	capped := map[string]bool{}
	for i, c := range r.ItemCaps {
		path := "item_caps[" + strconv.Itoa(i) + "]"
		switch {
		case c.Item == "" || !exists(c.Item):
			bad(path, "unknown item %q", c.Item)
		case capped[c.Item]:
			bad(path, "item %q is capped twice", c.Item)
		}
		capped[c.Item] = true
		if c.MaxPerUser < 1 {
			bad(path+".max_per_user", "max_per_user is %d, want >= 1", c.MaxPerUser)
		}
	}
	if w := r.Window; !w.Start.IsZero() && !w.End.IsZero() && !w.End.After(w.Start) {
		bad("window.end", "end %s is not after start %s", w.End.UTC().Format(time.RFC3339), w.Start.UTC().Format(time.RFC3339))
	}
	return errors.Join(errs...)
}

// CheckUser validates a user id: empty is allowed here (pools without
// player rules); non-empty ids are at most MaxUserLen bytes of UTF-8.
func CheckUser(user string) error {
	if len(user) > MaxUserLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidUser, len(user), MaxUserLen)
	}
	if !utf8.ValidString(user) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidUser)
	}
	return nil
}

// LimitError is a request refused by a per-user cap.
type LimitError struct {
	Rule  string    // "max_draws" or "max_draws_per_day"
	Limit uint32    // the cap
	Used  uint32    // draws already counted against it
	Asked int       // draws the request asked for
	Reset time.Time // when the count resets; zero: never
}

func (e *LimitError) Error() string {
	reset := "it never resets"
	if !e.Reset.IsZero() {
		reset = "it resets at " + e.Reset.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s is %d per user: %d used, %d asked; %s", e.Rule, e.Limit, e.Used, e.Asked, reset)
}
func (e *LimitError) Unwrap() error { return ErrUserLimit }

// ClosedError is a draw outside the pool's window.
type ClosedError struct {
	Window Window
	Now    time.Time
}

func (e *ClosedError) Error() string {
	f := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("the pool draws from %s until %s; the time is %s", f(e.Window.Start), f(e.Window.End), f(e.Now))
}
func (e *ClosedError) Unwrap() error { return ErrPoolClosed }
