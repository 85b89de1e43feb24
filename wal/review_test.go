package wal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func flipMask(t *testing.T, path string, off int64, mask byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= mask
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Attack on the torn-versus-damaged rule: a flipped bit in the length of a
// record of the last, acknowledged batch makes the record claim bytes past
// the end of the data (into the zeros of a preallocated segment). Nothing
// was torn: every byte of the batch is there, so it is damage, and Open
// must refuse with its location rather than cut acknowledged records.
func TestFlippedLengthInLastBatchIsDamage(t *testing.T) {
	for _, c := range combos {
		if c.codec != "binary" {
			continue
		}
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
			last := offs[len(offs)-2]  // the last record of the last batch
			first := offs[len(offs)-5] // the first record of the last batch
			for _, at := range []int64{last, first} {
				for _, mask := range []byte{0x40, 0x80} {
					d := copyDir(t, dir)
					flipMask(t, filepath.Join(d, seg), at, mask)
					l, err := Open(d, o)
					var ce *CorruptError
					if !errors.As(err, &ce) {
						got := uint64(0)
						if err == nil {
							got = l.LastSeq()
							l.Close()
						}
						t.Fatalf("length byte at %d ^%#x: Open = %v (last seq %d), want a *CorruptError: an acknowledged batch is damaged, not torn", at, mask, err, got)
					}
				}
			}
		})
	}
}

// The same for the line codecs: the newline that ends the last record of
// the last acknowledged batch is flipped. The record then runs into the
// segment's zeros, but every byte of it was written: damage, not torn.
func TestFlippedNewlineOfLastRecordIsDamage(t *testing.T) {
	for _, c := range combos {
		if c.codec == "binary" {
			continue
		}
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
			end := offs[len(offs)-1] // just after the last newline
			d := copyDir(t, dir)
			flipMask(t, filepath.Join(d, seg), end-1, 0x01)
			l, err := Open(d, o)
			var ce *CorruptError
			if !errors.As(err, &ce) {
				got := uint64(0)
				if err == nil {
					got = l.LastSeq()
					l.Close()
				}
				t.Fatalf("newline at %d flipped: Open = %v (last seq %d), want a *CorruptError", end-1, err, got)
			}
		})
	}
}
