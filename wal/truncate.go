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
