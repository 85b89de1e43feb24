package wal

import (
	"fmt"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// fileStorage writes with pwrite at the end of the data and syncs with
// fdatasync, which skips inode timestamps but still flushes the size and
// block allocation a later read depends on.
type fileStorage struct {
	f        fsys.File
	segSize  int64
	prealloc bool
}

func newFileStorage(f fsys.File, segSize int64, prealloc bool) *fileStorage {
	return &fileStorage{f: f, segSize: segSize, prealloc: prealloc}
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
	if s.prealloc && end < s.segSize {
		if err := s.f.Allocate(s.segSize); err != nil {
			return fmt.Errorf("fallocate: %w", err)
		}
	}
	return s.f.Sync()
}

func (s *fileStorage) close() error { return s.f.Close() }
