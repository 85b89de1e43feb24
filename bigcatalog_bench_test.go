package rewardpool

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// BenchmarkOpenBigCatalog opens a fresh pool seeded with 1,000,000 items
// (the engine's share of a server's start-up with a huge catalog) and
// closes it.
//
//	go test -run '^$' -bench OpenBigCatalog -benchtime 3x .
func BenchmarkOpenBigCatalog(b *testing.B) {
	items := make([]Item, 1_000_000)
	for i := range items {
		items[i] = Item{ID: fmt.Sprintf("item%07d", i+1), Quantity: 1_000_000_000, Weight: uint64(i*37%100+1) * WeightUnit}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ReportAllocs()
	for b.Loop() {
		e, err := Open(b.TempDir(), Options{Items: items, Durability: DurabilityNone, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
