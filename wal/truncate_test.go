package wal

import (
	"testing"
)

func TestTruncateAfter(t *testing.T) {
	for _, c := range combos {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions(c, 2048, nil) // several segments
			l := mustOpen(t, dir, o)
			g := newGen()
			var all []Record
			for range 12 {
				b := g.batch(5)
				mustAppend(t, l, b)
				all = append(all, b...)
			}
			l.Close()
			// Cut after a batch in the middle, then after the last one.
			keep := all[5*7-1].Seq
			rep, err := TruncateAfter(dir, keep, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Broken) == 0 {
				t.Fatalf("nothing kept aside: %+v", rep)
			}
			l = mustOpen(t, dir, o)
			checkRecords(t, c.codec, scanAll(t, l, 1), all[:5*7])
			// Appending continues after the cut.
			g2 := *g
			g2.seq = keep + 1
			next := g2.batch(3)
			mustAppend(t, l, next)
			l.Close()
			l = mustOpen(t, dir, o)
			checkRecords(t, c.codec, scanAll(t, l, 1), append(append([]Record(nil), all[:5*7]...), next...))
			l.Close()
			// Not at a batch end: refused, nothing changed.
			if _, err := TruncateAfter(dir, keep-2, o); err == nil {
				t.Fatal("cut inside a batch accepted")
			}
			if _, err := TruncateAfter(dir, next[2].Seq+10, o); err != nil {
				t.Fatalf("cut beyond the end: %v", err)
			}
		})
	}
}
