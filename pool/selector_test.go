package pool

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

// refSelector is the naive reference: a plain slice of weights.
type refSelector []uint64

// prefix returns the running sums through each index.
func (r refSelector) prefix() []uint64 {
	p := make([]uint64, len(r))
	var sum uint64
	for i, w := range r {
		sum += w
		p[i] = sum
	}
	return p
}

// find is the definition of Find: the smallest i with prefix[i] > x.
func findRef(prefix []uint64, x uint64) int {
	i := sort.Search(len(prefix), func(i int) bool { return prefix[i] > x })
	if i == len(prefix) {
		return -1
	}
	return i
}

// checkSelector compares s with ref: length, total, every weight, the
// internal sums, and Find at the boundaries of every (or, for large n, a
// sample of) nonzero weight plus random points.
func checkSelector(t *testing.T, s *Selector, ref refSelector, rng *rand.Rand) {
	t.Helper()
	if s.Len() != len(ref) {
		t.Fatalf("Len() = %d, want %d", s.Len(), len(ref))
	}
	prefix := ref.prefix()
	var total uint64
	if len(prefix) > 0 {
		total = prefix[len(prefix)-1]
	}
	if s.Total() != total {
		t.Fatalf("Total() = %d, want %d", s.Total(), total)
	}
	for i, w := range ref {
		if s.Weight(i) != w {
			t.Fatalf("Weight(%d) = %d, want %d", i, s.Weight(i), w)
		}
	}
	checkTree(t, s)

	check := func(x uint64) {
		t.Helper()
		if got, want := s.Find(x), findRef(prefix, x); got != want {
			t.Fatalf("n=%d total=%d: Find(%d) = %d, want %d", len(ref), total, x, got, want)
		}
	}
	check(0)
	check(total) // out of range: -1
	check(total + 1)
	check(^uint64(0))
	if total > 0 {
		check(total - 1)
	}
	// Boundaries: first and last r of each index's interval, and the first r
	// of the next. Large selectors get a sample to keep the test fast.
	step := 1
	if len(ref) > 5000 {
		step = len(ref) / 2000
	}
	for i := rng.IntN(step); i < len(ref); i += step {
		lo := prefix[i] - ref[i]
		check(lo)
		if prefix[i] > 0 {
			check(prefix[i] - 1)
		}
		check(prefix[i])
	}
	for k := 0; k < 500 && total > 0; k++ {
		check(rng.Uint64N(total))
	}
}

// checkTree verifies that every internal entry is the sum of its children
// and that padding past Len() is zero.
func checkTree(t *testing.T, s *Selector) {
	t.Helper()
	if s.levels == nil {
		return
	}
	for i := s.n; i < len(s.levels[0]); i++ {
		if s.levels[0][i] != 0 {
			t.Fatalf("padding leaf %d = %d, want 0", i, s.levels[0][i])
		}
	}
	for l := 1; l < len(s.levels); l++ {
		child, parent := s.levels[l-1], s.levels[l]
		if len(parent)*fan < len(child) {
			t.Fatalf("level %d has %d entries, too few for %d children", l, len(parent), len(child))
		}
		sums := make([]uint64, len(parent))
		for i, v := range child {
			sums[i>>fanShift] += v
		}
		for i := range parent {
			if parent[i] != sums[i] {
				t.Fatalf("level %d entry %d = %d, children sum to %d", l, i, parent[i], sums[i])
			}
		}
	}
	if top := s.levels[len(s.levels)-1]; len(top) != fan {
		t.Fatalf("top level has %d entries, want one node of %d", len(top), fan)
	}
}

// randWeight returns a weight that is zero a fifth of the time (zero
// weights must be skipped) and otherwise spans tiny to maximal values.
func randWeight(rng *rand.Rand) uint64 {
	switch rng.IntN(10) {
	case 0, 1:
		return 0
	case 2:
		return 1
	case 3:
		return MaxWeight
	default:
		return 1 + rng.Uint64N(100*WeightUnit)
	}
}

func TestSelectorMatchesReference(t *testing.T) {
	sizes := []int{1, 2, 6, 7, 8, 9, 15, 16, 17, 255, 256, 257, 4097, 100_000}
	for _, n := range sizes {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			rng := rand.New(rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}))
			ref := make(refSelector, n)
			for i := range ref {
				ref[i] = randWeight(rng)
			}
			s := NewSelector(ref)
			ref = append(refSelector(nil), ref...) // s must not alias the input
			checkSelector(t, s, ref, rng)

			rounds := 40
			if n > 5000 {
				rounds = 6
			}
			for round := 0; round < rounds; round++ {
				// A burst of random operations, then a full comparison.
				for op := 0; op < 20; op++ {
					switch k := rng.IntN(10); {
					case k < 6 && len(ref) > 0: // Set, the common case
						i := rng.IntN(len(ref))
						w := randWeight(rng)
						s.Set(i, w)
						ref[i] = w
					case k < 8: // Append, sometimes across a node boundary
						w := randWeight(rng)
						s.Append(w)
						ref = append(ref, w)
					default: // Truncate by a few, never below half of n
						m := len(ref) - rng.IntN(fan+2)
						m = max(m, n/2, 0)
						s.Truncate(m)
						ref = ref[:m]
					}
					if got, want := s.Find(0), findRef(ref.prefix(), 0); n < 5000 && got != want {
						t.Fatalf("after op: Find(0) = %d, want %d", got, want)
					}
				}
				checkSelector(t, s, ref, rng)
			}
		})
	}
}

func TestSelectorGrowFromEmpty(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{9}))
	for _, s := range []*Selector{{}, NewSelector(nil)} {
		var ref refSelector
		checkSelector(t, s, ref, rng)
		if s.Find(0) != -1 {
			t.Fatal("Find on empty selector should be -1")
		}
		// Cross several height changes: fan, fan^2 and fan^3 leaves.
		for i := 0; i < fan*fan*fan+3; i++ {
			w := uint64(i%3) * 7 // includes zeros
			s.Append(w)
			ref = append(ref, w)
			if i < 40 || i%997 == 0 || i == fan*fan || i == fan*fan*fan {
				checkSelector(t, s, ref, rng)
			}
		}
		checkSelector(t, s, ref, rng)
		s.Truncate(0)
		checkSelector(t, s, nil, rng)
		s.Append(5)
		checkSelector(t, s, refSelector{5}, rng)
	}
}

func TestSelectorAllZero(t *testing.T) {
	s := NewSelector([]uint64{0, 0, 0})
	if s.Total() != 0 || s.Find(0) != -1 {
		t.Fatalf("all-zero selector: Total=%d Find(0)=%d", s.Total(), s.Find(0))
	}
	s.Set(1, 3)
	for r := uint64(0); r < 3; r++ {
		if got := s.Find(r); got != 1 {
			t.Fatalf("Find(%d) = %d, want 1", r, got)
		}
	}
}

func TestSelectorClone(t *testing.T) {
	s := NewSelector([]uint64{1, 2, 3})
	c := s.Clone()
	s.Set(0, 10)
	s.Append(4)
	if c.Len() != 3 || c.Total() != 6 || c.Weight(0) != 1 {
		t.Fatalf("clone changed with original: len=%d total=%d", c.Len(), c.Total())
	}
}

func TestSelectorNoAllocs(t *testing.T) {
	s := NewSelector(benchWeights(10_000))
	var r uint64
	allocs := testing.AllocsPerRun(1000, func() {
		i := s.Find(r % s.Total())
		s.Set(i, s.Weight(i)+1)
		r += 7_777_777
	})
	if allocs != 0 {
		t.Fatalf("Find+Set allocates %.1f times per call", allocs)
	}
}

func TestSelectorPanics(t *testing.T) {
	s := NewSelector([]uint64{1, 2})
	for name, f := range map[string]func(){
		"Set(-1)":      func() { s.Set(-1, 1) },
		"Set(2)":       func() { s.Set(2, 1) },
		"Weight(2)":    func() { s.Weight(2) },
		"Truncate(3)":  func() { s.Truncate(3) },
		"Truncate(-1)": func() { s.Truncate(-1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}
