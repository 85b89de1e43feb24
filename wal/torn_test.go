package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// preallocated options: the segment is reserved up front, so the bytes
// after the data read as zeros, as in production.
func preallocated(c combo, logs *logBuf) Options {
	o := testOptions(c, 1<<20, nil)
	if logs != nil {
		o = testOptions(c, 1<<20, logs)
	}
	o.Preallocate = c.storage == "file"
	return o
}

// A byte flipped inside the last, complete (acknowledged) batch is damage,
// not a torn write: Open must refuse with its location instead of cutting
// the batch (issue 7, defect 3).
func TestFlipInLastBatchIsDamage(t *testing.T) {
	for _, c := range combos {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := preallocated(c, nil)
			g := newGen()
			l := mustOpen(t, dir, o)
			for range 5 {
				mustAppend(t, l, g.batch(4))
			}
			l.Close()
			seg := segmentName(1)
			offs := recordOffsets(t, dir, seg)
			// The last record of the last batch: its second byte (past
			// the binary length; inside the line for text and jsonl).
			last := offs[len(offs)-2]
			for _, at := range []int64{last + 1, (last + offs[len(offs)-1]) / 2} {
				d := copyDir(t, dir)
				flip(t, filepath.Join(d, seg), at)
				_, err := Open(d, o)
				var ce *CorruptError
				if !errors.As(err, &ce) {
					t.Fatalf("flip at %d: Open = %v, want a *CorruptError (an acknowledged batch is damaged)", at, err)
				}
				if ce.Segment != seg || ce.Offset != last || ce.Seq != 20 {
					t.Fatalf("flip at %d: %+v, want segment %s offset %d seq 20", at, ce, seg, last)
				}
			}
		})
	}
}

// A power cut that loses a sector in the middle of the last batch, which
// was never acknowledged (its fsync never returned), is a torn write: Open
// cuts the batch and starts without manual repair (issue 7, defect 4).
func TestZeroedSectorInLastBatchIsTorn(t *testing.T) {
	for _, c := range combos {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			g := newGen()
			l := mustOpen(t, dir, preallocated(c, nil))
			var prev []Record
			for range 3 {
				b := g.batch(4)
				mustAppend(t, l, b)
				prev = append(prev, b...)
			}
			start := l.Segments()[0].Size
			mustAppend(t, l, g.batch(600)) // well over 4 KiB
			end := l.Segments()[0].Size
			l.Close()
			if end-start < 4096 {
				t.Fatalf("last batch is %d bytes, want > 4 KiB", end-start)
			}
			for _, frac := range []int64{1, 2, 3} {
				d := copyDir(t, dir)
				sector := (start + frac*(end-start)/4) / sectorSize * sectorSize
				zeroRange(t, filepath.Join(d, segmentName(1)), sector, sector+sectorSize)
				var logs logBuf
				l, err := Open(d, preallocated(c, &logs))
				if err != nil {
					t.Fatalf("sector at %d zeroed: Open = %v, want the unfinished batch cut", sector, err)
				}
				if l.LastSeq() != prev[len(prev)-1].Seq {
					t.Fatalf("LastSeq %d, want %d", l.LastSeq(), prev[len(prev)-1].Seq)
				}
				if !strings.Contains(logs.String(), "torn tail") || l.TornBytes() == 0 {
					t.Fatalf("no torn-tail warning; log: %s", logs.String())
				}
				checkRecords(t, c.codec, scanAll(t, l, 1), prev)
				l.Close()
			}
		})
	}
}

func zeroRange(t *testing.T, path string, from, to int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, to-from), from); err != nil {
		t.Fatal(err)
	}
}
