package wal

import (
	"bytes"
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
func Repair(dir string, opts Options) (RepairReport, error) { return repair(dir, opts, false) }

// PlanRepair reports what Repair would do, changing nothing.
func PlanRepair(dir string, opts Options) (RepairReport, error) { return repair(dir, opts, true) }

func repair(dir string, opts Options, dry bool) (RepairReport, error) {
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
			return rep, cutLog(fs, dir, dry, names, i, -1, ce.Offset, ce.Reason, &rep)
		}
		if err != nil {
			return rep, err
		}
		if i > 0 && seg.hdr.first != next {
			return rep, cutLog(fs, dir, dry, names, i, -1, 0, fmt.Sprintf("segment starts at seq %d, want %d", seg.hdr.first, next), &rep)
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
			return rep, cutLog(fs, dir, dry, names, i, t.commitEnd, t.damage.off, t.damage.reason, &rep)
		case t.dataEnd > t.commitEnd:
			return rep, cutLog(fs, dir, dry, names, i, t.commitEnd, t.commitEnd, "records after the last commit record", &rep)
		}
	}
	return rep, nil
}

// cutLog truncates names[i] at cut (cut < 0: moves the whole segment aside)
// after saving a .broken copy, and moves every later segment aside. The
// records it removes that still decode go to rep.Cut. dry only reports.
func cutLog(fs fsys.FS, dir string, dry bool, names []string, i int, cut, off int64, reason string, rep *RepairReport) error {
	rep.Segment, rep.Offset, rep.Reason = names[i], off, reason
	if cut >= 0 {
		if err := cutSegment(fs, dir, dry, names[i], cut, rep); err != nil {
			return err
		}
		i++
	}
	for _, name := range names[i:] {
		if err := collectCut(fs, dir, name, -1, rep); err != nil {
			return err
		}
		if fi, err := fs.Stat(filepath.Join(dir, name)); err == nil {
			rep.Dropped += fi.Size()
		}
		if dry {
			continue
		}
		broken := fsys.FreeName(fs, filepath.Join(dir, name+".broken"))
		if err := fs.Rename(filepath.Join(dir, name), broken); err != nil {
			return fmt.Errorf("wal: repair: move %s aside: %w", name, err)
		}
		rep.Broken = append(rep.Broken, filepath.Base(broken))
	}
	if dry {
		return nil
	}
	return syncDir(fs, dir)
}

// cutSegment saves a .broken copy of name, then truncates it at cut.
func cutSegment(fs fsys.FS, dir string, dry bool, name string, cut int64, rep *RepairReport) error {
	path := filepath.Join(dir, name)
	fi, err := fs.Stat(path)
	if err != nil {
		return fmt.Errorf("wal: repair %s: %w", name, err)
	}
	if err := collectCut(fs, dir, name, cut, rep); err != nil {
		return err
	}
	rep.Dropped += max(0, fi.Size()-cut)
	if dry {
		return nil
	}
	broken := fsys.FreeName(fs, path+".broken")
	if err := fsys.CopyFileAtomic(fs, path, broken); err != nil {
		return fmt.Errorf("wal: repair: copy %s aside: %w", name, err)
	}
	rep.Broken = append(rep.Broken, filepath.Base(broken))
	if err := fsys.TruncateSync(fs, path, cut); err != nil {
		return fmt.Errorf("wal: repair: truncate %s at %d: %w", name, cut, err)
	}
	return nil
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
	if seg.hdr.codec != "binary" {
		return collectLines(f, seg, fi.Size(), from, rep)
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
			// Binary records after damage cannot be trusted: their seqs
			// and request ids are deltas from the record that is lost.
			rep.UndecodedBytes += dataEnd(f, off, fi.Size()) - off
			return nil
		}
		if from < 0 || off >= from {
			rep.Cut = append(rep.Cut, rec)
		}
	}
}

// collectLines is collectCut for the line codecs, whose records stand
// alone: a damaged line is skipped (counted as undecoded) and the lines
// after it are still read.
func collectLines(f io.ReaderAt, seg segment, size, from int64, rep *RepairReport) error {
	start := max(from, HeaderSize)
	end := dataEnd(f, start, size)
	if end <= start {
		return nil
	}
	b := make([]byte, end-start)
	if _, err := f.ReadAt(b, start); err != nil && err != io.EOF {
		return err
	}
	c := codecByName(seg.hdr.codec)
	for len(b) > 0 {
		n := bytes.IndexByte(b, '\n') + 1
		if n == 0 {
			n = len(b)
		}
		var rec Record
		st := newCodecState(seg.hdr)
		if _, err := c.decode(b[:n], &st, &rec); err != nil {
			rep.UndecodedBytes += int64(n)
		} else {
			rep.Cut = append(rep.Cut, rec)
		}
		b = b[n:]
	}
	return nil
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
