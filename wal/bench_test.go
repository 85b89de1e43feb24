package wal

import (
	"testing"
)

// drawBatch is a batch of draws with 1,000,000-item catalog slots.
func drawBatch(recs []Record, seq, req uint64) {
	for i := range recs {
		slot := int32(65536 + (seq*7919)%900_000)
		recs[i] = Record{Seq: seq, Epoch: 1, Kind: KindDraw, RequestID: req, Item: slot, ItemID: "item-123456"}
		seq++
		req++
	}
	recs[len(recs)-1].Commit = true
}

// BenchmarkAppend: one op is one 64-record batch appended (no sync).
func BenchmarkAppend(b *testing.B) {
	for _, c := range []string{"binary", "text", "jsonl"} {
		b.Run(c, func(b *testing.B) {
			l := mustOpen(b, b.TempDir(), testOptions(combo{c, "file"}, 0, nil))
			defer l.Close()
			recs := make([]Record, 64)
			seq, req := uint64(1), uint64(1)
			drawBatch(recs, seq, req)
			mustAppend(b, l, recs) // create the segment outside the timing
			seq += 64
			req += 64
			start := l.Segments()[0].Size
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				drawBatch(recs, seq, req)
				if err := l.Append(recs); err != nil {
					b.Fatal(err)
				}
				seq += 64
				req += 64
			}
			b.StopTimer()
			var bytes int64
			for _, s := range l.Segments() {
				bytes += s.Size - HeaderSize
			}
			bytes -= start - HeaderSize
			n := float64(b.N) * 64
			b.ReportMetric(float64(bytes)/n, "bytes/record")
			b.ReportMetric(n/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkScan replays 1,000,000 binary draw records per op.
func BenchmarkScan(b *testing.B) {
	dir := b.TempDir()
	l := mustOpen(b, dir, testOptions(combo{"binary", "file"}, 0, nil))
	recs := make([]Record, 1000)
	for seq := uint64(1); seq <= 1_000_000; seq += 1000 {
		drawBatch(recs, seq, seq+100)
		if err := l.Append(recs); err != nil {
			b.Fatal(err)
		}
	}
	l.Sync()
	b.ResetTimer()
	count := 0
	for i := 0; i < b.N; i++ {
		if err := l.Scan(1, func(*Record) error { count++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(count)/b.Elapsed().Seconds(), "records/s")
	l.Close()
}

// BenchmarkSync: one op is one small batch (8 draws) appended and synced.
func BenchmarkSync(b *testing.B) {
	cases := []struct {
		name string
		o    Options
	}{
		{"file", Options{Storage: "file"}},
		{"file-fallocate", Options{Storage: "file", Preallocate: true}},
		{"file-zerofill", Options{Storage: "file", zeroFill: true}},
		{"mmap", Options{Storage: "mmap"}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			o := tc.o
			o.SegmentSize = 64 << 20
			o.Logger = testOptions(combo{}, 0, nil).Logger
			l := mustOpen(b, b.TempDir(), o)
			defer l.Close()
			recs := make([]Record, 8)
			seq := uint64(1)
			drawBatch(recs, seq, seq)
			mustAppend(b, l, recs)
			seq += 8
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				drawBatch(recs, seq, seq)
				if err := l.Append(recs); err != nil {
					b.Fatal(err)
				}
				if err := l.Sync(); err != nil {
					b.Fatal(err)
				}
				seq += 8
			}
		})
	}
}
