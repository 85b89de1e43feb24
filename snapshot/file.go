package snapshot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

const suffix = ".snap"

// Info describes one snapshot file.
type Info struct {
	Name string // file name, 20-digit seq + ".snap"
	Seq  uint64
	Size int64
}

// FileName returns the name of the snapshot taken at seq; names sort in
// seq order.
func FileName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, suffix) }

// Dir is a directory of snapshots on a file system. The package-level
// functions work on the operating system's; the engine passes its own
// (a power-loss simulator, in tests).
type Dir struct {
	fs   fsys.FS
	path string
}

// In returns the snapshot directory path on fs (nil: the operating
// system's).
func In(fs fsys.FS, path string) Dir {
	if fs == nil {
		fs = fsys.OS
	}
	return Dir{fs: fs, path: path}
}

// Write stores st in dir atomically and returns the file's path.
// The sequence: temp file, write, fsync, close, rename, fsync dir. A crash at
// any point leaves either the old set of snapshots or the new one, plus at
// worst a stray temp file that List ignores and Prune removes.
func Write(dir string, st *State) (string, error) { return In(nil, dir).Write(st) }

// WriteEncoded stores data, an encoded snapshot taken at seq (one received
// from a primary, say), in dir, atomically like Write. It does not decode
// data: callers check it first.
func WriteEncoded(dir string, seq uint64, data []byte) (string, error) {
	return In(nil, dir).WriteEncoded(seq, data)
}

// List returns the snapshots in dir, oldest first. Temp files are skipped.
func List(dir string) ([]Info, error) { return In(nil, dir).List() }

// Read loads and verifies one snapshot file.
func Read(path string) (*State, error) {
	return In(nil, filepath.Dir(path)).Read(filepath.Base(path))
}

// LoadNewest returns the newest snapshot in dir that reads back valid; see
// Dir.LoadNewest.
func LoadNewest(dir string, log *slog.Logger) (*State, Info, error) {
	return In(nil, dir).LoadNewest(log)
}

// Prune removes all but the newest keep snapshots; see Dir.Prune.
func Prune(dir string, keep int) ([]Info, error) { return In(nil, dir).Prune(keep) }

// Write stores st atomically; see the package-level Write.
func (d Dir) Write(st *State) (string, error) { return d.WriteEncoded(st.Seq, Encode(nil, st)) }

// WriteState stores st atomically, as Write, encoding it straight into
// the file (WriteTo) rather than in memory first. It returns the file's
// path and size.
func (d Dir) WriteState(st *State) (string, int64, error) {
	final := filepath.Join(d.path, FileName(st.Seq))
	var size int64
	err := fsys.WriteFileAtomicFrom(d.fs, final, 0o644, func(w io.Writer) error {
		var err error
		size, err = WriteTo(w, st)
		return err
	})
	if err != nil {
		return "", 0, fmt.Errorf("snapshot: %w", err)
	}
	return final, size, nil
}

// WriteEncoded stores an encoded snapshot atomically; see the package-level
// WriteEncoded.
func (d Dir) WriteEncoded(seq uint64, data []byte) (string, error) {
	final := filepath.Join(d.path, FileName(seq))
	if err := fsys.WriteFileAtomic(d.fs, final, data, 0o644); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	return final, nil
}

// List returns the snapshots, oldest first. Temp files are skipped.
func (d Dir) List() ([]Info, error) {
	entries, err := d.fs.ReadDir(d.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("snapshot: list %s: %w", d.path, err)
	}
	var out []Info
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, suffix) || len(name) != 20+len(suffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, suffix), 10, 64)
		if err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("snapshot: stat %s: %w", name, err)
		}
		out = append(out, Info{Name: name, Seq: seq, Size: fi.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// Read loads and verifies the snapshot file name.
func (d Dir) Read(name string) (*State, error) {
	b, err := fsys.ReadFile(d.fs, filepath.Join(d.path, name))
	if err != nil {
		return nil, fmt.Errorf("snapshot: read %s: %w", filepath.Join(d.path, name), err)
	}
	st, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %s: %w", name, err)
	}
	if want := FileName(st.Seq); want != name {
		return nil, fmt.Errorf("snapshot: %s: %w: holds seq %d", name, ErrCorrupt, st.Seq)
	}
	return st, nil
}

// LoadNewest returns the newest snapshot that reads back valid, warning
// about each newer one it had to skip and renaming it to "<name>.broken"
// (durably). It returns (nil, Info{}, nil) when there is no usable one.
func (d Dir) LoadNewest(log *slog.Logger) (*State, Info, error) {
	infos, err := d.List()
	if err != nil {
		return nil, Info{}, err
	}
	for i := len(infos) - 1; i >= 0; i-- {
		st, err := d.Read(infos[i].Name)
		if err == nil {
			return st, infos[i], nil
		}
		if !errors.Is(err, ErrCorrupt) {
			// An I/O error (EMFILE, EIO, permissions) says nothing about
			// the file: stop rather than set a good snapshot aside.
			return nil, Info{}, err
		}
		// Set the damaged file aside so it is never counted as one of the
		// snapshots kept, and an operator can still look at it.
		path := filepath.Join(d.path, infos[i].Name)
		broken := fsys.FreeName(d.fs, path+".broken")
		rerr := fsys.Rename(d.fs, path, broken)
		if log != nil {
			log.Warn("snapshot: skipping damaged snapshot, trying an older one",
				"snapshot", infos[i].Name, "err", err, "moved_to", filepath.Base(broken), "move_err", rerr)
		}
	}
	return nil, Info{}, nil
}

// Prune removes all but the newest keep snapshots, and any leftover temp
// files, then fsyncs the directory. It returns the snapshots kept, oldest
// first.
func (d Dir) Prune(keep int) ([]Info, error) {
	infos, err := d.List()
	if err != nil {
		return nil, err
	}
	entries, _ := d.fs.ReadDir(d.path)
	for _, e := range entries {
		// Temp files of WriteFileAtomic (and of older versions: .tmp-*).
		if strings.HasSuffix(e.Name(), suffix+".tmp") || strings.Contains(e.Name(), suffix+".tmp-") {
			d.fs.Remove(filepath.Join(d.path, e.Name()))
		}
	}
	if keep < 1 {
		keep = 1
	}
	removed := false
	for len(infos) > keep {
		if err := d.fs.Remove(filepath.Join(d.path, infos[0].Name)); err != nil {
			return nil, fmt.Errorf("snapshot: prune %s: %w", infos[0].Name, err)
		}
		removed = true
		infos = infos[1:]
	}
	if removed {
		if err := d.fs.SyncDir(d.path); err != nil {
			return nil, fmt.Errorf("snapshot: sync dir %s: %w", d.path, err)
		}
	}
	return infos, nil
}
