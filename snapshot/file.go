package snapshot

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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

// Write stores st in dir atomically and returns the file's path.
// The sequence: temp file, write, fsync, close, rename, fsync dir. A crash at
// any point leaves either the old set of snapshots or the new one, plus at
// worst a stray temp file that List ignores and Prune removes.
func Write(dir string, st *State) (string, error) {
	return WriteEncoded(dir, st.Seq, Encode(nil, st))
}

// WriteEncoded stores data, an encoded snapshot taken at seq (one received
// from a primary, say), in dir, atomically like Write. It does not decode
// data: callers check it first.
func WriteEncoded(dir string, seq uint64, data []byte) (string, error) {
	final := filepath.Join(dir, FileName(seq))
	tmp, err := os.CreateTemp(dir, FileName(seq)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("snapshot: create temp in %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return "", fmt.Errorf("snapshot: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("snapshot: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("snapshot: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", fmt.Errorf("snapshot: rename to %s: %w", final, err)
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return "", err
	}
	return final, nil
}

// List returns the snapshots in dir, oldest first. Temp files are skipped.
func List(dir string) ([]Info, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("snapshot: list %s: %w", dir, err)
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

// Read loads and verifies one snapshot file.
func Read(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: read %s: %w", path, err)
	}
	st, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %s: %w", filepath.Base(path), err)
	}
	if want := FileName(st.Seq); want != filepath.Base(path) {
		return nil, fmt.Errorf("snapshot: %s: %w: holds seq %d", filepath.Base(path), ErrCorrupt, st.Seq)
	}
	return st, nil
}

// LoadNewest returns the newest snapshot in dir that reads back valid,
// warning about each newer one it had to skip and renaming it to
// "<name>.broken". It returns (nil, Info{}, nil)
// when dir holds no usable snapshot.
func LoadNewest(dir string, log *slog.Logger) (*State, Info, error) {
	infos, err := List(dir)
	if err != nil {
		return nil, Info{}, err
	}
	for i := len(infos) - 1; i >= 0; i-- {
		st, err := Read(filepath.Join(dir, infos[i].Name))
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
		path := filepath.Join(dir, infos[i].Name)
		rerr := os.Rename(path, path+".broken")
		if log != nil {
			log.Warn("snapshot: skipping damaged snapshot, trying an older one",
				"snapshot", infos[i].Name, "err", err, "moved_to", infos[i].Name+".broken", "move_err", rerr)
		}
	}
	return nil, Info{}, nil
}

// Prune removes all but the newest keep snapshots, and any leftover temp
// files. It returns the snapshots kept, oldest first.
func Prune(dir string, keep int) ([]Info, error) {
	infos, err := List(dir)
	if err != nil {
		return nil, err
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), suffix+".tmp-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if keep < 1 {
		keep = 1
	}
	for len(infos) > keep {
		if err := os.Remove(filepath.Join(dir, infos[0].Name)); err != nil {
			return nil, fmt.Errorf("snapshot: prune %s: %w", infos[0].Name, err)
		}
		infos = infos[1:]
	}
	return infos, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("snapshot: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("snapshot: sync dir %s: %w", dir, err)
	}
	return nil
}
