package pool

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

var benchSizes = []int{6, 10_000, 1_000_000}

// benchWeights returns n distinct-ish weights between 1 and 1000 whole units.
func benchWeights(n int) []uint64 {
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	w := make([]uint64, n)
	for i := range w {
		w[i] = (1 + rng.Uint64N(1000)) * WeightUnit
	}
	return w
}

func sizeName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("items=%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("items=%dk", n/1000)
	}
	return fmt.Sprintf("items=%d", n)
}

// BenchmarkSelectUpdate measures one draw as the engine does it: a ChaCha8
// random number, Find, then a weight update on the found index (alternating
// between the same and a changed weight so the path is really rewritten).
func BenchmarkSelectUpdate(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			s := NewSelector(benchWeights(n))
			rng := rand.New(rand.NewChaCha8([32]byte{2}))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := s.Find(rng.Uint64N(s.Total()))
				w := s.Weight(j)
				if i&1 == 0 {
					w ^= 1 // small change, keeps the weight positive
				}
				s.Set(j, w)
			}
		})
	}
}

// BenchmarkCatalogPickTake measures the engine's draw path on the catalog:
// a ChaCha8 random number, Pick, Take. Items have a huge finite stock, so
// Take really decrements a quantity (one more cache line than the selector
// alone) yet the pool never drains during the run.
func BenchmarkCatalogPickTake(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			ws := benchWeights(n)
			items := make([]Item, n)
			for i := range items {
				items[i] = Item{ID: fmt.Sprintf("item-%d", i), Quantity: 1 << 62, Weight: ws[i]}
			}
			c, err := New(items)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewChaCha8([32]byte{3}))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				slot, ok := c.Pick(rng.Uint64N(c.Total()))
				if !ok {
					b.Fatal("pick failed")
				}
				c.Take(slot)
			}
		})
	}
}
