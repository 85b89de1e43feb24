package pool

// fanShift sets the fan-out of the sum tree: each node has 1<<fanShift
// children. 16 children of 8 bytes fill two adjacent 64-byte cache lines,
// which the hardware's adjacent-line prefetch usually brings in together,
// and give 5 levels for a million items. Measured select+update (ns/op at
// 6 / 10k / 1M items): fan 8: 15 / 53 / 99; fan 16: 15 / 48 / 83; fan 32:
// 15 / 46 / 81 (within noise of 16, twice the padding). A branch-free scan
// of the node was slower (19 / 65 / 103): its 15 dependent adds cost more
// than the mispredicted exit of the early-out loop.
const (
	fanShift = 4
	fan      = 1 << fanShift
	fanMask  = fan - 1
)

// Selector picks an index with probability proportional to its weight.
//
// It is a fan-ary sum tree stored level by level: levels[0] holds the
// weights themselves (padded with zeros to a multiple of fan), and every
// entry of levels[l+1] is the sum of one group of fan consecutive entries of
// levels[l]. The top level is a single node of fan entries. A node's fan
// child sums are contiguous and cache-line aligned in large levels, so Find
// touches about one cache line per level (log_fan(n) levels) instead of one
// per bit as a binary Fenwick tree does.
//
// The zero value is an empty selector. All methods are O(log n) except
// Append, which is amortised O(log n), and Truncate, O(removed * log n).
type Selector struct {
	levels [][]uint64 // levels[0] = weights; len(levels[top]) == fan
	n      int        // number of weights; levels[0][n:] are zero
	total  uint64     // sum of all weights
}

// NewSelector builds a selector over weights in O(n). Index i has weight
// weights[i]; zero weights are allowed and never found.
func NewSelector(weights []uint64) *Selector {
	s := &Selector{}
	s.build(weights)
	return s
}

// build lays out all levels for weights at once.
func (s *Selector) build(weights []uint64) {
	s.n = len(weights)
	leaves := make([]uint64, roundUp(max(len(weights), 1)))
	copy(leaves, weights)
	s.levels = [][]uint64{leaves}
	for len(s.levels[len(s.levels)-1]) > fan {
		s.levels = append(s.levels, sumLevel(s.levels[len(s.levels)-1]))
	}
	s.total = 0
	for _, v := range s.levels[len(s.levels)-1] {
		s.total += v
	}
}

// sumLevel returns the parent level of child: one entry per group of fan.
func sumLevel(child []uint64) []uint64 {
	parent := make([]uint64, roundUp(len(child)>>fanShift))
	for i, v := range child {
		parent[i>>fanShift] += v
	}
	return parent
}

// roundUp rounds n up to a whole number of nodes (at least one).
func roundUp(n int) int {
	if n <= fan {
		return fan
	}
	return (n + fanMask) &^ fanMask
}

// Len returns the number of weights.
func (s *Selector) Len() int { return s.n }

// Total returns the sum of all weights.
func (s *Selector) Total() uint64 { return s.total }

// Weight returns the weight at index i.
func (s *Selector) Weight(i int) uint64 {
	if uint(i) >= uint(s.n) {
		panic("pool: selector index out of range")
	}
	return s.levels[0][i]
}

// Find returns the smallest index i such that the sum of weights 0..i is
// greater than r, so that a uniform r in [0, Total()) lands on i with
// probability weight(i)/Total(). Zero-weight indices are never returned. It
// returns -1 when r >= Total(). It does not allocate.
func (s *Selector) Find(r uint64) int {
	if r >= s.total {
		return -1
	}
	levels := s.levels
	idx := 0
	for l := len(levels) - 1; l >= 0; l-- {
		base := idx << fanShift
		node := levels[l][base : base+fan : base+fan]
		// Walk the node's children left to right, subtracting each sum
		// until r falls inside one. The invariant r < sum(node) guarantees
		// a hit, so the last child needs no comparison.
		j := 0
		for ; j < fan-1; j++ {
			if r < node[j] {
				break
			}
			r -= node[j]
		}
		idx = base + j
	}
	return idx
}

// Set changes the weight at index i to w.
func (s *Selector) Set(i int, w uint64) {
	if uint(i) >= uint(s.n) {
		panic("pool: selector index out of range")
	}
	s.set(i, w)
}

// set updates leaf i and adds the difference to every ancestor. Unsigned
// wrap-around makes "add delta" correct for decreases too.
func (s *Selector) set(i int, w uint64) {
	leaves := s.levels[0]
	delta := w - leaves[i]
	if delta == 0 {
		return
	}
	leaves[i] = w
	for _, lv := range s.levels[1:] {
		i >>= fanShift
		lv[i] += delta
	}
	s.total += delta
}

// Append adds an index with weight w at the end.
func (s *Selector) Append(w uint64) {
	if s.levels == nil {
		s.build(nil)
	}
	i := s.n
	s.n++
	// Grow each level that has no room for the new leaf's ancestor. Padding
	// entries are zero, and so are the sums of all-zero groups, so growing
	// by whole zero nodes keeps every level consistent.
	idx := i
	for l := 0; l < len(s.levels); l++ {
		if idx >= len(s.levels[l]) {
			s.levels[l] = append(s.levels[l], make([]uint64, fan)...)
		}
		idx >>= fanShift
	}
	// A top level wider than one node gets a new root node above it.
	for top := s.levels[len(s.levels)-1]; len(top) > fan; top = s.levels[len(s.levels)-1] {
		s.levels = append(s.levels, sumLevel(top))
	}
	s.set(i, w)
}

// Truncate drops every index >= n. It panics if n is negative or greater
// than Len(). The tree keeps its height; the dropped leaves become zero
// padding that a later Append reuses.
func (s *Selector) Truncate(n int) {
	if n < 0 || n > s.n {
		panic("pool: selector truncate out of range")
	}
	for i := n; i < s.n; i++ {
		s.set(i, 0)
	}
	s.n = n
}

// Clone returns a deep copy of s.
func (s *Selector) Clone() *Selector {
	c := &Selector{n: s.n, total: s.total, levels: make([][]uint64, len(s.levels))}
	for l, lv := range s.levels {
		c.levels[l] = append([]uint64(nil), lv...)
	}
	return c
}
