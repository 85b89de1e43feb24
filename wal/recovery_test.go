package wal

import (
	"github.com/rewardpool/rewardpool/internal/fsys"

	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// buildLog writes a few batches across rotations and returns the records,
// the name of the last segment and the offset where its last batch starts.
func buildLog(t *testing.T, dir string, o Options, g *gen, batches int) (all []Record, lastSeg string, lastBatchOff, end int64) {
	l := mustOpen(t, dir, o)
	for i := 0; i < batches; i++ {
		before := l.Segments()
		b := g.batch(3)
		mustAppend(t, l, b)
		if after := l.Segments(); len(after) != len(before) || len(before) == 0 {
			lastBatchOff = HeaderSize
		} else {
			lastBatchOff = before[len(before)-1].Size
		}
		all = append(all, b...)
	}
	segs := l.Segments()
	lastSeg, end = segs[len(segs)-1].Name, segs[len(segs)-1].Size
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return all, lastSeg, lastBatchOff, end
}

// tear makes dir/name look like a crash landed only [0, cut) of the last
// write: file storage loses the rest (a write's prefix), mmap keeps zeros
// (callers cut mmap at a sector boundary or the batch start: a power cut
// loses whole sectors of the dirty pages).
func tear(t *testing.T, path string, cut, end int64, storage string) {
	t.Helper()
	if storage == "file" {
		if err := os.Truncate(path, cut); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, end-cut), cut); err != nil {
		t.Fatal(err)
	}
}

func TestTornTail(t *testing.T) {
	for _, c := range combos {
		t.Run(c.String(), func(t *testing.T) {
			src := t.TempDir()
			g := newGen()
			all, seg, batchOff, end := buildLog(t, src, testOptions(c, 4096, nil), g, 8)
			prev := all[:len(all)-3]
			step := int64(1)
			if c.codec != "binary" {
				step = 5
			}
			for cut := batchOff; cut < end; cut += step {
				if c.storage == "mmap" && cut%sectorSize != 0 && cut != batchOff {
					continue // a power cut loses whole sectors
				}
				dir := copyDir(t, src)
				tear(t, filepath.Join(dir, seg), cut, end, c.storage)
				var logs logBuf
				o := testOptions(c, 4096, &logs)
				l := mustOpen(t, dir, o)
				if l.LastSeq() != prev[len(prev)-1].Seq {
					t.Fatalf("cut at %d: LastSeq %d, want %d", cut, l.LastSeq(), prev[len(prev)-1].Seq)
				}
				if cut > batchOff && !strings.Contains(logs.String(), "torn tail") {
					t.Fatalf("cut at %d: no warning, log: %s", cut, logs.String())
				}
				// Appending continues right after the previous commit.
				g2 := *g
				g2.seq = prev[len(prev)-1].Seq + 1
				next := g2.batch(2)
				mustAppend(t, l, next)
				l.Close()
				l = mustOpen(t, dir, o)
				checkRecords(t, c.codec, scanAll(t, l, 1), append(append([]Record(nil), prev...), next...))
				l.Close()
			}
		})
	}
}

// TestCommitRule: a batch of 3 whose first 2 records landed whole is
// dropped entirely.
func TestCommitRule(t *testing.T) {
	for _, c := range combos {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			all, seg, _, end := buildLog(t, dir, testOptions(c, 1<<20, nil), newGen(), 4)
			offs := recordOffsets(t, dir, seg)
			third := offs[len(offs)-2]                           // start of the last record
			tear(t, filepath.Join(dir, seg), third, end, "file") // the write's prefix landed
			l := mustOpen(t, dir, testOptions(c, 1<<20, nil))
			defer l.Close()
			checkRecords(t, c.codec, scanAll(t, l, 1), all[:len(all)-3])
		})
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCorruption(t *testing.T) {
	for _, c := range combos {
		for _, where := range []string{"last segment", "earlier segment"} {
			t.Run(c.String()+"/"+where, func(t *testing.T) {
				dir := t.TempDir()
				o := testOptions(c, 768, nil)
				all, lastSeg, _, _ := buildLog(t, dir, o, newGen(), 40)
				names, _ := listSegments(fsys.OS, dir)
				if len(names) < 3 {
					t.Fatalf("want >= 3 segments, got %v", names)
				}
				seg := lastSeg
				if where == "earlier segment" {
					seg = names[0]
				}
				offs := recordOffsets(t, dir, seg)
				i := min(4, len(offs)-3) // valid records follow it
				off := offs[i]
				flip(t, filepath.Join(dir, seg), (off+offs[i+1])/2)
				first, _ := parseSegmentName(seg)

				l, err := Open(dir, o)
				if err == nil {
					err = l.Scan(1, func(*Record) error { return nil })
					l.Close()
				}
				var ce *CorruptError
				if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("got %v, want *CorruptError", err)
				}
				if ce.Segment != seg || ce.Offset != off || ce.Seq != first+uint64(i) {
					t.Fatalf("CorruptError %+v, want segment %s offset %d seq %d", ce, seg, off, first+uint64(i))
				}

				rep, err := Repair(dir, o)
				if err != nil || rep.Segment != seg || rep.Offset != off {
					t.Fatalf("Repair = %+v, %v", rep, err)
				}
				if _, err := os.Stat(filepath.Join(dir, seg+".broken")); err != nil {
					t.Fatalf("no .broken copy: %v", err)
				}
				// Records kept: up to the last commit before the damage.
				keep := first + uint64(i) - 1
				for all[keep-1].Commit == false {
					keep--
				}
				if rep.Kept != int(keep) {
					t.Fatalf("Repair kept %d, want %d", rep.Kept, keep)
				}
				l = mustOpen(t, dir, o)
				checkRecords(t, c.codec, scanAll(t, l, 1), all[:keep])
				l.Close()
				if rep2, err := Repair(dir, o); err != nil || rep2.Segment != "" {
					t.Fatalf("Repair of a healthy log = %+v, %v", rep2, err)
				}
			})
		}
	}
}

func TestBadHeader(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(combo{"binary", "file"}, 2048, nil)
	buildLog(t, dir, o, newGen(), 40)
	names, _ := listSegments(fsys.OS, dir)
	flip(t, filepath.Join(dir, names[len(names)-1]), 20)
	_, err := Open(dir, o)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Offset != 0 || ce.Segment != names[len(names)-1] {
		t.Fatalf("Open with bad header = %v", err)
	}
	if rep, err := Repair(dir, o); err != nil || rep.Segment != names[len(names)-1] {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	mustOpen(t, dir, o).Close()
}

// TestUnfinishedBatchAnyOrder: a process killed while copying a batch into
// an mmap'ed segment leaves its bytes in whatever order memmove stored
// them. The first byte is written last, so any such state starts with a
// zero: recovery must cut the batch as a torn tail, not report damage.
func TestUnfinishedBatchAnyOrder(t *testing.T) {
	for _, c := range combos {
		t.Run(c.String(), func(t *testing.T) {
			src := t.TempDir()
			g := newGen()
			all, seg, batchOff, end := buildLog(t, src, testOptions(c, 4096, nil), g, 8)
			prev := all[:len(all)-3]
			for pattern := range 6 {
				dir := copyDir(t, src)
				path := filepath.Join(dir, seg)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b[batchOff] = 0 // the first byte is always the last one stored
				// Some other part of the batch is missing too: a hole in
				// the middle, the head, or the tail.
				n := end - batchOff
				lo := batchOff + 1 + int64(pattern)*n/7
				hi := min(lo+n/5, end)
				clear(b[lo:hi])
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				l := mustOpen(t, dir, testOptions(c, 4096, nil))
				if l.LastSeq() != prev[len(prev)-1].Seq {
					t.Fatalf("pattern %d: LastSeq %d, want %d", pattern, l.LastSeq(), prev[len(prev)-1].Seq)
				}
				g2 := *g
				g2.seq = prev[len(prev)-1].Seq + 1
				next := g2.batch(2)
				mustAppend(t, l, next)
				l.Close()
				l = mustOpen(t, dir, testOptions(c, 4096, nil))
				checkRecords(t, c.codec, scanAll(t, l, 1), append(append([]Record(nil), prev...), next...))
				l.Close()
			}
		})
	}
}
