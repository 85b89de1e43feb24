package fsys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// MkdirAll creates dir and any missing parents, then fsyncs every
// directory on the path, top down, dir itself included (its entries), so a
// power cut cannot take back a directory, or a file in dir, that a later
// decision relies on. It syncs existing ones too: one
// created by an earlier call whose sync failed (or by someone else) is not
// durable just because it exists, and everything later written inside it
// would vanish with it. Syncing a directory with nothing new is cheap.
func MkdirAll(fsys FS, dir string, perm fs.FileMode) error {
	dir = filepath.Clean(dir)
	chain := []string{dir}
	for d := dir; filepath.Dir(d) != d; d = filepath.Dir(d) {
		chain = append(chain, filepath.Dir(d))
	}
	for i := len(chain) - 1; i >= 0; i-- {
		fi, err := fsys.Stat(chain[i])
		switch {
		case err == nil && !fi.IsDir():
			return &fs.PathError{Op: "mkdir", Path: chain[i], Err: fs.ErrExist}
		case errors.Is(err, fs.ErrNotExist):
			if err := fsys.Mkdir(chain[i], perm); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case err != nil:
			return err
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if err := fsys.SyncDir(chain[i]); err != nil {
			return fmt.Errorf("fsys: sync dir %s: %w", chain[i], err)
		}
	}
	return nil
}

// Mkdirs creates dir and any missing parents without syncing anything: for
// a caller that fills the new directories first and then makes them durable
// at once with SyncPath, one fsync per directory instead of one per step.
// It reports whether dir itself was created.
func Mkdirs(fsys FS, dir string, perm fs.FileMode) (created bool, err error) {
	dir = filepath.Clean(dir)
	fi, err := fsys.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return false, &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrExist}
	case err == nil:
		return false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if _, err := Mkdirs(fsys, parent, perm); err != nil {
			return false, err
		}
	}
	if err := fsys.Mkdir(dir, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil // made by someone else meanwhile
		}
		return false, err
	}
	return true, nil
}

// SyncPath fsyncs dir and then every directory above it, bottom-up, up to
// the root: once it returns, dir's entries and dir itself (its name in its
// parent, and theirs) survive a power cut. Bottom-up, so that whatever name
// a cut in between leaves durable already has durable contents. Directories
// with nothing new are cheap to sync.
func SyncPath(fsys FS, dir string) error {
	d := filepath.Clean(dir)
	for {
		if err := fsys.SyncDir(d); err != nil {
			return fmt.Errorf("fsys: sync dir %s: %w", d, err)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return nil
		}
		d = parent
	}
}

// Rename renames oldpath to newpath and fsyncs the parent directory (both,
// when they differ), so the rename survives a power cut.
func Rename(fsys FS, oldpath, newpath string) error {
	if err := fsys.Rename(oldpath, newpath); err != nil {
		return err
	}
	if err := syncParent(fsys, newpath); err != nil {
		return err
	}
	if filepath.Dir(oldpath) != filepath.Dir(newpath) {
		return syncParent(fsys, oldpath)
	}
	return nil
}

// Remove removes name and fsyncs its parent directory.
func Remove(fsys FS, name string) error {
	if err := fsys.Remove(name); err != nil {
		return err
	}
	return syncParent(fsys, name)
}

// RemoveAll removes path and everything below it, then fsyncs its parent.
// A missing path is not an error.
func RemoveAll(fsys FS, path string) error {
	fi, err := fsys.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := removeTree(fsys, path, fi); err != nil {
		return err
	}
	return syncParent(fsys, path)
}

func removeTree(fsys FS, path string, fi fs.FileInfo) error {
	if fi.IsDir() {
		ents, err := fsys.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range ents {
			info, err := e.Info()
			if err != nil {
				return err
			}
			if err := removeTree(fsys, filepath.Join(path, e.Name()), info); err != nil {
				return err
			}
		}
	}
	return fsys.Remove(path)
}

// WriteFileAtomic replaces name with data so that a reader, even after a
// power cut, sees either the old file or the whole new one: write a temp
// file beside it, fsync, close, rename over name, fsync the directory. The
// temp file is removed on failure.
func WriteFileAtomic(fsys FS, name string, data []byte, perm fs.FileMode) error {
	if err := WriteFileSynced(fsys, name, data, perm); err != nil {
		return err
	}
	if err := syncParent(fsys, name); err != nil {
		return fmt.Errorf("fsys: rename %s: %w", name, err)
	}
	return nil
}

// WriteFileSynced is WriteFileAtomic without the final fsync of the
// directory: the file's content is durable before its name appears, so a
// power cut leaves no name or the whole file, but the name itself is durable
// only once the caller syncs the directory (SyncPath). For creating several
// entries of one directory with one directory fsync.
func WriteFileSynced(fsys FS, name string, data []byte, perm fs.FileMode) error {
	return writeFileSynced(fsys, name, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileAtomicFrom is WriteFileAtomic with the content written by fill
// straight into the temp file, so a large file (a snapshot of a huge
// catalog) never has to be built in memory first. fill's writes are
// unbuffered file writes: it should write in large chunks.
func WriteFileAtomicFrom(fsys FS, name string, perm fs.FileMode, fill func(io.Writer) error) error {
	if err := writeFileSynced(fsys, name, perm, fill); err != nil {
		return err
	}
	if err := syncParent(fsys, name); err != nil {
		return fmt.Errorf("fsys: rename %s: %w", name, err)
	}
	return nil
}

func writeFileSynced(fsys FS, name string, perm fs.FileMode, fill func(io.Writer) error) (err error) {
	tmp := name + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("fsys: create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			fsys.Remove(tmp)
		}
	}()
	if err = fill(f); err != nil {
		return fmt.Errorf("fsys: write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsys: sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("fsys: close %s: %w", tmp, err)
	}
	if err = fsys.Rename(tmp, name); err != nil {
		return fmt.Errorf("fsys: rename %s: %w", name, err)
	}
	return nil
}

// CopyFileAtomic copies src to dst atomically, as WriteFileAtomic.
func CopyFileAtomic(fsys FS, src, dst string) error {
	in, err := fsys.OpenFile(src, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("fsys: read %s: %w", src, err)
	}
	return WriteFileAtomic(fsys, dst, data, 0o644)
}

// TruncateSync cuts name to size and fsyncs it.
func TruncateSync(fsys FS, name string, size int64) error {
	f, err := fsys.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// FreeName returns name, or name.1, name.2 ... whichever does not exist
// yet: audit copies never overwrite an earlier one, which may be the only
// copy of some data. If Stat fails for another reason (EIO, EACCES), it
// returns the name it was checking: looking further would never end, and
// the operation that uses the name reports the real error.
func FreeName(fsys FS, name string) string {
	n := name
	for i := 1; ; i++ {
		if _, err := fsys.Stat(n); err != nil {
			return n
		}
		n = fmt.Sprintf("%s.%d", name, i)
	}
}

func syncParent(fsys FS, name string) error {
	dir := filepath.Dir(filepath.Clean(name))
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("fsys: sync dir %s: %w", dir, err)
	}
	return nil
}
