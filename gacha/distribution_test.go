package gacha

import (
	"math"
	"testing"
)

// exactUntil returns P(the tier first comes on draw n), n = 1..hard, for a
// pity rule with base probability base, computed from the rules' text:
// draw n has probability base before soft_start, base+step*(n-soft+1)
// (at most 1) from it, and 1 at hard.
func exactUntil(base float64, hard, soft int, step float64) []float64 {
	dist := make([]float64, hard+1)
	survive := 1.0
	for n := 1; n <= hard; n++ {
		p := base
		if n >= soft {
			p = min(1, base+step*float64(n-soft+1))
		}
		if n >= hard {
			p = 1
		}
		dist[n] = survive * p
		survive *= 1 - p
	}
	return dist
}

// chiSquareP is P(X >= x) for X chi-square with df degrees of freedom: the
// regularised upper incomplete gamma function Q(df/2, x/2).
func chiSquareP(x float64, df int) float64 {
	a, z := float64(df)/2, x/2
	if z <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	if z < a+1 { // series for P, then Q = 1-P
		sum, term := 1/a, 1/a
		for n := 1; n < 1000; n++ {
			term *= z / (a + float64(n))
			sum += term
			if term < sum*1e-15 {
				break
			}
		}
		return 1 - sum*math.Exp(-z+a*math.Log(z)-lg)
	}
	// Continued fraction for Q (Lentz).
	b := z + 1 - a
	c := 1 / 1e-300
	d := 1 / b
	h := d
	for i := 1; i < 1000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < 1e-300 {
			d = 1e-300
		}
		c = b + an/c
		if math.Abs(c) < 1e-300 {
			c = 1e-300
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-z+a*math.Log(z)-lg) * h
}

func TestChiSquarePSanity(t *testing.T) {
	// Known quantiles: chi2(1) at 3.841 -> 0.05; chi2(10) at 23.209 -> 0.01.
	for _, tc := range []struct {
		x    float64
		df   int
		want float64
	}{{3.841459, 1, 0.05}, {23.209251, 10, 0.01}, {9.341818, 10, 0.5}} {
		if got := chiSquareP(tc.x, tc.df); math.Abs(got-tc.want) > 1e-4 {
			t.Errorf("chiSquareP(%v, %d) = %v, want %v", tc.x, tc.df, got, tc.want)
		}
	}
}

// TestPityDistribution pulls 1,000,000 times as one player from a banner
// with hard pity 90 and soft pity from 74 (+6 points a draw), and checks
// that "draws until the ssr" follows the distribution the rules define,
// and that the featured guarantee gives the featured share it implies.
func TestPityDistribution(t *testing.T) {
	const pulls = 1_000_000
	c := &testCat{}
	c.add("ssr_featured", 3_000, -1)
	c.add("ssr_standard", 3_000, -1)
	c.add("common", 994_000, -1)
	r := Rules{
		Items: []ItemTier{{Item: "ssr_featured", Tier: "ssr", Featured: true}, {Item: "ssr_standard", Tier: "ssr"}},
		Pity:  []Pity{{Tier: "ssr", Hard: 90, SoftStart: 74, SoftStep: 0.06, FeaturedGuarantee: true}},
	}
	tb := mustTable(t, c, r)
	ps := NewPlayers(tb.Stride())
	rng := newRng(42)

	hist := make([]int, 91)
	runs, since := 0, 0
	featured, ssrs, doubleStandard := 0, 0, 0
	lastStandard := false
	for range pulls {
		row := ps.Edit("p")
		p := tb.Draw(c, row, rng)
		tb.Apply(c, row, p.Slot, 0)
		ps.Commit()
		since++
		if p.Tier != "ssr" {
			continue
		}
		if since > 90 {
			t.Fatalf("an ssr after %d draws: hard pity is 90", since)
		}
		hist[since]++
		runs++
		since = 0
		ssrs++
		if p.Slot == 0 {
			featured++
			lastStandard = false
		} else {
			if lastStandard {
				doubleStandard++
			}
			lastStandard = true
		}
	}

	exact := exactUntil(0.006, 90, 74, 0.06)
	// Chi-square over n = 1..90, merging neighbouring bins until each
	// expects at least 5.
	chi, df := 0.0, -1
	obs, exp := 0.0, 0.0
	for n := 1; n <= 90; n++ {
		obs += float64(hist[n])
		exp += exact[n] * float64(runs)
		if exp >= 5 || n == 90 {
			chi += (obs - exp) * (obs - exp) / exp
			df++
			obs, exp = 0, 0
		}
	}
	pv := chiSquareP(chi, df)
	t.Logf("%d runs, chi-square %.1f on %d df, p = %.4f", runs, chi, df, pv)
	if pv < 0.001 {
		t.Errorf("draws-until-ssr histogram does not match the rules: chi-square %.1f on %d df, p = %.6f", chi, df, pv)
	}

	// The 50/50 with a guarantee: after a standard ssr the next is
	// featured, so no two standard ssrs in a row, and the featured share
	// of ssrs is 1/(2-f) = 2/3 for f = 1/2.
	if doubleStandard != 0 {
		t.Errorf("%d standard ssrs followed a standard ssr", doubleStandard)
	}
	share := float64(featured) / float64(ssrs)
	sigma := math.Sqrt(share * (1 - share) / float64(ssrs))
	if math.Abs(share-2.0/3) > 5*sigma {
		t.Errorf("featured share %.4f of %d ssrs, want 2/3 within %.4f", share, ssrs, 5*sigma)
	}
}

// TestOddsMatchDraws compares Odds with the frequencies of many single
// draws from the same player state, for states where pity is idle, soft,
// hard, owes a featured item, and where two rules are due.
func TestOddsMatchDraws(t *testing.T) {
	const n = 200_000
	c, r := banner()
	r.ItemCaps = []ItemCap{{Item: "sr_a", MaxPerUser: 1}}
	tb := mustTable(t, c, r)
	rng := newRng(7)
	for _, st := range []struct {
		name    string
		ssr, sr uint32
		flags   uint32
		srAHeld uint32
	}{
		{"idle", 3, 2, 0, 0},
		{"soft", 80, 2, 0, 0},
		{"soft and owed", 76, 4, 1, 0},
		{"sr hard", 5, 9, 0, 0},
		{"sr hard, sr_a capped", 5, 9, 0, 1},
		{"both due", 85, 9, 1, 0},
	} {
		t.Run(st.name, func(t *testing.T) {
			row := rowWith(tb, st.ssr, st.sr, st.srAHeld)
			row[colFlags] = st.flags
			o := tb.Odds(c, row, nil)
			counts := make([]int, c.Slots())
			for range n {
				p := tb.Draw(c, row, rng)
				counts[p.Slot]++
			}
			for s, p := range o.Items {
				f := float64(counts[s]) / n
				tol := 5*math.Sqrt(p*(1-p)/n) + 1e-12
				if math.Abs(f-p) > tol {
					t.Errorf("%s: odds %.5f, drawn %.5f (tolerance %.5f)", c.ids[s], p, f, tol)
				}
			}
		})
	}
}
