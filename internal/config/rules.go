package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rewardpool/rewardpool/gacha"
)

// Rules are a pool's player rules (README "Gacha rules"): pity per tier,
// per-user caps, item caps and a window. Items get their tier and the
// featured mark in the pool's items list.
type Rules struct {
	Pity     []PityRule `yaml:"pity"`
	PerUser  PerUser    `yaml:"per_user"`
	ItemCaps []ItemCap  `yaml:"item_caps"` // a mapping item id -> {max_per_user: N} in the file, in file order
	Window   Window     `yaml:"window"`
}

// PityRule is one tier's pity: hard, soft_start, soft_step,
// featured_guarantee.
type PityRule struct {
	Tier              string  `yaml:"tier"`
	Hard              uint32  `yaml:"hard"`
	SoftStart         uint32  `yaml:"soft_start"`
	SoftStep          float64 `yaml:"soft_step"`
	FeaturedGuarantee bool    `yaml:"featured_guarantee"`
}

// PerUser caps each player's draws: max_draws over the pool's life,
// max_draws_per_day per UTC day. Unset: no cap; set, at least 1.
type PerUser struct {
	MaxDraws       uint32 `yaml:"max_draws"`
	MaxDrawsPerDay uint32 `yaml:"max_draws_per_day"`
}

// Release is an item's release schedule: {every: 1h, amount: 50}.
type Release struct {
	Every  Duration `yaml:"every"`
	Amount uint32   `yaml:"amount"`
}

// release parses an item's release mapping.
func (p *parser) release(v *yaml.Node, path string) *Release {
	if isNull(v) {
		return nil
	}
	r := &Release{}
	seen := p.mapping(v, path, []field{
		{"every", scalar(p, &r.Every, `a duration like "1h"`, ParseDuration)},
		{"amount", p.u32(&r.Amount, 1)},
	})
	for _, k := range []string{"every", "amount"} {
		if v.Kind == yaml.MappingNode && !seen[k] && !p.src.bad[path+"."+k] {
			p.fail(path+"."+k, v, "%s is missing", k)
		}
	}
	return r
}

// ItemCap stops giving Item to a player who holds MaxPerUser of it.
type ItemCap struct {
	Item       string
	MaxPerUser uint32 `yaml:"max_per_user"`
}

// Window is when the pool draws, RFC 3339 times: start inclusive, end
// exclusive; either may be left out.
type Window struct {
	Start time.Time `yaml:"start"`
	End   time.Time `yaml:"end"`
}

// rules parses a pool's rules mapping.
func (p *parser) rules(v *yaml.Node, path string) *Rules {
	if isNull(v) {
		return nil
	}
	r := &Rules{}
	p.mapping(v, path, []field{
		{"pity", func(v *yaml.Node, path string) { r.Pity = p.pity(v, path) }},
		{"per_user", func(v *yaml.Node, path string) {
			if isNull(v) {
				return
			}
			p.mapping(v, path, []field{
				{"max_draws", p.u32(&r.PerUser.MaxDraws, 1)},
				{"max_draws_per_day", p.u32(&r.PerUser.MaxDrawsPerDay, 1)},
			})
		}},
		{"item_caps", func(v *yaml.Node, path string) { r.ItemCaps = p.itemCaps(v, path) }},
		{"window", func(v *yaml.Node, path string) {
			if isNull(v) {
				return
			}
			p.mapping(v, path, []field{
				{"start", scalar(p, &r.Window.Start, "an RFC 3339 time like 2026-12-01T00:00:00Z", parseTime)},
				{"end", scalar(p, &r.Window.End, "an RFC 3339 time like 2026-12-22T00:00:00Z", parseTime)},
			})
		}},
	})
	return r
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("time %q: want RFC 3339, like 2026-12-01T00:00:00Z", s)
	}
	return t.UTC(), nil
}

func (p *parser) pity(v *yaml.Node, path string) []PityRule {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.fail(path, v, "%s: want a list of pity rules (- tier: ...), got %s", display(path), kindName(v))
		return nil
	}
	out := make([]PityRule, len(v.Content))
	for i, n := range v.Content {
		n = deref(n)
		pp := path + "[" + strconv.Itoa(i) + "]"
		p.src.lines[pp] = n.Line
		r := &out[i]
		seen := p.mapping(n, pp, []field{
			{"tier", p.str(&r.Tier)},
			{"hard", p.u32(&r.Hard, 1)},
			{"soft_start", p.u32(&r.SoftStart, 1)},
			{"soft_step", scalar(p, &r.SoftStep, "a number like 0.06", parseStep)},
			{"featured_guarantee", scalar(p, &r.FeaturedGuarantee, "true or false", parseBool)},
		})
		for _, k := range []string{"tier", "hard"} {
			if n.Kind == yaml.MappingNode && !seen[k] && !p.src.bad[pp+"."+k] {
				p.fail(pp+"."+k, n, "%s is missing", k)
			}
		}
	}
	return out
}

func parseStep(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("step %q: want a number like 0.06", s)
	}
	return f, nil
}

func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("value %q: want true or false", s)
}

func (p *parser) itemCaps(v *yaml.Node, path string) []ItemCap {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		p.fail(path, v, "%s: want a mapping of item ids to {max_per_user: N}, got %s", display(path), kindName(v))
		return nil
	}
	var out []ItemCap
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, n := v.Content[i], deref(v.Content[i+1])
		cp := path + "." + k.Value
		p.src.lines[cp] = k.Line
		c := ItemCap{Item: k.Value}
		seen := p.mapping(n, cp, []field{{"max_per_user", p.u32(&c.MaxPerUser, 1)}})
		if n.Kind == yaml.MappingNode && !seen["max_per_user"] && !p.src.bad[cp+".max_per_user"] {
			p.fail(cp+".max_per_user", n, "max_per_user is missing")
		}
		out = append(out, c)
	}
	return out
}

// u32 decodes an integer in lo..2^32-1.
func (p *parser) u32(dst *uint32, lo int64) func(*yaml.Node, string) {
	return func(v *yaml.Node, path string) {
		if isNull(v) {
			return
		}
		if x, ok := p.integer(v, path, lo, math.MaxUint32); ok {
			*dst = uint32(x)
			p.setVal(path, *dst)
		}
	}
}

// gachaRules turns a pool's configuration into the engine's rules; nil
// when the pool has none.
func gachaRules(pl Pool) *gacha.Rules {
	r := &gacha.Rules{}
	for _, it := range pl.Items {
		if it.Tier != "" || it.Featured || it.Release != nil {
			t := gacha.ItemTier{Item: it.ID, Tier: it.Tier, Featured: it.Featured}
			if it.Release != nil {
				t.Release = &gacha.Release{Every: gacha.Duration(it.Release.Every), Amount: it.Release.Amount}
			}
			r.Items = append(r.Items, t)
		}
	}
	if pr := pl.Rules; pr != nil {
		for _, p := range pr.Pity {
			r.Pity = append(r.Pity, gacha.Pity{Tier: p.Tier, Hard: p.Hard, SoftStart: p.SoftStart,
				SoftStep: p.SoftStep, FeaturedGuarantee: p.FeaturedGuarantee})
		}
		r.PerUser = gacha.PerUser{MaxDraws: pr.PerUser.MaxDraws, MaxDrawsPerDay: pr.PerUser.MaxDrawsPerDay}
		for _, c := range pr.ItemCaps {
			r.ItemCaps = append(r.ItemCaps, gacha.ItemCap{Item: c.Item, MaxPerUser: c.MaxPerUser})
		}
		r.Window = gacha.Window{Start: pr.Window.Start, End: pr.Window.End}
	}
	if r.Empty() {
		return nil
	}
	return r
}

var ruleItemRE = regexp.MustCompile(`^items\[(\d+)\](.*)$`)
var ruleCapRE = regexp.MustCompile(`^item_caps\[(\d+)\](.*)$`)

// checkRules reports the problems of pool i's rules at their lines.
func (c *Config) checkRules(i int, bad func(path string, cur any, format string, args ...any)) {
	pl := c.Pools[i]
	r := gachaRules(pl)
	if r == nil {
		return
	}
	pp := fmt.Sprintf("pools[%d]", i)
	ids := make([]string, len(pl.Items))
	unlimited := map[string]bool{}
	// The gacha rules list only the items with a tier or a release; map
	// their index back to the pool's item.
	var tiered []int
	for j, it := range pl.Items {
		ids[j] = it.ID
		if it.Quantity == -1 {
			unlimited[it.ID] = true
		}
		if it.Tier != "" || it.Featured || it.Release != nil {
			tiered = append(tiered, j)
		}
	}
	err := r.ValidateItems(ids, unlimited)
	if err == nil {
		return
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var re *gacha.RuleError
		if !errors.As(e, &re) {
			bad(pp+".rules", nil, "rules: %v", e)
			continue
		}
		path, msg := pp+".rules."+re.Path, "rules."+re.Path+": "+re.Msg
		if m := ruleItemRE.FindStringSubmatch(re.Path); m != nil {
			k, _ := strconv.Atoi(m[1])
			if k < len(tiered) {
				field := ".tier"
				if m[2] == ".featured" || m[2] == ".release" {
					field = m[2]
				}
				path = fmt.Sprintf("%s.items[%d]%s", pp, tiered[k], field)
				msg = field[1:] + ": " + re.Msg
			}
		} else if m := ruleCapRE.FindStringSubmatch(re.Path); m != nil && pl.Rules != nil {
			k, _ := strconv.Atoi(m[1])
			if k < len(pl.Rules.ItemCaps) {
				path = pp + ".rules.item_caps." + pl.Rules.ItemCaps[k].Item + m[2]
			}
		}
		bad(path, nil, "%s", msg)
	}
}
