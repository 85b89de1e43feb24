package config

import (
	"strings"
	"testing"
	"time"
)

const bannerYAML = `pools:
  - name: banner
    items:
      - {id: ssr_featured, quantity: -1, weight: 0.3, tier: ssr, featured: true}
      - {id: ssr_standard, quantity: -1, weight: 0.3, tier: ssr}
      - {id: sr_a, quantity: -1, weight: 5.1, tier: sr}
      - {id: common, quantity: -1, weight: 94.3}
    rules:
      pity:
        - tier: ssr
          hard: 90
          soft_start: 74
          soft_step: 0.06
          featured_guarantee: true
        - tier: sr
          hard: 10
      per_user:
        max_draws: 1000
        max_draws_per_day: 100
      item_caps:
        ssr_featured: {max_per_user: 7}
      window: {start: 2026-12-01T00:00:00Z, end: 2026-12-22T00:00:00Z}
`

// The example parses into the engine's rules.
func TestRulesParse(t *testing.T) {
	c, err := Parse([]byte(bannerYAML), "banner.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := c.EngineOptions(c.Pools[0])
	r := o.Rules
	if r == nil {
		t.Fatal("no rules")
	}
	if len(r.Items) != 3 || r.Items[0].Tier != "ssr" || !r.Items[0].Featured || r.Items[1].Featured {
		t.Errorf("items %+v", r.Items)
	}
	if len(r.Pity) != 2 || r.Pity[0].Hard != 90 || r.Pity[0].SoftStart != 74 || r.Pity[0].SoftStep != 0.06 ||
		!r.Pity[0].FeaturedGuarantee || r.Pity[1].Tier != "sr" || r.Pity[1].Hard != 10 {
		t.Errorf("pity %+v", r.Pity)
	}
	if r.PerUser.MaxDraws != 1000 || r.PerUser.MaxDrawsPerDay != 100 {
		t.Errorf("per_user %+v", r.PerUser)
	}
	if len(r.ItemCaps) != 1 || r.ItemCaps[0].Item != "ssr_featured" || r.ItemCaps[0].MaxPerUser != 7 {
		t.Errorf("item_caps %+v", r.ItemCaps)
	}
	if !r.Window.Start.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || !r.Window.End.Equal(time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("window %+v", r.Window)
	}
	// A pool without rules or tiers has none.
	if o := Default().EngineOptions(Default().Pools[0]); o.Rules != nil {
		t.Errorf("demo pool has rules %+v", o.Rules)
	}
}

// Every rule error names file:line, the pool and the rule.
func TestRulesErrors(t *testing.T) {
	cases := []struct {
		name, old, new string
		line           int
		want           string
	}{
		{"unknown tier", "        - tier: sr\n", "        - tier: ur\n", 15, `banner.yaml:15: pools[0] "banner": rules.pity[1].tier: unknown tier "ur"`},
		{"hard below soft_start", "hard: 90", "hard: 70", 11, `banner.yaml:11: pools[0] "banner": rules.pity[0].hard: hard 70 is below soft_start 74`},
		{"step zero", "soft_step: 0.06", "soft_step: 0", 13, `rules.pity[0].soft_step: soft_step is 0, want > 0 and <= 1`},
		{"step negative", "soft_step: 0.06", "soft_step: -0.5", 13, `soft_step is -0.5`},
		{"cap below one", "max_per_user: 7", "max_per_user: 0", 21, `max_per_user "0": out of range 1..`},
		{"per-user cap below one", "max_draws_per_day: 100", "max_draws_per_day: 0", 19, `max_draws_per_day "0": out of range 1..`},
		{"cap on an unknown item", "ssr_featured: {max_per_user: 7}", "nope: {max_per_user: 7}", 21, `rules.item_caps[0]: unknown item "nope"`},
		{"window end before start", "end: 2026-12-22T00:00:00Z", "end: 2026-11-22T00:00:00Z", 22, `rules.window.end: end 2026-11-22T00:00:00Z is not after start 2026-12-01T00:00:00Z`},
		{"bad time", "end: 2026-12-22T00:00:00Z", "end: tomorrow", 22, `want RFC 3339`},
		{"guarantee without featured", "tier: ssr, featured: true", "tier: ssr", 14, `rules.pity[0].featured_guarantee: tier "ssr" has no featured item`},
		{"unknown rule key", "      per_user:\n", "      per_users:\n", 17, `unknown field "per_users" (did you mean "per_user"?)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(bannerYAML, tc.old, tc.new, 1)
			if y == bannerYAML {
				t.Fatalf("%q not in the example", tc.old)
			}
			_, err := Parse([]byte(y), "banner.yaml")
			if err == nil {
				t.Fatal("Parse accepted bad rules")
			}
			found := false
			for _, fe := range fieldErrors(t, err) {
				if strings.Contains(fe.Error(), tc.want) && fe.Line == tc.line && strings.Contains(fe.Error(), `"banner"`) {
					found = true
				}
			}
			if !found {
				t.Errorf("error %q: want line %d and %q", err, tc.line, tc.want)
			}
		})
	}
}

// An item's release parses into the rules; a release on an unlimited item
// is refused at its line.
func TestRulesRelease(t *testing.T) {
	y := strings.Replace(bannerYAML, "      - {id: common, quantity: -1, weight: 94.3}\n",
		"      - {id: common, quantity: -1, weight: 94.3}\n      - {id: gold_ticket, quantity: 1000, weight: 5, release: {every: 1h, amount: 50}}\n", 1)
	c, err := Parse([]byte(y), "banner.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := c.EngineOptions(c.Pools[0]).Rules
	last := r.Items[len(r.Items)-1]
	if last.Item != "gold_ticket" || last.Release == nil || time.Duration(last.Release.Every) != time.Hour || last.Release.Amount != 50 {
		t.Fatalf("release %+v", last)
	}
	bad := strings.Replace(y, "{id: common, quantity: -1, weight: 94.3}", "{id: common, quantity: -1, weight: 94.3, release: {every: 1h, amount: 5}}", 1)
	_, err = Parse([]byte(bad), "banner.yaml")
	if err == nil || !strings.Contains(err.Error(), `banner.yaml:7: pools[0] "banner" items[3] "common": release: item "common" is unlimited`) {
		t.Fatalf("release on an unlimited item: %v", err)
	}
}
