package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// TruncateAfter removes every record after seq from the log in dir, which
// must not be open: the segment holding seq+1 is copied to <name>.broken
// and cut there, later segments are renamed to <name>.broken. A replica
// uses it to cut the tail where its log parted from its new primary's, so
// seq must end a batch (its record has Commit set), or the cut log would
// end in an unfinished batch. The report's Broken files keep what was cut.
func TruncateAfter(dir string, seq uint64, opts Options) (RepairReport, error) {
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
	names, err := listSegments(fs, dir)
	if err != nil {
		return rep, err
	}
	for i, name := range names {
		seg, err := readSegmentHeader(fs, dir, name)
		if err != nil {
			return rep, err
		}
		if i+1 < len(names) {
			if nextFirst, ok := parseSegmentName(names[i+1]); ok && nextFirst <= seq+1 {
				continue // seq+1 is in a later segment
			}
		}
		if seg.hdr.first > seq+1 {
			return rep, fmt.Errorf("wal: truncate after %d: the log starts at %d", seq, seg.hdr.first)
		}
		if seg.hdr.first == seq+1 {
			return rep, cutLog(fs, dir, false, names, i, -1, 0, fmt.Sprintf("records after seq %d", seq), &rep)
		}
		off, commit, err := recordOffset(fs, dir, seg, seq+1)
		if errors.Is(err, io.EOF) {
			return rep, nil // the log ends at or before seq: nothing to cut
		}
		if err != nil {
			return rep, err
		}
		if !commit {
			return rep, fmt.Errorf("wal: truncate after %d: that record does not end a batch", seq)
		}
		return rep, cutLog(fs, dir, false, names, i, off, off, fmt.Sprintf("records after seq %d", seq), &rep)
	}
	return rep, nil
}

// recordOffset finds the byte offset of record seq in seg, and whether the
// record before it ends a batch.
func recordOffset(fs fsys.FS, dir string, seg segment, seq uint64) (int64, bool, error) {
	f, err := fs.OpenFile(filepath.Join(dir, seg.name), os.O_RDONLY, 0)
	if err != nil {
		return 0, false, fmt.Errorf("wal: open segment %s: %w", seg.name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	r := newSegReader(f, seg, fi.Size())
	var rec Record
	prevCommit := true
	for {
		off, err := r.read(&rec)
		if err == errEnd {
			return 0, false, io.EOF
		}
		if err != nil {
			return 0, false, err
		}
		if rec.Seq == seq {
			return off, prevCommit, nil
		}
		prevCommit = rec.Commit
	}
}

// CutAfter removes every record after seq from the log in dir, which must
// not be open, keeping no copy: the caller holds those records elsewhere
// (the node journal) or they were never acknowledged. Unlike Open it reads
// nothing past seq, so damage there (sectors a power cut lost from a tail
// that was never fsynced) does not stop it. Segments that start after
// seq+1 are removed; the one holding seq is cut after it. A log that ends
// before seq is left as it is.
func CutAfter(dir string, seq uint64, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	fs := opts.FS
	if ok, err := fsys.Exists(fs, dir); err != nil || !ok {
		return err
	}
	lock, err := lockDir(fs, dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	removeTemps(fs, dir)
	names, err := listSegments(fs, dir)
	if err != nil {
		return err
	}
	for i := len(names) - 1; i >= 0; i-- {
		first, ok := parseSegmentName(names[i])
		if !ok || first <= seq {
			break
		}
		// Every record of this segment is after seq (its first is seq+1 or
		// later): remove it, newest first, so a cut mid-way leaves a log
		// without holes.
		if err := fsys.Remove(fs, filepath.Join(dir, names[i])); err != nil {
			return fmt.Errorf("wal: remove segment %s: %w", names[i], err)
		}
		names = names[:i]
	}
	if len(names) == 0 {
		return nil
	}
	name := names[len(names)-1]
	seg, err := readSegmentHeader(fs, dir, name)
	if err != nil {
		return err
	}
	f, err := fs.OpenFile(filepath.Join(dir, name), os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("wal: open segment %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r := newSegReader(f, seg, fi.Size())
	var rec Record
	end := int64(-1)
	for {
		if _, err := r.read(&rec); err != nil {
			break
		}
		if rec.Seq == seq {
			end = r.offset()
			break
		}
	}
	f.Close()
	if end < 0 {
		return nil // the log ends before seq (or is damaged before it): Open judges
	}
	if end >= fi.Size() {
		return nil
	}
	if err := fsys.TruncateSync(fs, filepath.Join(dir, name), end); err != nil {
		return fmt.Errorf("wal: cut segment %s at %d: %w", name, end, err)
	}
	return nil
}
