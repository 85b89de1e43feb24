package gacha

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// testCat is a catalog of fixed items; qty -1 is unlimited.
type testCat struct {
	ids []string
	w   []uint64
	qty []int64
}

func (c *testCat) Slots() int        { return len(c.ids) }
func (c *testCat) ID(s int32) string { return c.ids[s] }
func (c *testCat) Weight(s int32) uint64 {
	if c.qty[s] == 0 {
		return 0
	}
	return c.w[s]
}

func (c *testCat) take(s int32) {
	if c.qty[s] > 0 {
		c.qty[s]--
	}
}

func (c *testCat) add(id string, w uint64, qty int64) {
	c.ids, c.w, c.qty = append(c.ids, id), append(c.w, w), append(c.qty, qty)
}

// banner is the worked example: a 0.6 % ssr tier split 50/50
// between the featured item and the standard one, a 5.1 % sr tier and the
// rest common. Weights are in millionths.
func banner() (*testCat, Rules) {
	c := &testCat{}
	c.add("ssr_featured", 3_000, -1)
	c.add("ssr_standard", 3_000, -1)
	c.add("sr_a", 25_500, -1)
	c.add("sr_b", 25_500, -1)
	c.add("common", 943_000, -1)
	r := Rules{
		Items: []ItemTier{
			{Item: "ssr_featured", Tier: "ssr", Featured: true},
			{Item: "ssr_standard", Tier: "ssr"},
			{Item: "sr_a", Tier: "sr"},
			{Item: "sr_b", Tier: "sr"},
		},
		Pity: []Pity{
			{Tier: "ssr", Hard: 90, SoftStart: 74, SoftStep: 0.06, FeaturedGuarantee: true},
			{Tier: "sr", Hard: 10},
		},
		PerUser: PerUser{MaxDrawsPerDay: 100},
	}
	return c, r
}

func mustTable(t *testing.T, c *testCat, r Rules) *Table {
	t.Helper()
	if err := r.Validate(c.ids); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	tb, err := New(r)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tb
}

func newRng(seed byte) *rand.Rand {
	var s [32]byte
	s[0] = seed
	return rand.New(rand.NewChaCha8(s))
}

// rowWith returns a fresh row with pity counters set.
func rowWith(tb *Table, counters ...uint32) Row {
	row := make(Row, tb.Stride())
	copy(row[rowHeader:], counters)
	return row
}

func TestValidateNamesEveryRule(t *testing.T) {
	ids := []string{"a", "b", "c"}
	base := func() Rules {
		return Rules{Items: []ItemTier{{Item: "a", Tier: "ssr", Featured: true}, {Item: "b", Tier: "ssr"}}}
	}
	cases := []struct {
		name string
		mod  func(*Rules)
		path string
		msg  string
	}{
		{"unknown tier", func(r *Rules) { r.Pity = []Pity{{Tier: "ur", Hard: 10}} }, "pity[0].tier", "unknown tier"},
		{"hard below soft_start", func(r *Rules) { r.Pity = []Pity{{Tier: "ssr", Hard: 70, SoftStart: 74, SoftStep: 0.06}} }, "pity[0].hard", "below soft_start"},
		{"hard zero", func(r *Rules) { r.Pity = []Pity{{Tier: "ssr"}} }, "pity[0].hard", "want 1.."},
		{"step zero", func(r *Rules) { r.Pity = []Pity{{Tier: "ssr", Hard: 90, SoftStart: 74}} }, "pity[0].soft_step", "want > 0"},
		{"step negative", func(r *Rules) { r.Pity = []Pity{{Tier: "ssr", Hard: 90, SoftStart: 74, SoftStep: -0.1}} }, "pity[0].soft_step", "want > 0"},
		{"step without start", func(r *Rules) { r.Pity = []Pity{{Tier: "ssr", Hard: 90, SoftStep: 0.1}} }, "pity[0].soft_step", "without soft_start"},
		{"two rules one tier", func(r *Rules) { r.Pity = []Pity{{Tier: "ssr", Hard: 9}, {Tier: "ssr", Hard: 10}} }, "pity[1].tier", "two pity rules"},
		{"guarantee without featured", func(r *Rules) {
			r.Items[0].Featured = false
			r.Pity = []Pity{{Tier: "ssr", Hard: 9, FeaturedGuarantee: true}}
		}, "pity[0].featured_guarantee", "no featured item"},
		{"cap below one", func(r *Rules) { r.ItemCaps = []ItemCap{{Item: "a"}} }, "item_caps[0].max_per_user", "want >= 1"},
		{"cap unknown item", func(r *Rules) { r.ItemCaps = []ItemCap{{Item: "zz", MaxPerUser: 1}} }, "item_caps[0]", "unknown item"},
		{"tier of unknown item", func(r *Rules) { r.Items = append(r.Items, ItemTier{Item: "zz", Tier: "sr"}) }, "items[2].id", "unknown item"},
		{"window end before start", func(r *Rules) {
			r.Window = Window{Start: time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
		}, "window.end", "not after start"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.mod(&r)
			err := r.Validate(ids)
			if err == nil {
				t.Fatal("Validate accepted bad rules")
			}
			if !errors.Is(err, ErrInvalidRules) {
				t.Errorf("error %v does not wrap ErrInvalidRules", err)
			}
			var re *RuleError
			if !errors.As(err, &re) || re.Path != tc.path || !strings.Contains(re.Msg, tc.msg) {
				t.Errorf("error %q: want path %s and %q", err, tc.path, tc.msg)
			}
		})
	}
	good := base()
	good.Pity = []Pity{{Tier: "ssr", Hard: 90, SoftStart: 74, SoftStep: 0.06, FeaturedGuarantee: true}}
	if err := good.Validate(ids); err != nil {
		t.Fatalf("good rules refused: %v", err)
	}
}

func TestHardPityForcesTier(t *testing.T) {
	c, r := banner()
	tb := mustTable(t, c, r)
	rng := newRng(1)
	for i := range 200 {
		row := rowWith(tb, 89, 0) // this is the 90th draw without an ssr
		p := tb.Draw(c, row, rng)
		if p.Tier != "ssr" || p.Rule != 0 || !p.Forced {
			t.Fatalf("draw %d: got %+v, want a forced ssr", i, p)
		}
	}
	// The sr rule alone: the 10th draw without an sr is an sr.
	for range 200 {
		p := tb.Draw(c, rowWith(tb, 0, 9), rng)
		if p.Tier != "sr" || p.Rule != 1 || !p.Forced {
			t.Fatalf("got %+v, want a forced sr", p)
		}
	}
}

func TestSoftPityOdds(t *testing.T) {
	c, r := banner()
	tb := mustTable(t, c, r)
	base := 6_000.0 / 1e6
	for _, tc := range []struct {
		counter uint32
		want    float64
	}{
		{0, base}, {72, base}, {73, base + 0.06}, {74, base + 0.12}, {88, base + 0.96}, {89, 1}, {200, 1},
	} {
		o := tb.Odds(c, rowWith(tb, tc.counter, 0), nil)
		got := tierP(o, "ssr")
		if math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("counter %d: ssr probability %v, want %v", tc.counter, got, tc.want)
		}
		sum := 0.0
		for _, p := range o.Items {
			sum += p
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("counter %d: item odds sum to %v", tc.counter, sum)
		}
	}
}

func tierP(o Odds, tier string) float64 {
	for _, to := range o.Tiers {
		if to.Tier == tier {
			return to.P
		}
	}
	return -1
}

func TestRarestDueTierWins(t *testing.T) {
	c, r := banner()
	tb := mustTable(t, c, r)
	rng := newRng(2)
	row := rowWith(tb, 89, 9) // both hard pities due
	p := tb.Draw(c, row, rng)
	if p.Tier != "ssr" || p.Rule != 0 {
		t.Fatalf("got %+v, want the rarer ssr rule", p)
	}
	tb.Apply(c, row, p.Slot, 0)
	if row[rowHeader] != 0 || row[rowHeader+1] != 10 {
		t.Fatalf("counters after the ssr: %v, want ssr 0 and sr still counting (10)", row[rowHeader:])
	}
	// Next draw: the sr rule is due on its own.
	p = tb.Draw(c, row, rng)
	if p.Tier != "sr" || p.Rule != 1 {
		t.Fatalf("got %+v, want the sr rule next", p)
	}
}

func TestFeaturedGuarantee(t *testing.T) {
	c, r := banner()
	tb := mustTable(t, c, r)
	rng := newRng(3)
	row := rowWith(tb, 89, 0)
	tb.Apply(c, row, 1, 0) // a non-featured ssr
	if row[colFlags]&1 == 0 {
		t.Fatal("no featured guarantee owed after a standard ssr")
	}
	for range 100 {
		r2 := append(Row(nil), row...)
		r2[rowHeader] = 89
		p := tb.Draw(c, r2, rng)
		if c.ids[p.Slot] != "ssr_featured" || !p.Guaranteed {
			t.Fatalf("got %+v (%s), want the featured ssr by guarantee", p, c.ids[p.Slot])
		}
	}
	tb.Apply(c, row, 0, 0)
	if row[colFlags]&1 != 0 {
		t.Fatal("guarantee still owed after the featured ssr")
	}
}

func TestForcedTierWithNothingFallsBack(t *testing.T) {
	c, r := banner()
	c.qty[0], c.qty[1] = 0, 0 // no ssr left
	tb := mustTable(t, c, r)
	rng := newRng(4)
	p := tb.Draw(c, rowWith(tb, 89, 0), rng)
	if p.Rule != -1 || !p.Fallback || p.Slot < 0 || p.Tier == "ssr" {
		t.Fatalf("got %+v, want a normal draw flagged as fallback", p)
	}
	if !strings.Contains(p.Reason(tb), "unavailable") {
		t.Errorf("reason %q does not say the tier was unavailable", p.Reason(tb))
	}
	// With the sr rule due as well, the sr rule acts: not a normal draw.
	p = tb.Draw(c, rowWith(tb, 89, 9), rng)
	if p.Rule != 1 || p.Fallback || p.Tier != "sr" || p.Reason(tb) != "sr hard pity" {
		t.Fatalf("got %+v (%q), want the sr rule and no fallback", p, p.Reason(tb))
	}
}

func TestItemCapExcludesAndRenormalises(t *testing.T) {
	c, r := banner()
	r.ItemCaps = []ItemCap{{Item: "ssr_featured", MaxPerUser: 2}}
	tb := mustTable(t, c, r)
	row := rowWith(tb, 89, 0)
	tb.Apply(c, row, 0, 0)
	tb.Apply(c, row, 0, 0)
	row[rowHeader] = 89
	row[colFlags] = 1 // owed a featured one, but it is capped
	o := tb.Odds(c, row, nil)
	if o.Items[0] != 0 || o.Items[1] != 1 {
		t.Fatalf("odds %v: want the capped item at 0 and the standard ssr at 1", o.Items)
	}
	rng := newRng(5)
	for range 50 {
		if p := tb.Draw(c, row, rng); p.Slot != 1 {
			t.Fatalf("got slot %d, want the standard ssr", p.Slot)
		}
	}
	if got := tb.Describe(row, 0).Held[0]; got.Count != 2 || got.Max != 2 {
		t.Fatalf("held %+v", got)
	}
}

func TestCheckCapsAndWindow(t *testing.T) {
	c, r := banner()
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r.Window = Window{Start: start, End: start.AddDate(0, 0, 21)}
	r.PerUser = PerUser{MaxDraws: 150, MaxDrawsPerDay: 100}
	tb := mustTable(t, c, r)
	day1 := start.Add(10 * time.Hour).UnixMilli()

	var ce *ClosedError
	if err := tb.Check(nil, 1, start.Add(-time.Second).UnixMilli()); !errors.As(err, &ce) || !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("before the window: %v", err)
	}
	if err := tb.Check(nil, 1, r.Window.End.UnixMilli()); !errors.Is(err, ErrPoolClosed) || !strings.Contains(err.Error(), "2026-12-22T00:00:00Z") {
		t.Fatalf("at the window's end: %v", err)
	}
	row := make(Row, tb.Stride())
	for range 95 {
		tb.Apply(c, row, 4, day1)
	}
	if err := tb.Check(row, 5, day1); err != nil {
		t.Fatalf("95+5 of 100: %v", err)
	}
	// All or nothing: 95+10 exceeds the daily cap, so the whole request is refused.
	var le *LimitError
	err := tb.Check(row, 10, day1)
	if !errors.As(err, &le) || le.Rule != "max_draws_per_day" || !le.Reset.Equal(start.AddDate(0, 0, 1)) {
		t.Fatalf("95+10 of 100: %v", err)
	}
	if !strings.Contains(err.Error(), "max_draws_per_day") || !strings.Contains(err.Error(), "2026-12-02T00:00:00Z") {
		t.Errorf("message %q must name the cap and its reset", err)
	}
	// The next UTC day resets the daily count but not the lifetime one.
	day2 := start.Add(30 * time.Hour).UnixMilli()
	if err := tb.Check(row, 10, day2); err != nil {
		t.Fatalf("next day: %v", err)
	}
	err = tb.Check(row, 56, day2)
	if !errors.As(err, &le) || le.Rule != "max_draws" || !le.Reset.IsZero() {
		t.Fatalf("95+56 of 150: %v", err)
	}
	// A clock that goes back does not reset the day.
	tb.Apply(c, row, 4, day2)
	if got := tb.Describe(row, day1).DrawsToday; got != 1 {
		t.Fatalf("draws today after the clock went back: %d, want 1", got)
	}
}

func TestPlayersRollback(t *testing.T) {
	c, r := banner()
	tb := mustTable(t, c, r)
	ps := NewPlayers(tb.Stride())
	tb.Apply(c, ps.Edit("alice"), 4, 0)
	ps.Commit()
	before := append(Row(nil), mustRow(t, ps, "alice")...)

	m := ps.Mark()
	tb.Apply(c, ps.Edit("alice"), 0, 0)
	tb.Apply(c, ps.Edit("bob"), 1, 0)
	tb.Apply(c, ps.Edit("alice"), 2, 0)
	ps.Rollback(m)
	if ps.Len() != 1 {
		t.Fatalf("%d players after rollback, want 1", ps.Len())
	}
	if _, ok := ps.Lookup("bob"); ok {
		t.Fatal("bob survived the rollback")
	}
	if got := mustRow(t, ps, "alice"); !slicesEqual(got, before) {
		t.Fatalf("alice %v after rollback, want %v", got, before)
	}
	// A player added after a rollback takes the freed place.
	tb.Apply(c, ps.Edit("carol"), 4, 0)
	if id, _ := ps.At(1); id != "carol" {
		t.Fatalf("player 1 is %q", id)
	}
}

func mustRow(t *testing.T, ps *Players, user string) Row {
	t.Helper()
	r, ok := ps.Lookup(user)
	if !ok {
		t.Fatalf("no player %q", user)
	}
	return r
}

func slicesEqual(a, b Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The JSON form round-trips, is canonical (equal rules, equal text) and is
// read strictly.
func TestRulesEncodeParse(t *testing.T) {
	_, r := banner()
	r.ItemCaps = []ItemCap{{Item: "ssr_featured", MaxPerUser: 7}}
	loc := time.FixedZone("KST", 9*3600)
	r.Window = Window{Start: time.Date(2026, 12, 1, 9, 0, 0, 0, loc), End: time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC)}
	js := r.Encode()
	back, err := Parse(js)
	if err != nil {
		t.Fatal(err)
	}
	if back.Encode() != js {
		t.Fatalf("round trip:\n%s\n%s", js, back.Encode())
	}
	if !strings.Contains(js, `"start":"2026-12-01T00:00:00Z"`) || !strings.Contains(js, `"soft_step":0.06`) {
		t.Errorf("encoding %s", js)
	}
	if (&Rules{}).Encode() != "" {
		t.Error("no rules encode as non-empty")
	}
	for _, bad := range []string{`{"pity":[{"tier":"x","hard":1,"typo":1}]}`, `{"pity":[]} {}`, `[1]`} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalidRules) {
			t.Errorf("Parse(%s) = %v", bad, err)
		}
	}
}

func TestReasonTexts(t *testing.T) {
	c, r := banner()
	tb := mustTable(t, c, r)
	for rule := -1; rule < 2; rule++ {
		for _, forced := range []bool{false, true} {
			for _, g := range []bool{false, true} {
				for _, f := range []bool{false, true} {
					p := Pull{Rule: rule, Forced: forced && rule >= 0, Guaranteed: g, Fallback: f}
					if got, want := p.Reason(tb), p.reasonText(tb); got != want {
						t.Errorf("%+v: Reason %q, want %q", p, got, want)
					}
				}
			}
		}
	}
	if got := (Pull{Rule: 1, Forced: true, Guaranteed: true}).Reason(tb); got != "sr hard pity, featured guarantee" {
		t.Errorf("reason %q", got)
	}
}

// A release makes Amount units drawable at the window's start and Amount
// more each Every, unused units carrying over; paced-out units are not
// drawn.
func TestReleasePacing(t *testing.T) {
	c := &testCat{}
	c.add("gold", WeightGold, 1000)
	c.add("dust", 1, -1)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := Rules{Items: []ItemTier{{Item: "gold", Release: &Release{Every: Duration(time.Hour), Amount: 2}}},
		Window: Window{Start: start}}
	tb := mustTable(t, c, r)
	pool := make(Row, tb.Stride())
	at := func(d time.Duration) { tb.At(start.Add(d).UnixMilli(), pool) }
	avail := func() uint64 {
		n, ok := tb.Available(c, 0)
		if !ok {
			t.Fatal("gold is not paced")
		}
		return n
	}
	rng := newRng(9)
	at(30 * time.Minute)
	if n := avail(); n != 2 {
		t.Fatalf("available at the start %d, want 2", n)
	}
	golds := 0
	for range 20 {
		p := tb.Draw(c, nil, rng)
		if p.Slot == 0 {
			golds++
			tb.ApplyPool(c, pool, p.Slot)
		}
	}
	if golds != 2 || avail() != 0 {
		t.Fatalf("drew %d golds in the first hour (available now %d), want exactly 2", golds, avail())
	}
	if o := tb.Odds(c, nil, nil); o.Items[0] != 0 {
		t.Fatalf("odds of a paced-out item %v", o.Items[0])
	}
	at(3*time.Hour + time.Minute) // three more releases, nothing drawn: they carry over
	if n := avail(); n != 6 {
		t.Fatalf("available after 3 more releases %d, want 6", n)
	}
	at(-time.Minute)
	if n := avail(); n != 0 {
		t.Fatalf("available before the window %d, want 0", n)
	}
	// Validation: a release needs a limited item; without a window start
	// it counts from PaceFrom, which Stamp sets when the rules are logged.
	bad := Rules{Items: []ItemTier{{Item: "dust", Release: &Release{Every: Duration(time.Hour), Amount: 1}}}}
	err := bad.ValidateItems([]string{"gold", "dust"}, map[string]bool{"dust": true})
	if err == nil || !strings.Contains(err.Error(), "unlimited") {
		t.Fatalf("release on an unlimited item: %v", err)
	}
	noWindow := Rules{Items: []ItemTier{{Item: "gold", Release: &Release{Every: Duration(time.Hour), Amount: 2}}}}
	if err := noWindow.ValidateItems([]string{"gold", "dust"}, map[string]bool{"dust": true}); err != nil {
		t.Fatalf("release without a window start: %v", err)
	}
	if _, err := New(noWindow); err == nil {
		t.Fatal("a release without window start or pace_from compiled: it has no instant to count from")
	}
	logged := start.Add(90*time.Minute + 1500*time.Microsecond)
	noWindow.Stamp(nil, logged)
	if want := start.Add(90*time.Minute + time.Millisecond); !noWindow.PaceFrom.Equal(want) {
		t.Fatalf("stamped %v, want %v", noWindow.PaceFrom, want)
	}
	again := Rules{Items: noWindow.Items, PerUser: PerUser{MaxDraws: 5}}
	if again.Stamp(&noWindow, logged.Add(time.Hour)); !again.PaceFrom.Equal(noWindow.PaceFrom) {
		t.Fatalf("replacing paced rules moved the pacing start to %v, want %v", again.PaceFrom, noWindow.PaceFrom)
	}
	if r.Stamp(nil, logged); !r.PaceFrom.IsZero() {
		t.Fatalf("rules with a window start stamped %v", r.PaceFrom)
	}
	tw := mustTable(t, c, noWindow)
	tw.At(logged.UnixMilli(), make(Row, tw.Stride()))
	if n, _ := tw.Available(c, 0); n != 2 {
		t.Fatalf("available when first logged %d, want 2", n)
	}
	tw.At(logged.Add(-time.Second).UnixMilli(), make(Row, tw.Stride()))
	if n, _ := tw.Available(c, 0); n != 0 {
		t.Fatalf("available before first logged %d, want 0", n)
	}
	// The JSON form keeps the schedule.
	back, err := Parse(r.Encode())
	if err != nil || back.Encode() != r.Encode() || !strings.Contains(r.Encode(), `"every":"1h0m0s"`) {
		t.Fatalf("JSON %s -> %s, %v", r.Encode(), back.Encode(), err)
	}
}

// WeightGold is a weight that makes gold the likely draw.
const WeightGold = 1_000_000

// Explain gives, for the slot a draw drew and the state before it, the
// Pull Draw returned: replay answers a retried draw's pity with it. Over
// many pulls of the banner (soft and hard pity, the featured guarantee)
// and with the ssr tier emptied midway (fallbacks), every Pull matches.
func TestExplainMatchesDraw(t *testing.T) {
	c, r := banner()
	c.qty[0], c.qty[1] = 40, 40 // limited ssr: runs out midway
	tb := mustTable(t, c, r)
	rng := newRng(11)
	row := make(Row, tb.Stride())
	seen := map[string]int{}
	for i := range 20_000 {
		p := tb.Draw(c, row, rng)
		if p.Slot < 0 {
			t.Fatalf("pull %d drew nothing", i)
		}
		if e := tb.Explain(c, row, p.Slot); e != p {
			t.Fatalf("pull %d: Draw gave %+v, Explain %+v", i, p, e)
		}
		seen[p.Reason(tb)]++
		c.take(p.Slot)
		tb.Apply(c, row, p.Slot, 0)
	}
	for _, want := range []string{"", "ssr soft pity", "sr hard pity", "featured guarantee", "pity tier unavailable: normal draw"} {
		found := false
		for got := range seen {
			if strings.Contains(got, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no pull explained %q: %v", want, seen)
		}
	}
}
