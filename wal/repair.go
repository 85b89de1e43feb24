package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// RepairReport says what Repair did. On a healthy log Segment is "".
type RepairReport struct {
	Segment string   // segment where the first damage is
	Offset  int64    // byte offset of the damage in it (0: header or gap)
	Reason  string   // what was wrong
	Kept    int      // records left in the log
	LastSeq uint64   // seq of the last record left in the log
	Dropped int64    // bytes removed from the log (cut plus later segments)
	Broken  []string // .broken files written (copies and renamed segments)
	// Cut holds every record removed from the log that could still be
	// decoded (the cut segment's records before the damage, and whole later
	// segments), in log order. Records inside or after damage in the same
	// segment cannot be decoded; UndecodedBytes counts them.
	Cut            []Record
	UndecodedBytes int64
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
	opts = opts.withDefaults()
	fs := opts.FS
	lock, err := lockDir(fs, dir)
	if err != nil {
		return rep, err
	}
	defer lock.Close()
	removeTemps(fs, dir)
	names, err := listSegments(fs, dir)
	if err != nil {
		return rep, err
	}
	next := uint64(0)
	for i, name := range names {
		seg, err := readSegmentHeader(fs, dir, name)
		var ce *CorruptError
		if errors.As(err, &ce) {
			return rep, cutLog(fs, dir, names, i, -1, ce.Offset, ce.Reason, &rep)
		}
		if err != nil {
			return rep, err
		}
		if i > 0 && seg.hdr.first != next {
			return rep, cutLog(fs, dir, names, i, -1, 0, fmt.Sprintf("segment starts at seq %d, want %d", seg.hdr.first, next), &rep)
		}
		t, err := scanTail(fs, dir, seg)
		if err != nil {
			return rep, err
		}
		rep.Kept += t.records
		rep.LastSeq = t.lastSeq
		next = t.lastSeq + 1
		switch {
		case t.damage != nil:
			return rep, cutLog(fs, dir, names, i, t.commitEnd, t.damage.off, t.damage.reason, &rep)
		case t.dataEnd > t.commitEnd:
			return rep, cutLog(fs, dir, names, i, t.commitEnd, t.commitEnd, "records after the last commit record", &rep)
		}
	}
	return rep, nil
}

// cutLog truncates names[i] at cut (cut < 0: moves the whole segment aside)
// after saving a .broken copy, and moves every later segment aside. The
// records it removes that still decode go to rep.Cut.
func cutLog(fs fsys.FS, dir string, names []string, i int, cut, off int64, reason string, rep *RepairReport) error {
	rep.Segment, rep.Offset, rep.Reason = names[i], off, reason
	path := filepath.Join(dir, names[i])
	if cut >= 0 {
		fi, err := fs.Stat(path)
		if err != nil {
			return fmt.Errorf("wal: repair %s: %w", names[i], err)
		}
		if err := collectCut(fs, dir, names[i], cut, rep); err != nil {
			return err
		}
		broken := fsys.FreeName(fs, path+".broken")
		if err := fsys.CopyFileAtomic(fs, path, broken); err != nil {
			return fmt.Errorf("wal: repair: copy %s aside: %w", names[i], err)
		}
		rep.Broken = append(rep.Broken, filepath.Base(broken))
		if err := fsys.TruncateSync(fs, path, cut); err != nil {
			return fmt.Errorf("wal: repair: truncate %s at %d: %w", names[i], cut, err)
		}
		rep.Dropped += max(0, fi.Size()-cut)
		i++
	}
	for _, name := range names[i:] {
		if err := collectCut(fs, dir, name, -1, rep); err != nil {
			return err
		}
		if fi, err := fs.Stat(filepath.Join(dir, name)); err == nil {
			rep.Dropped += fi.Size()
		}
		broken := fsys.FreeName(fs, filepath.Join(dir, name+".broken"))
		if err := fs.Rename(filepath.Join(dir, name), broken); err != nil {
			return fmt.Errorf("wal: repair: move %s aside: %w", name, err)
		}
		rep.Broken = append(rep.Broken, filepath.Base(broken))
	}
	return syncDir(fs, dir)
}

// collectCut decodes the records of segment name from offset from (-1: the
// whole segment) until its data ends or a record is damaged, appending them
// to rep.Cut; the bytes it cannot decode go to rep.UndecodedBytes. A bad
// header makes the whole segment undecodable.
func collectCut(fs fsys.FS, dir, name string, from int64, rep *RepairReport) error {
	f, err := fs.OpenFile(filepath.Join(dir, name), os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("wal: repair: read %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	seg, err := readSegmentHeader(fs, dir, name)
	if err != nil {
		rep.UndecodedBytes += fi.Size()
		return nil
	}
	r := newSegReader(f, seg, fi.Size())
	var rec Record
	for {
		off, err := r.read(&rec)
		if err == io.EOF || err == errEnd {
			if err == errEnd {
				if zero, _ := allZero(f, off, fi.Size()); !zero {
					rep.UndecodedBytes += dataEnd(f, off, fi.Size()) - off
				}
			}
			return nil
		}
		if err != nil {
			rep.UndecodedBytes += dataEnd(f, off, fi.Size()) - off
			return nil
		}
		if from < 0 || off >= from {
			rep.Cut = append(rep.Cut, rec)
		}
	}
}

// dataEnd is the end of the non-zero data in f after off: a preallocated
// segment's zero tail is not data.
func dataEnd(f io.ReaderAt, off, size int64) int64 {
	end := size
	buf := make([]byte, 4096)
	for end > off {
		n := min(int64(len(buf)), end-off)
		m, _ := f.ReadAt(buf[:n], end-n)
		for j := m - 1; j >= 0; j-- {
			if buf[j] != 0 {
				return end - n + int64(j) + 1
			}
		}
		end -= n
	}
	return off
}
