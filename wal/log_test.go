package wal

import (
	"errors"
	"github.com/rewardpool/rewardpool/pool"
	"testing"
)

// TestLog runs the same suite over every codec x storage.
func TestLog(t *testing.T) {
	for _, c := range combos {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions(c, 2048, nil)
			l := mustOpen(t, dir, o)
			g := newGen()
			var all []Record
			for i := 0; i < 60; i++ {
				b := g.batch(1 + i%7)
				mustAppend(t, l, b)
				all = append(all, b...)
			}
			// A batch larger than SegmentSize gets a segment of its own.
			big := g.batch(200)
			mustAppend(t, l, big)
			all = append(all, big...)
			tail := g.batch(3)
			mustAppend(t, l, tail)
			all = append(all, tail...)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			l = mustOpen(t, dir, o)
			defer l.Close()
			segs := l.Segments()
			if len(segs) < 4 {
				t.Fatalf("got %d segments, want several rotations", len(segs))
			}
			last := all[len(all)-1]
			if l.LastSeq() != last.Seq || l.FirstSeq() != 1 || l.LastEpoch() != last.Epoch {
				t.Fatalf("LastSeq %d FirstSeq %d LastEpoch %d, want %d 1 %d", l.LastSeq(), l.FirstSeq(), l.LastEpoch(), last.Seq, last.Epoch)
			}
			checkRecords(t, c.codec, scanAll(t, l, 1), all)
			mid := uint64(len(all) / 2)
			checkRecords(t, c.codec, scanAll(t, l, mid), all[mid-1:])
			checkRecords(t, c.codec, scanAll(t, l, last.Seq+1), nil)

			// Rejected batches leave the log usable.
			bad := []struct {
				name string
				recs []Record
			}{
				{"gap", []Record{{Seq: last.Seq + 2, Epoch: 1, Kind: KindEpoch, Commit: true}}},
				{"no commit", []Record{{Seq: last.Seq + 1, Epoch: 1, Kind: KindEpoch}}},
				{"bad kind", []Record{{Seq: last.Seq + 1, Epoch: 1, Kind: 99, Commit: true}}},
				{"epoch 0", []Record{{Seq: last.Seq + 1, Kind: KindEpoch, Commit: true}}},
			}
			for _, tc := range bad {
				if err := l.Append(tc.recs); err == nil || errors.Is(err, ErrPoisoned) {
					t.Fatalf("%s: Append = %v, want a rejection", tc.name, err)
				}
			}
			more := g.batch(5)
			mustAppend(t, l, more)
			all = append(all, more...)
			checkRecords(t, c.codec, scanAll(t, l, 1), all)

			// DeleteBefore never removes the kept segments, and Scan from a
			// deleted seq is a gap.
			n, err := l.DeleteBefore(mid, 1)
			if err != nil || n == 0 {
				t.Fatalf("DeleteBefore = %d, %v", n, err)
			}
			first := l.FirstSeq()
			if first <= 1 || first > mid {
				t.Fatalf("FirstSeq after DeleteBefore(%d) = %d", mid, first)
			}
			if err := l.Scan(1, func(*Record) error { return nil }); !errors.Is(err, ErrGap) {
				t.Fatalf("Scan(1) after delete = %v, want ErrGap", err)
			}
			checkRecords(t, c.codec, scanAll(t, l, first), all[first-1:])
			before := len(l.Segments())
			if n, _ := l.DeleteBefore(all[len(all)-1].Seq+1, 2); n != before-2 || len(l.Segments()) != 2 {
				t.Fatalf("DeleteBefore(keep 2) removed %d of %d", n, before)
			}
			l.Close()

			// The other storage reads the same bytes.
			o2 := o
			o2.Storage = map[string]string{"file": "mmap", "mmap": "file"}[c.storage]
			l2 := mustOpen(t, dir, o2)
			got := scanAll(t, l2, l2.FirstSeq())
			checkRecords(t, c.codec, got, all[l2.FirstSeq()-1:])
			l2.Close()
		})
	}
}

func TestEmptyAndMixedCodecs(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, testOptions(combo{"binary", "file"}, 0, nil))
	if l.LastSeq() != 0 || l.FirstSeq() != 0 {
		t.Fatalf("empty log: LastSeq %d FirstSeq %d", l.LastSeq(), l.FirstSeq())
	}
	checkRecords(t, "binary", scanAll(t, l, 1), nil)
	// An empty log may start at any seq (a replica after a snapshot).
	g := newGen()
	g.seq = 17
	b := g.batch(3)
	mustAppend(t, l, b)
	l.Close()
	if _, err := Open(dir, Options{Codec: "xml"}); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("Open with bad codec = %v", err)
	}
	// Switching codec starts a new segment; both read back.
	l = mustOpen(t, dir, testOptions(combo{"text", "file"}, 0, nil))
	b2 := g.batch(2)
	mustAppend(t, l, b2)
	if len(l.Segments()) != 2 {
		t.Fatalf("segments %v", l.Segments())
	}
	got := scanAll(t, l, 17)
	checkRecords(t, "binary", got[:3], b)
	checkRecords(t, "text", got[3:], b2)
	if err := l.Scan(5, func(*Record) error { return nil }); !errors.Is(err, ErrGap) {
		t.Fatalf("Scan before first = %v", err)
	}
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatal("second Open of a locked log succeeded")
	}
	l.Close()
	if err := l.Append(g.batch(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
}

func TestCanonicalMatchesString(t *testing.T) {
	g := newGen()
	for _, r := range g.batch(40) {
		if got := string(appendCanonical(nil, &r)); got != r.String() {
			t.Fatalf("appendCanonical %q, String %q", got, r.String())
		}
	}
	// The codecs write weights with pool.AppendWeight and read them with
	// pool.ParseWeight: they must agree with FormatWeight and round-trip.
	for _, w := range []uint64{1, 500000, 10_000_000, 2_500_000, 123_456_789} {
		if got := string(pool.AppendWeight(nil, w)); got != pool.FormatWeight(w) {
			t.Fatalf("AppendWeight(%d) = %q, want %q", w, got, pool.FormatWeight(w))
		}
		if back, err := pool.ParseWeight(pool.FormatWeight(w)); err != nil || back != w {
			t.Fatalf("ParseWeight(%q) = %d, %v", pool.FormatWeight(w), back, err)
		}
	}
}
