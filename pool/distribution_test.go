package pool

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// chiSquareSurvival returns P(X >= x) for X chi-square distributed with df
// degrees of freedom: the p-value of a goodness-of-fit statistic x. It is
// the regularized upper incomplete gamma function Q(df/2, x/2), computed by
// its power series when x/2 < df/2+1 and by its continued fraction
// (modified Lentz) otherwise, each of which converges quickly in its range
// (Numerical Recipes, 3rd ed., 6.2).
func chiSquareSurvival(df int, x float64) float64 {
	a, z := float64(df)/2, x/2
	if z <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	prefix := math.Exp(-z + a*math.Log(z) - lg) // z^a e^-z / Gamma(a)
	const eps = 1e-15
	if z < a+1 {
		// P(a,z) = prefix * sum_{n>=0} z^n / (a (a+1) ... (a+n))
		term := 1 / a
		sum := term
		for n := 1; n < 10_000; n++ {
			term *= z / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*eps {
				break
			}
		}
		return 1 - prefix*sum
	}
	// Q(a,z) = prefix * 1/(z+1-a- 1(1-a)/(z+3-a- 2(2-a)/(z+5-a- ...)))
	const tiny = 1e-300
	b := z + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10_000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return prefix * h
}

func TestChiSquareSurvival(t *testing.T) {
	// Reference values from standard chi-square tables (scipy.stats.chi2.sf).
	tests := []struct {
		df   int
		x, p float64
	}{
		{1, 3.841458820694124, 0.05},
		{2, 5.991464547107979, 0.05},
		{6, 22.457744484825323, 0.001},
		{7, 24.321886347856854, 0.001},
		{10, 10, 0.44049328506521257},
		{10, 2, 0.9963401531944},
		{30, 50.89218131151707, 0.01},
		{4, 0, 1},
	}
	for _, tt := range tests {
		if got := chiSquareSurvival(tt.df, tt.x); math.Abs(got-tt.p) > 1e-9*math.Max(1, tt.p*1e3) {
			t.Errorf("chiSquareSurvival(%d, %v) = %.12g, want %.12g", tt.df, tt.x, got, tt.p)
		}
	}
}

// chiSquare returns the goodness-of-fit statistic of counts against the
// probabilities weights[i]/sum(weights) for n draws.
func chiSquare(counts []int, weights []uint64) float64 {
	var total uint64
	n := 0
	for i := range weights {
		total += weights[i]
		n += counts[i]
	}
	var x float64
	for i, c := range counts {
		expected := float64(n) * float64(weights[i]) / float64(total)
		d := float64(c) - expected
		x += d * d / expected
	}
	return x
}

// TestPickDistribution draws 2,000,000 times from unlimited items with
// distinct weights, one of them fractional, and checks the counts against
// the weights with Pearson's chi-square test at significance 0.001. The
// seed is fixed, so the outcome is deterministic; with a correct selector a
// random seed would fail only one time in a thousand.
func TestPickDistribution(t *testing.T) {
	weights := []string{"0.5", "1", "2", "3", "5.25", "8", "13", "21.000001"}
	items := make([]Item, len(weights))
	units := make([]uint64, len(weights))
	for i, s := range weights {
		u, err := ParseWeight(s)
		if err != nil {
			t.Fatal(err)
		}
		units[i] = u
		items[i] = Item{ID: fmt.Sprintf("w%s", s), Quantity: Unlimited, Weight: u}
	}
	c := mustNew(t, items...)

	const draws = 2_000_000
	rng := rand.New(rand.NewChaCha8([32]byte{'r', 'e', 'w', 'a', 'r', 'd'}))
	counts := make([]int, len(items))
	for i := 0; i < draws; i++ {
		slot, ok := c.Pick(rng.Uint64N(c.Total()))
		if !ok {
			t.Fatal("Pick failed on an unlimited pool")
		}
		c.Take(slot)
		counts[slot]++
	}
	x := chiSquare(counts, units)
	df := len(items) - 1
	p := chiSquareSurvival(df, x)
	t.Logf("counts %v: chi-square %.3f, df %d, p = %.4f", counts, x, df, p)
	if p < 0.001 {
		t.Fatalf("draws do not follow the weights: chi-square %.3f with %d degrees of freedom, p = %.3g < 0.001", x, df, p)
	}

	// The test has power: the same counts against slightly wrong weights
	// (0.5 taken as 0.55) must be rejected.
	wrong := append([]uint64(nil), units...)
	wrong[0] = 550_000
	if p := chiSquareSurvival(df, chiSquare(counts, wrong)); p >= 0.001 {
		t.Fatalf("chi-square test cannot tell 0.5 from 0.55: p = %.3g", p)
	}
}

// TestDrainLimitedItems draws until the pool is empty: every unit of every
// limited item is given out exactly once, an item without stock never is,
// and an empty pool refuses to pick.
func TestDrainLimitedItems(t *testing.T) {
	items := []Item{
		{"one", 1, w(1000)}, // heavy but single: must be taken exactly once
		{"ten", 10, 500_000},
		{"thousand", 1000, w(3)},
		{"none", 0, w(50)},
		{"removed", 5, w(50)},
	}
	c := mustNew(t, items...)
	if err := c.Remove(4); err != nil {
		t.Fatal(err)
	}
	start := c.AppendSlots(nil)

	rng := rand.New(rand.NewChaCha8([32]byte{'d', 'r', 'a', 'i', 'n'}))
	counts := make([]int64, len(items))
	var taken []int32
	for c.Total() > 0 {
		slot, ok := c.Pick(rng.Uint64N(c.Total()))
		if !ok || !c.Available(slot) {
			t.Fatalf("Pick = %d, %v: not an available slot", slot, ok)
		}
		c.Take(slot)
		counts[slot]++
		taken = append(taken, slot)
		if len(taken) > 1011 {
			t.Fatal("more draws than units")
		}
	}
	if len(taken) != 1+10+1000 {
		t.Fatalf("%d successful draws, want %d", len(taken), 1+10+1000)
	}
	for i, want := range []int64{1, 10, 1000, 0, 0} {
		if counts[i] != want {
			t.Errorf("item %q drawn %d times, want %d", items[i].ID, counts[i], want)
		}
		if it, _ := c.Item(int32(i)); i < 4 && it.Quantity != 0 {
			t.Errorf("item %q has %d left", it.ID, it.Quantity)
		}
	}
	if _, ok := c.Pick(0); ok || c.Total() != 0 {
		t.Fatalf("empty pool: Total=%d, Pick ok=%v", c.Total(), ok)
	}
	checkCatalog(t, c)

	// Untake is the exact inverse: undoing every draw restores the start.
	for i := len(taken) - 1; i >= 0; i-- {
		c.Untake(taken[i])
	}
	checkCatalog(t, c)
	if got := c.AppendSlots(nil); fmt.Sprint(got) != fmt.Sprint(start) {
		t.Fatalf("after undoing all draws: %v, want %v", got, start)
	}
}
