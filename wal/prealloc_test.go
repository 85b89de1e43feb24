package wal

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// blocksOf is the disk a file holds (what `du` counts) and its size.
func blocksOf(t *testing.T, path string) (disk, size int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512, st.Size
}

// A log that holds little data must hold little disk, even with
// Preallocate: reserving a whole segment up front made 500 idle pools hold
// 32 GB. The reservation grows as the segment fills, always ahead of the
// data, so an append inside it never allocates blocks.
func TestPreallocateFollowsData(t *testing.T) {
	dir := t.TempDir()
	const segSize = 64 << 20
	o := testOptions(combo{"binary", "file"}, segSize, nil)
	o.Preallocate = true
	l, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if l != nil {
			l.Close()
		}
	}()
	g := newGen()
	if err := l.Append(g.batch(4)); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, l.Segments()[0].Name)
	disk, size := blocksOf(t, path)
	t.Logf("after one small batch: %d bytes on disk, size %d", disk, size)
	if disk > maxReserveStep {
		t.Fatalf("a segment with one small batch holds %d bytes of disk, want at most %d (SegmentSize is %d)",
			disk, maxReserveStep, segSize)
	}

	// Fill a few MiB: the size (the reserved region) stays ahead of the
	// data, and a batch written inside the reservation adds no block.
	for i := 0; l.end < 6<<20; i++ {
		if i > 1_000_000 {
			t.Fatal("log does not grow")
		}
		beforeDisk, beforeSize := blocksOf(t, path)
		batch := g.batch(64)
		if err := l.Append(batch); err != nil {
			t.Fatal(err)
		}
		afterDisk, afterSize := blocksOf(t, path)
		if afterSize < l.end {
			t.Fatalf("data ends at %d past the reserved %d bytes", l.end, afterSize)
		}
		if afterSize == beforeSize && afterDisk != beforeDisk {
			t.Fatalf("an append inside the reservation (size %d) changed the disk held from %d to %d",
				afterSize, beforeDisk, afterDisk)
		}
		if afterSize-l.end > maxReserveStep {
			t.Fatalf("reserved %d bytes past the data, want at most %d", afterSize-l.end, maxReserveStep)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = nil

	// Reopening continues the reservation from the data's end, not from
	// SegmentSize.
	l, err = Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < l.end || fi.Size()-l.end > maxReserveStep {
		t.Fatalf("after reopen the segment is %d bytes for %d of data, want a reservation of at most %d past it",
			fi.Size(), l.end, maxReserveStep)
	}
	if err := l.Append(g.batch(8)); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
}

// A segment reserved whole by an earlier version (64 MiB of zeros past a
// few records) is trimmed back at Open, keeping every record: the disk
// follows the data, and later Opens do not read the zeros again.
func TestOpenTrimsWholeSegmentReservation(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(combo{"binary", "file"}, 64<<20, nil)
	o.Preallocate = true
	l := mustOpen(t, dir, o)
	g := newGen()
	var want []Record
	for range 3 {
		b := g.batch(5)
		mustAppend(t, l, b)
		want = append(want, b...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, segmentName(1))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, 64<<20); err != nil {
		f.Close()
		t.Skipf("fallocate: %v", err)
	}
	f.Close()

	l = mustOpen(t, dir, o)
	defer l.Close()
	disk, size := blocksOf(t, path)
	if size < l.end || size-l.end > maxReserveStep || disk > 2*maxReserveStep {
		t.Fatalf("after reopen the segment is %d bytes (%d on disk) for %d of data", size, disk, l.end)
	}
	if got := l.TornBytes(); got != 0 {
		t.Errorf("trimming the reservation counted %d torn bytes", got)
	}
	var got []Record
	if err := l.Scan(1, func(r *Record) error { got = append(got, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read back %d records, want %d", len(got), len(want))
	}
	mustAppend(t, l, g.batch(2))
}
