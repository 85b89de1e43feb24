// Package fsys is the one place where rewardpool touches the file system
// for anything a recovery decision depends on.
//
// It holds two things:
//
//   - FS and File, the narrow seam through which the log, the snapshots and
//     the engine reach the disk. OS is the real file system; the sim
//     subpackage is a power-loss simulator that forgets whatever was not
//     fsynced, so crash-consistency tests need no real broken disk (the idea
//     of hashicorp/raft-wal's VFS and etcd's LazyFS runs).
//   - The durable operations built on it (following etcd's fileutil): create,
//     rename and remove each followed by an fsync of the parent directory;
//     MkdirAll that makes every directory it creates durable; WriteFileAtomic
//     (temp file, fsync, rename, fsync directory); and the directory lock.
//
// Why the parent fsync: on Linux a new, renamed or removed directory entry is
// durable only once its directory is fsynced. Without it a power cut can
// bring back a file that was renamed away or lose a file whose data was
// synced.
package fsys

import (
	"errors"
	"io"
	"io/fs"
	"os"
)

// FS is the file system as rewardpool uses it. Names are slash-separated OS
// paths. Implementations must be safe for concurrent use.
type FS interface {
	// OpenFile is os.OpenFile.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Stat is os.Stat.
	Stat(name string) (fs.FileInfo, error)
	// ReadDir is os.ReadDir: the entries sorted by name.
	ReadDir(name string) ([]fs.DirEntry, error)
	// Mkdir creates one directory (not durable until its parent is synced).
	Mkdir(name string, perm fs.FileMode) error
	// Rename is os.Rename (not durable until the parents are synced).
	Rename(oldpath, newpath string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// SyncDir makes the entries of directory name durable.
	SyncDir(name string) error
	// Lock takes an exclusive, non-blocking lock on the file name (created
	// if missing). It fails with ErrLocked while another holder has it. The
	// lock goes away with Close or with the process.
	Lock(name string) (io.Closer, error)
}

// File is an open file.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	Name() string
	Stat() (fs.FileInfo, error)
	// Sync is fsync: data and metadata.
	Sync() error
	// Datasync is fdatasync: data and the metadata needed to read it back.
	Datasync() error
	// Truncate changes the size, as os.File.Truncate.
	Truncate(size int64) error
	// Allocate reserves disk blocks for [0, size), extending the file to
	// size (fallocate mode 0): later writes there cannot fail for lack of
	// space, and the blocks read as zeros until written.
	Allocate(size int64) error
}

// ErrLocked is returned by Lock while another holder has the lock.
var ErrLocked = errors.New("fsys: locked by another process")

// ReadFile reads a whole file through fsys.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Exists reports whether name exists; an error other than "not found" is
// returned as is, because it says nothing about the file.
func Exists(fsys FS, name string) (bool, error) {
	_, err := fsys.Stat(name)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}
