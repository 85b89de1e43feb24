package wal

import (
	"fmt"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// fileStorage writes with pwrite at the end of the data and syncs with
// fdatasync, which skips inode timestamps but still flushes the size and
// block allocation a later read depends on.
//
// With prealloc, the blocks in front of the data are reserved with
// fallocate, in steps that grow with the segment (minReserve, doubling up
// to maxReserveStep), not a whole SegmentSize up front: an idle pool then
// holds 64 KiB of disk instead of 64 MiB, and Open reads (and checks for
// zeros) only what was reserved. An append inside the reservation changes
// no block or size, so its fdatasync writes only data; the batch that
// crosses it pays for one fallocate and one size update, once per step.
type fileStorage struct {
	f        fsys.File
	segSize  int64
	prealloc bool
	reserved int64 // with prealloc: the file's size, all of it allocated
}

// The reservation steps of a preallocated file segment.
const (
	minReserve     = 64 << 10
	maxReserveStep = 4 << 20
)

// newFileStorage wraps f, a segment whose size is size.
func newFileStorage(f fsys.File, segSize int64, prealloc bool, size int64) *fileStorage {
	return &fileStorage{f: f, segSize: segSize, prealloc: prealloc, reserved: size}
}

// nextReserve is the size to reserve when end bytes must fit and reserved
// are: one step more, the step doubling with the reservation from
// minReserve up to maxReserveStep, in whole 4 KiB blocks, never past the
// segment size unless a batch larger than a segment needs it.
func nextReserve(reserved, end, segSize int64) int64 {
	step := min(max(reserved, minReserve), maxReserveStep)
	size := (max(end, reserved+step) + 4095) &^ 4095
	return max(min(size, segSize), end)
}

// reserve makes sure the blocks of [0, end) are allocated before a write
// that ends at end (with prealloc; without it the write allocates them).
// Space past the data reads as zeros, which every reader takes for the end
// of the data (see the package doc), so a crash after reserve leaves a
// segment that reads as before.
func (s *fileStorage) reserve(end int64) error {
	if !s.prealloc || end <= s.reserved {
		return nil
	}
	size := nextReserve(s.reserved, end, s.segSize)
	if err := s.f.Allocate(size); err != nil {
		return fmt.Errorf("fallocate %d bytes: %w", size, err)
	}
	s.reserved = size
	return nil
}

// preallocate reserves size bytes for a new segment file. fallocate gives
// unwritten extents (no data is written); zeroFill writes real zeros so
// later appends change no metadata at all.
func preallocate(f fsys.File, size int64, zeroFill bool) error {
	if !zeroFill {
		return f.Allocate(size)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

func (s *fileStorage) writeAt(p []byte, off int64) error {
	_, err := s.f.WriteAt(p, off)
	return err
}

func (s *fileStorage) writePartial(p []byte, keep int, off int64) { s.f.WriteAt(p[:keep], off) }

func (s *fileStorage) sync(from, to int64) error { return s.f.Datasync() }

func (s *fileStorage) capacity() int64 { return s.segSize }

func (s *fileStorage) grow(n int64) error { return nil }

func (s *fileStorage) cut(end, dirtyEnd int64) error {
	if err := s.f.Truncate(end); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	// The next append reserves again from here (reserve).
	s.reserved = end
	return s.f.Sync()
}

func (s *fileStorage) close() error { return s.f.Close() }
