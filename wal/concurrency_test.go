package wal

import (
	"testing"
)

// TestScanDuringAppend: a reader on another goroutine (the streamer) sees a
// consistent prefix while the writer appends and rotates.
func TestScanDuringAppend(t *testing.T) {
	for _, c := range []combo{{"binary", "file"}, {"text", "mmap"}} {
		t.Run(c.String(), func(t *testing.T) {
			l := mustOpen(t, t.TempDir(), testOptions(c, 1024, nil))
			defer l.Close()
			g := newGen()
			mustAppend(t, l, g.batch(3))
			done := make(chan error)
			go func() {
				for i := 0; i < 20; i++ {
					next := uint64(1)
					err := l.Scan(1, func(r *Record) error {
						if r.Seq != next {
							t.Errorf("scan got seq %d, want %d", r.Seq, next)
						}
						next++
						return nil
					})
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for i := 0; i < 100; i++ {
				mustAppend(t, l, g.batch(3))
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	l := mustOpen(t, t.TempDir(), testOptions(combo{"binary", "file"}, 0, nil))
	defer l.Close()
	recs := make([]Record, 16)
	seq := uint64(1)
	drawBatch(recs, seq, seq)
	mustAppend(t, l, recs)
	seq += 16
	allocs := testing.AllocsPerRun(100, func() {
		drawBatch(recs, seq, seq)
		if err := l.Append(recs); err != nil {
			t.Fatal(err)
		}
		seq += 16
	})
	if allocs != 0 && !raceEnabled {
		t.Fatalf("Append allocates %.1f times per batch", allocs)
	}
}
