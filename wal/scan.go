package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// Scan calls fn for every record with Seq >= from, in order, across
// segments, up to the last record appended when Scan started. It reads the
// files directly, so it may run on another goroutine while the writer
// appends. fn's *Record is reused between calls; the strings in it stay
// valid. An error from fn stops the scan and is returned as is.
func (l *Log) Scan(from uint64, fn func(*Record) error) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	segs := slices.Clone(l.segs)
	end, last := l.end, l.lastSeq
	l.mu.Unlock()

	from = max(from, 1)
	if from > last || len(segs) == 0 {
		return nil
	}
	if from < segs[0].hdr.first {
		return fmt.Errorf("%w: scan from seq %d, oldest segment %s starts at %d", ErrGap, from, segs[0].name, segs[0].hdr.first)
	}
	// The last segment whose first seq is <= from holds from.
	i := sort.Search(len(segs), func(i int) bool { return segs[i].hdr.first > from }) - 1
	var rec Record
	for ; i < len(segs); i++ {
		seg := segs[i]
		limit := int64(-1)
		if i == len(segs)-1 {
			limit = end
		}
		next, err := l.scanSegment(seg, limit, from, last, &rec, fn)
		if err != nil || next > last {
			return err
		}
		if i+1 < len(segs) && segs[i+1].hdr.first != next {
			return fmt.Errorf("%w: segment %s ends before seq %d, next segment %s starts at %d",
				ErrGap, seg.name, next, segs[i+1].name, segs[i+1].hdr.first)
		}
		if i == len(segs)-1 {
			return &CorruptError{Segment: seg.name, Offset: end, Seq: next,
				Reason: fmt.Sprintf("log ends at seq %d, want %d", next-1, last)}
		}
	}
	return nil
}

// scanSegment feeds the records of one segment with seq in [from, last] to
// fn and returns the seq after the last record read. limit < 0 means the
// whole file.
func (l *Log) scanSegment(seg segment, limit int64, from, last uint64, rec *Record, fn func(*Record) error) (uint64, error) {
	f, err := l.fs.OpenFile(filepath.Join(l.dir, seg.name), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		// Deleted by DeleteBefore after we listed it.
		return 0, fmt.Errorf("%w: segment %s was deleted during the scan", ErrGap, seg.name)
	}
	if err != nil {
		return 0, fmt.Errorf("wal: open segment %s: %w", seg.name, err)
	}
	defer f.Close()
	if limit < 0 {
		fi, err := f.Stat()
		if err != nil {
			return 0, fmt.Errorf("wal: stat segment %s: %w", seg.name, err)
		}
		limit = fi.Size()
	}
	r := newSegReader(f, seg, limit)
	for {
		off, err := r.read(rec)
		if err == errEnd {
			// A zero where a record starts ends the data, unless data
			// follows it: then a record's first byte was damaged to zero.
			if zero, zerr := allZero(f, off, min(off+4096, limit)); zerr == nil && !zero {
				return 0, &CorruptError{Segment: seg.name, Offset: off, Seq: r.next,
					Reason: "zero byte where a record starts, with data after it"}
			}
			return r.next, nil
		}
		if err == io.EOF {
			return r.next, nil
		}
		if re, ok := err.(*recordError); ok {
			return 0, re.corrupt(seg.name)
		}
		if err != nil {
			return 0, fmt.Errorf("wal: read segment %s: %w", seg.name, err)
		}
		if rec.Seq < from {
			continue
		}
		if err := fn(rec); err != nil {
			return 0, err
		}
		if rec.Seq == last {
			return r.next, nil
		}
	}
}
