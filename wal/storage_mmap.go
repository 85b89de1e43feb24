package wal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// mmapStorage writes through a shared mapping of a segment preallocated to
// its full size, so an append is a memcpy and no write changes the file
// size; durability comes from msync(MS_SYNC) on the dirty pages. The file
// was extended (and fsync'ed) before the segment was renamed into place, so
// the size is already durable.
//
// The blocks are reserved with fallocate, never by a sparse extension: a
// store into a hole of a mapping that the disk cannot fill kills the process
// with SIGBUS, where fallocate returns ENOSPC up front as an error.
type mmapStorage struct {
	f    fsys.File
	fd   int
	data []byte
}

var pageSize = int64(os.Getpagesize())

// errNeedOSFile: the mmap storage maps a real file descriptor.
var errNeedOSFile = errors.New("mmap storage needs the operating system's file system")

// newMmapStorage maps f, reserving at least size bytes first.
func newMmapStorage(f fsys.File, size int64) (*mmapStorage, error) {
	osf, ok := f.(*fsys.OSFile)
	if !ok {
		return nil, errNeedOSFile
	}
	s := &mmapStorage{f: f, fd: int(osf.Fd())}
	if err := s.mapAt(size); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *mmapStorage) mapAt(size int64) error {
	fi, err := s.f.Stat()
	if err != nil {
		return err
	}
	// Reserve even when the file is already big enough: a segment
	// extended sparsely by an older version, or whose reservation a crash
	// interrupted, gets its blocks now rather than a SIGBUS later.
	if err := s.f.Allocate(max(size, fi.Size())); err != nil {
		return fmt.Errorf("reserve %d bytes: %w", max(size, fi.Size()), err)
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	size = max(size, fi.Size())
	data, err := syscall.Mmap(s.fd, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	s.data = data
	return nil
}

func (s *mmapStorage) writeAt(p []byte, off int64) error {
	if off+int64(len(p)) > int64(len(s.data)) {
		return fmt.Errorf("write of %d bytes at %d past the mapped %d bytes", len(p), off, len(s.data))
	}
	// A process killed in the middle of copy leaves the batch's bytes in
	// whatever order memmove stored them. Writing the first byte (the
	// first record's length) last means an unfinished batch always starts
	// with a zero, which recovery recognises as a torn tail rather than
	// damage (see scanTail).
	if len(p) == 0 {
		return nil
	}
	copy(s.data[off+1:], p[1:])
	s.data[off] = p[0]
	return nil
}

// writePartial stores keep bytes of p but never the first one, which
// writeAt stores last.
func (s *mmapStorage) writePartial(p []byte, keep int, off int64) {
	if keep > 1 && off+int64(keep) <= int64(len(s.data)) {
		copy(s.data[off+1:off+int64(keep)], p[1:keep])
	}
}

func (s *mmapStorage) sync(from, to int64) error {
	from &^= pageSize - 1 // msync wants a page-aligned address
	to = min(to, int64(len(s.data)))
	if to <= from {
		return nil
	}
	_, _, e := syscall.Syscall(syscall.SYS_MSYNC, uintptr(unsafe.Pointer(&s.data[from])), uintptr(to-from), syscall.MS_SYNC)
	if e != 0 {
		return e
	}
	return nil
}

func (s *mmapStorage) capacity() int64 { return int64(len(s.data)) }

// reserve: the whole mapping is reserved already (mapAt).
func (s *mmapStorage) reserve(end int64) error { return nil }

func (s *mmapStorage) grow(n int64) error {
	if n <= int64(len(s.data)) {
		return nil
	}
	if err := syscall.Munmap(s.data); err != nil {
		return err
	}
	s.data = nil
	return s.mapAt(n)
}

func (s *mmapStorage) cut(end, dirtyEnd int64) error {
	dirtyEnd = min(dirtyEnd, int64(len(s.data)))
	if end >= dirtyEnd {
		return nil
	}
	clear(s.data[end:dirtyEnd])
	return s.sync(end, dirtyEnd)
}

func (s *mmapStorage) close() error {
	var err error
	if s.data != nil {
		err = syscall.Munmap(s.data)
		s.data = nil
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
