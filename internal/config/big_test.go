package config

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
)

// bigCatalog returns a config with one pool of n items in flow style, the
// shape of a generated catalog (about 60 bytes per item).
func bigCatalog(n int) []byte {
	var b bytes.Buffer
	b.WriteString("listen: 127.0.0.1:0\npools:\n  - name: big\n    items:\n")
	for i := range n {
		fmt.Fprintf(&b, "      - {id: item%07d, quantity: 1000000000, weight: %d}\n", i+1, i*37%100+1)
	}
	return b.Bytes()
}

// BenchmarkParseBigCatalog parses a 1,000,000-item config (about 60 MB)
// and reports the heap the result keeps (retained-B) besides time and
// allocations.
//
//	go test -run '^$' -bench ParseBigCatalog -benchtime 3x ./internal/config/
func BenchmarkParseBigCatalog(b *testing.B) {
	data := bigCatalog(1_000_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var kept uint64
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		c, err := Parse(data, "big.yaml")
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		kept = after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
		runtime.KeepAlive(c)
	}
	b.ReportMetric(float64(kept), "retained-B")
}
