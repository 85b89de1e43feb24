package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// RepairReport says what Repair did. On a healthy log Segment is "".
type RepairReport struct {
	Segment string   // segment where the first damage is
	Offset  int64    // byte offset of the damage in it (0: header or gap)
	Reason  string   // what was wrong
	Kept    int      // records left in the log
	Dropped int64    // bytes removed from the log (cut plus later segments)
	Broken  []string // .broken files written (copies and renamed segments)
}

// Repair truncates the log in dir at the first damage a full scan finds: a
// bad header, a gap between segments, a bad record, or records after the
// last commit record. The damaged segment is first copied to
// <name>.broken, then truncated back to its last commit record; later
// segments are renamed to <name>.broken. A healthy log is not changed. The
// log must not be open.
func Repair(dir string, opts Options) (RepairReport, error) {
	var rep RepairReport
	if err := opts.Validate(); err != nil {
		return rep, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return rep, err
	}
	defer lock.Close()
	removeTemps(dir)
	names, err := listSegments(dir)
	if err != nil {
		return rep, err
	}
	next := uint64(0)
	for i, name := range names {
		seg, err := readSegmentHeader(dir, name)
		var ce *CorruptError
		if errors.As(err, &ce) {
			return rep, cutLog(dir, names, i, -1, ce.Offset, ce.Reason, &rep)
		}
		if err != nil {
			return rep, err
		}
		if i > 0 && seg.hdr.first != next {
			return rep, cutLog(dir, names, i, -1, 0, fmt.Sprintf("segment starts at seq %d, want %d", seg.hdr.first, next), &rep)
		}
		t, err := scanTail(dir, seg)
		if err != nil {
			return rep, err
		}
		rep.Kept += t.records
		next = t.lastSeq + 1
		switch {
		case t.damage != nil:
			return rep, cutLog(dir, names, i, t.commitEnd, t.damage.off, t.damage.reason, &rep)
		case t.dataEnd > t.commitEnd:
			return rep, cutLog(dir, names, i, t.commitEnd, t.commitEnd, "records after the last commit record", &rep)
		}
	}
	return rep, nil
}

// cutLog truncates names[i] at cut (cut < 0: moves the whole segment aside)
// after saving a .broken copy, and moves every later segment aside.
func cutLog(dir string, names []string, i int, cut, off int64, reason string, rep *RepairReport) error {
	rep.Segment, rep.Offset, rep.Reason = names[i], off, reason
	path := filepath.Join(dir, names[i])
	if cut >= 0 {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("wal: repair %s: %w", names[i], err)
		}
		broken, err := copyAside(dir, names[i])
		if err != nil {
			return err
		}
		rep.Broken = append(rep.Broken, broken)
		if err := truncateSync(path, cut); err != nil {
			return fmt.Errorf("wal: repair: truncate %s at %d: %w", names[i], cut, err)
		}
		rep.Dropped += max(0, fi.Size()-cut)
		i++
	}
	for _, name := range names[i:] {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			rep.Dropped += fi.Size()
		}
		broken := brokenName(dir, name)
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, broken)); err != nil {
			return fmt.Errorf("wal: repair: move %s aside: %w", name, err)
		}
		rep.Broken = append(rep.Broken, broken)
	}
	return syncDir(dir)
}

// brokenName is a free name for a .broken copy of name: never overwrite an
// earlier one, it may be the only copy of some data.
func brokenName(dir, name string) string {
	b := name + ".broken"
	for n := 1; ; n++ {
		if _, err := os.Lstat(filepath.Join(dir, b)); errors.Is(err, os.ErrNotExist) {
			return b
		}
		b = fmt.Sprintf("%s.broken.%d", name, n)
	}
}

// copyAside copies dir/name to a .broken name atomically: temp file, fsync,
// rename, fsync dir.
func copyAside(dir, name string) (string, error) {
	broken := brokenName(dir, name)
	src, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("wal: repair: copy %s: %w", name, err)
	}
	defer src.Close()
	tmp := filepath.Join(dir, broken+".tmp")
	dst, err := os.Create(tmp)
	if err != nil {
		return "", fmt.Errorf("wal: repair: copy %s: %w", name, err)
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, broken))
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("wal: repair: copy %s: %w", name, err)
	}
	return broken, syncDir(dir)
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}
