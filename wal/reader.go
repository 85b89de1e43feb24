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
	short    bool // the record runs past the end of the file
	atZero   bool // the record stops at a zero byte (line codecs)
}

func (e *recordError) Error() string { return e.reason }

func newSegReader(f io.ReaderAt, seg segment, limit int64) *segReader {
	return &segReader{
		f: f, c: codecByName(seg.hdr.codec), st: newCodecState(seg.hdr), next: seg.hdr.first,
		buf: make([]byte, readBufSize(limit)), base: HeaderSize, limit: limit,
	}
}

// readBufSize sizes a reader's buffer to the segment: 256 KiB, less for a
// small one (it grows for a record that does not fit).
func readBufSize(limit int64) int {
	return int(min(256<<10, max(4<<10, limit-HeaderSize)))
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
			return off, &recordError{off: off, end: off + int64(e.extent), seq: s.next, reason: e.reason, hard: e.hard, atZero: e.atZero}
		}
		if err == errEnd {
			return off, errEnd
		}
		// errShort: the record continues past what is buffered.
		if s.eof {
			return off, &recordError{off: off, end: s.base + int64(s.n), seq: s.next, reason: "record cut short by the end of the file", short: true}
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

// sectorSize is the unit a power cut writes or loses: an unsynced write
// can come back with any of its sectors still holding the old bytes (zeros,
// in a preallocated or extended segment).
const sectorSize = 512

// minMissing is how many bytes a record must lack, with nothing but zeros
// after it, to read as a write's prefix rather than a damaged record. One:
// a write can stop anywhere. The price is that a flipped bit in a record
// whose checksum happens to end in a zero byte (1 in 256) reads as torn.
const minMissing = 1

// scanTail reads a whole segment and classifies its end. Following etcd's
// torn-write rule, sharpened so that a flipped bit is never mistaken for a
// torn write (see the package documentation, "Torn or damaged"):
//
//   - a record cut short by the end of the file, or whose data ends inside
//     it with only zeros after, is torn (a write's prefix);
//   - a zero byte where the first record after the last commit would start,
//     with data after it, is torn (the mmap storage stores a batch's first
//     byte last, so an unfinished copy always starts with a zero);
//   - a damaged record (or a zero where a record would start) is torn when
//     a sector's worth of it, from a sector boundary, is all zeros: a
//     sector the power cut never wrote;
//   - anything else (a checksum that fails over non-zero bytes, a record
//     whose checksum holds but whose seq is wrong) is damage.
//
// Torn data is never acknowledged: the engine answers only after the fsync
// that makes the whole batch durable, so Open cuts back to the last commit.
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
		var re *recordError
		switch {
		case err == errEnd:
			zero, zerr := allZero(f, off, t.size)
			if zerr != nil {
				return t, fmt.Errorf("wal: read segment %s: %w", seg.name, zerr)
			}
			if zero {
				t.dataEnd = off
				return t, nil
			}
			re = &recordError{off: off, end: off + 1, seq: r.next, reason: "zero length byte followed by data"}
			if off == t.commitEnd {
				// A zero where a batch starts, with data after it: a
				// batch whose copy a crash interrupted (see
				// mmapStorage.writeAt), in any byte order.
				re.reason = "unfinished last batch"
				t.damage, t.torn, t.dataEnd = re, true, t.size
				return t, nil
			}
			re.end = min(off+sectorSize, t.size)
		case errors.As(err, &re):
		default:
			return t, fmt.Errorf("wal: read segment %s: %w", seg.name, err)
		}
		t.damage = re
		if re.hard {
			return t, nil
		}
		torn := re.short
		if !torn {
			// The data ends inside the record: the prefix of a write that
			// failed or was cut, followed by the segment's zeros. A
			// record's last bytes are its checksum (binary) or a newline,
			// never a run of zeros, so a flipped bit does not look so.
			end := dataEnd(f, re.off, t.size)
			torn = end > re.off && (re.end-end >= minMissing || re.atZero && end == re.end)
		}
		if !torn {
			end := re.end
			if re.atZero {
				// The line codecs stop a record at its first zero byte:
				// look at the zeros too, up to a whole sector past them.
				end = min(t.size, end+2*sectorSize)
			}
			torn, err = unwrittenSector(f, re.off, end)
			if err != nil {
				return t, fmt.Errorf("wal: read segment %s: %w", seg.name, err)
			}
		}
		if torn && framingDamaged(f, seg, r.st, re.off, t.size, r.next) {
			// Every byte of the record is there but the one that frames
			// it (a length, a newline): a flipped bit, not a torn write.
			re.reason += " (its framing byte is damaged: the record is otherwise whole)"
			return t, nil
		}
		if torn {
			t.torn = true
			t.dataEnd = dataEnd(f, re.off, t.size)
			re.reason += " (torn write: an unwritten sector)"
		}
		return t, nil
	}
}

// framingDamaged reports whether the damaged record at off is whole but for
// the byte that frames it: with its first byte (a binary length) replaced
// by some other value, or with the last byte before the zeros that follow
// it (a line codec's newline) replaced by a newline, it decodes with a
// valid checksum and the expected seq. A flipped framing byte makes a
// record reach into the zeros after the data, which reads like a write's
// prefix; a real torn record does not check out this way (its lost bytes
// are zeros, and its checksum fails whatever the framing says).
func framingDamaged(f io.ReaderAt, seg segment, st codecState, off, size int64, seq uint64) bool {
	n := min(size-off, maxRecordSize+16)
	buf := make([]byte, n)
	m, _ := f.ReadAt(buf, off)
	buf = buf[:m]
	if len(buf) == 0 {
		return false
	}
	c := codecByName(seg.hdr.codec)
	ok := func(p []byte) bool {
		s := st
		var rec Record
		_, err := c.decode(p, &s, &rec)
		return err == nil && rec.Seq == seq
	}
	if seg.hdr.codec == "binary" {
		orig := buf[0]
		defer func() { buf[0] = orig }()
		for v := 1; v < 256; v++ {
			if buf[0] = byte(v); byte(v) != orig && ok(buf) {
				return true
			}
		}
		return false
	}
	z := bytes.IndexByte(buf, 0)
	if z <= 0 {
		return false
	}
	line := append([]byte(nil), buf[:z]...)
	line[z-1] = '\n'
	return ok(line)
}

// unwrittenSector reports whether some sector-aligned part of [off, end)
// is all zeros: a sector of an unsynced write that the power cut lost.
func unwrittenSector(f io.ReaderAt, off, end int64) (bool, error) {
	b := (off + sectorSize - 1) / sectorSize * sectorSize
	for ; b < end; b += sectorSize {
		zero, err := allZero(f, b, min(b+sectorSize, end))
		if err != nil || zero {
			return zero, err
		}
	}
	return false, nil
}

func (e *recordError) corrupt(seg string) *CorruptError {
	return &CorruptError{Segment: seg, Offset: e.off, Seq: e.seq, Reason: e.reason}
}
