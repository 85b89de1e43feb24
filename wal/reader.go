package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// segReader decodes the records of one segment file in order, reading in
// chunks with plain reads (never through the writer's mapping), so it can
// run while the writer appends past limit.
type segReader struct {
	f     io.ReaderAt
	c     codec
	st    codecState
	next  uint64 // seq the next record must have
	buf   []byte
	pos   int   // buf[pos:n] is unread
	n     int   //
	base  int64 // file offset of buf[0]
	limit int64 // read no further than this offset
	eof   bool  // nothing left to read below limit
}

// recordError is a damaged record found by a segReader.
type recordError struct {
	off, end int64 // where the record starts and the end of what it claims
	seq      uint64
	reason   string
	hard     bool // not explainable by a torn write (checksum ok, wrong seq)
}

func (e *recordError) Error() string { return e.reason }

func newSegReader(f io.ReaderAt, seg segment, limit int64) *segReader {
	return &segReader{
		f: f, c: codecByName(seg.hdr.codec), st: newCodecState(seg.hdr), next: seg.hdr.first,
		buf: make([]byte, 256<<10), base: HeaderSize, limit: limit,
	}
}

// offset is the file offset just after the last record returned.
func (s *segReader) offset() int64 { return s.base + int64(s.pos) }

// read decodes the next record into r and returns its offset. At the end it
// returns io.EOF (limit or end of file) or errEnd (a zero byte where a
// record would start); a damaged record is a *recordError.
func (s *segReader) read(r *Record) (int64, error) {
	for {
		off := s.base + int64(s.pos)
		if s.pos == s.n {
			if s.eof {
				return off, io.EOF
			}
			if err := s.fill(); err != nil {
				return off, err
			}
			continue
		}
		k, err := s.c.decode(s.buf[s.pos:s.n], &s.st, r)
		if err == nil {
			if r.Seq != s.next {
				// The checksum held, so this is not a torn write.
				return off, &recordError{off: off, end: off + int64(k), seq: s.next,
					reason: fmt.Sprintf("record has seq %d, want %d", r.Seq, s.next), hard: true}
			}
			s.pos += k
			s.next++
			return off, nil
		}
		switch e := err.(type) {
		case *badRecord:
			return off, &recordError{off: off, end: off + int64(e.extent), seq: s.next, reason: e.reason, hard: e.hard}
		}
		if err == errEnd {
			return off, errEnd
		}
		// errShort: the record continues past what is buffered.
		if s.eof {
			return off, &recordError{off: off, end: s.base + int64(s.n), seq: s.next, reason: "record cut short by the end of the file"}
		}
		if err := s.fill(); err != nil {
			return off, err
		}
	}
}

// fill moves the unread bytes to the front and reads more.
func (s *segReader) fill() error {
	if s.pos > 0 {
		copy(s.buf, s.buf[s.pos:s.n])
		s.base += int64(s.pos)
		s.n -= s.pos
		s.pos = 0
	}
	if s.n == len(s.buf) {
		// One record fills the buffer: grow. Codecs reject records over
		// maxRecordSize, so this stops.
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf[:s.n])
		s.buf = nb
	}
	want := min(int64(len(s.buf)-s.n), s.limit-(s.base+int64(s.n)))
	if want <= 0 {
		s.eof = true
		return nil
	}
	m, err := s.f.ReadAt(s.buf[s.n:s.n+int(want)], s.base+int64(s.n))
	s.n += m
	if err == io.EOF || (err == nil && m == 0) {
		s.eof = true
		return nil
	}
	return err
}

// tailScan is what a full read of a segment found.
type tailScan struct {
	records   int        // records up to the last commit record
	commitEnd int64      // offset just after the last commit record (HeaderSize if none)
	commitSt  codecState // codec state there, for the writer to continue from
	lastSeq   uint64     // seq of the last commit record (first-1 if none)
	lastEpoch uint64     // its epoch (header epoch if none)
	dataEnd   int64      // everything from here to the end of the file is zero bytes
	size      int64      // file size
	damage    *recordError
	torn      bool // damage is a torn tail: only zero bytes follow what it claims
}

// scanTail reads a whole segment and classifies its end with etcd's rule:
// a damaged record followed only by zero bytes (or the end of the file) is
// a torn write; anything else is corruption.
func scanTail(fsys fsys.FS, dir string, seg segment) (tailScan, error) {
	f, err := fsys.OpenFile(filepath.Join(dir, seg.name), os.O_RDONLY, 0)
	if err != nil {
		return tailScan{}, fmt.Errorf("wal: open segment %s: %w", seg.name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return tailScan{}, fmt.Errorf("wal: stat segment %s: %w", seg.name, err)
	}
	t := tailScan{commitEnd: HeaderSize, commitSt: newCodecState(seg.hdr), lastSeq: seg.hdr.first - 1,
		lastEpoch: seg.hdr.epoch, size: fi.Size()}
	r := newSegReader(f, seg, fi.Size())
	var rec Record
	count := 0
	for {
		off, err := r.read(&rec)
		if err == nil {
			count++
			if rec.Commit {
				t.records, t.commitEnd, t.commitSt = count, r.offset(), r.st
				t.lastSeq, t.lastEpoch = rec.Seq, rec.Epoch
			}
			continue
		}
		if err == io.EOF {
			t.dataEnd = t.size
			return t, nil
		}
		if err == errEnd {
			zero, zerr := allZero(f, off, t.size)
			if zerr != nil {
				return t, fmt.Errorf("wal: read segment %s: %w", seg.name, zerr)
			}
			switch {
			case zero:
				t.dataEnd = off
			case off == t.commitEnd:
				// A zero where a batch starts, with data after it: the
				// storage writes a batch's first byte last (see
				// mmapStorage.writeAt), so this is a batch whose copy a
				// crash interrupted, in any byte order, not damage.
				t.damage = &recordError{off: off, end: t.size, seq: r.next, reason: "unfinished last batch"}
				t.torn = true
				t.dataEnd = t.size
			default:
				t.damage = &recordError{off: off, end: off + 1, seq: r.next, reason: "zero length byte followed by data", hard: true}
			}
			return t, nil
		}
		re, ok := err.(*recordError)
		if !ok {
			return t, fmt.Errorf("wal: read segment %s: %w", seg.name, err)
		}
		t.damage = re
		if !re.hard {
			zero, zerr := allZero(f, re.end, t.size)
			if zerr != nil {
				return t, fmt.Errorf("wal: read segment %s: %w", seg.name, zerr)
			}
			if zero {
				t.torn = true
				t.dataEnd = min(re.end, t.size)
			}
		}
		return t, nil
	}
}

func (e *recordError) corrupt(seg string) *CorruptError {
	return &CorruptError{Segment: seg, Offset: e.off, Seq: e.seq, Reason: e.reason}
}
