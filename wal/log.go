package wal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// Log is the write-ahead log of one pool. One goroutine (the writer) calls
// Append, Sync, DeleteBefore and Close; Scan, Segments and the Seq accessors
// may be called from any goroutine.
type Log struct {
	dir  string
	opts Options
	log  *slog.Logger
	fs   fsys.FS
	lock io.Closer // one process (and one Log) per directory

	mu        sync.Mutex // guards the fields below for readers
	segs      []segment  // oldest first; the last one is active
	end       int64      // bytes of data in the active segment
	lastSeq   uint64
	lastEpoch uint64
	closed    bool

	// Writer-only state.
	active   segment
	st       storage // nil when there is no active segment
	codec    codec   // codec of new segments
	enc      codecState
	next     codecState // enc after the batch being appended (a field: a local would escape through the codec interface)
	buf      []byte     // reused encode buffer: Append does not allocate once it has grown
	synced   int64      // active segment is durable up to here
	poisoned error

	appended atomic.Uint64 // record bytes appended since Open, for metrics
	torn     int64         // bytes of a torn tail cut at Open
	rotate   bool          // the active segment's codec is not opts.Codec
}

// Open opens the log in dir, creating the directory if needed. See the
// package documentation for what it checks and repairs.
func Open(dir string, opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	mkdir := fsys.MkdirAll
	if opts.ParentSyncs {
		mkdir = func(fs fsys.FS, dir string, perm os.FileMode) error {
			_, err := fsys.Mkdirs(fs, dir, perm)
			return err
		}
	}
	if err := mkdir(opts.FS, dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	lock, err := lockDir(opts.FS, dir)
	if err != nil {
		return nil, err
	}
	// buf starts empty and grows to the largest batch: an idle log does
	// not hold a buffer sized for a busy one.
	l := &Log{dir: dir, opts: opts, log: opts.Logger, fs: opts.FS, lock: lock, codec: codecByName(opts.Codec)}
	if err := l.open(); err != nil {
		l.closeFiles()
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	removeTemps(l.fs, l.dir)
	names, err := listSegments(l.fs, l.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		seg, err := readSegmentHeader(l.fs, l.dir, name)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, seg)
	}
	for len(l.segs) > 0 {
		seg := l.segs[len(l.segs)-1]
		t, err := scanTail(l.fs, l.dir, seg)
		if err != nil {
			return err
		}
		if t.damage != nil && !t.torn {
			return t.damage.corrupt(seg.name)
		}
		if t.dataEnd > t.commitEnd {
			// A torn write, or the records of a batch whose commit record
			// never landed: the caller was never told they were durable.
			l.log.Warn("wal: cutting torn tail", "segment", seg.name, "offset", t.commitEnd,
				"bytes", t.dataEnd-t.commitEnd, "last_seq", t.lastSeq)
			l.torn += t.dataEnd - t.commitEnd
		}
		if t.records == 0 && len(l.segs) > 1 {
			// No committed record: the segment adds nothing, and removing it
			// makes the previous segment the active one again.
			if err := fsys.Remove(l.fs, filepath.Join(l.dir, seg.name)); err != nil {
				return fmt.Errorf("wal: remove empty segment %s: %w", seg.name, err)
			}
			l.segs = l.segs[:len(l.segs)-1]
			continue
		}
		if err := l.openActive(seg, t.commitEnd, t.dataEnd); err != nil {
			return err
		}
		// What Open read may be only in the page cache: written before a
		// kill -9, or left there by an fsync that failed. Make it durable
		// before anything is built on it (a later segment, a reply), or a
		// power cut could take it back from under the records after it.
		if err := l.st.sync(HeaderSize, t.commitEnd); err != nil {
			return fmt.Errorf("wal: sync segment %s: %w", seg.name, err)
		}
		if err := syncDir(l.fs, l.dir); err != nil {
			return err
		}
		l.enc = t.commitSt
		l.lastSeq, l.lastEpoch = t.lastSeq, t.lastEpoch
		l.rotate = seg.hdr.codec != l.codec.name()
		break
	}
	return nil
}

// openActive opens seg for appending at end, first cutting [end, dirtyEnd).
func (l *Log) openActive(seg segment, end, dirtyEnd int64) error {
	f, err := l.fs.OpenFile(filepath.Join(l.dir, seg.name), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: open segment %s: %w", seg.name, err)
	}
	var st storage
	if l.opts.Storage == "mmap" {
		ms, err := newMmapStorage(f, l.opts.SegmentSize)
		if err != nil {
			f.Close()
			return fmt.Errorf("wal: open segment %s: %w", seg.name, err)
		}
		st = ms
	} else {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("wal: open segment %s: %w", seg.name, err)
		}
		st = newFileStorage(f, l.opts.SegmentSize, l.opts.Preallocate, fi.Size())
		if fi.Size()-max(end, dirtyEnd) > maxReserveStep {
			// Zeros reserved far past the data: a whole segment that an
			// earlier version reserved up front. Give the disk back (every
			// later Open would read it again); appends reserve anew.
			dirtyEnd = fi.Size()
		}
	}
	if dirtyEnd > end {
		if err := st.cut(end, dirtyEnd); err != nil {
			st.close()
			return fmt.Errorf("wal: cut segment %s at %d: %w", seg.name, end, err)
		}
	}
	l.active, l.st, l.end, l.synced = seg, st, end, end
	return nil
}

// LastSeq is the seq of the last record in the log, 0 if it is empty.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSeq
}

// FirstSeq is the first seq still on disk, 0 if the log holds no record.
func (l *Log) FirstSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.segs) == 0 || l.lastSeq < l.segs[0].hdr.first {
		return 0
	}
	return l.segs[0].hdr.first
}

// LastEpoch is the epoch of the last record (of the active segment's header
// if it holds none yet), 0 if the log is empty.
func (l *Log) LastEpoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastEpoch
}

// Append writes one batch with one write call; see the package doc. Records
// must have consecutive seqs from LastSeq()+1 (any start on a log with no
// segment) and the last one Commit set. A rejected batch leaves the log as
// it was; a failed write poisons it.
func (l *Log) Append(recs []Record) error {
	if l.poisoned != nil {
		return fmt.Errorf("%w: %w", ErrPoisoned, l.poisoned)
	}
	if l.st == nil && l.isClosed() {
		return ErrClosed
	}
	if len(recs) == 0 {
		return nil
	}
	want := l.lastSeq + 1
	if l.st == nil && l.lastSeq == 0 {
		want = recs[0].Seq
	}
	for i := range recs {
		r := &recs[i]
		if r.Seq != want+uint64(i) || r.Seq == 0 {
			return fmt.Errorf("%w: record %d has seq %d, want %d", ErrRejected, i, r.Seq, want+uint64(i))
		}
		if err := checkRecord(l.codec, r); err != nil {
			return fmt.Errorf("%w: record %d (seq %d): %w", ErrRejected, i, r.Seq, err)
		}
	}
	if !recs[len(recs)-1].Commit {
		return fmt.Errorf("%w: last record (seq %d) must have Commit set", ErrRejected, recs[len(recs)-1].Seq)
	}

	l.next = l.enc
	buf := l.encode(recs, &l.next)
	hasRecords := l.st != nil && l.lastSeq >= l.active.hdr.first
	n := int64(len(buf))
	if l.st == nil || l.rotate || (hasRecords && l.end+n > l.st.capacity()) {
		// The batch goes into the new segment before its one fsync.
		if err := l.newSegment(recs); err != nil {
			return l.poison(err)
		}
		return nil
	}
	if l.end+n > l.st.capacity() {
		// An empty segment too small for this batch (mmap): grow it.
		if err := l.st.grow(l.end + n); err != nil {
			return l.poison(fmt.Errorf("wal: grow segment %s: %w", l.active.name, err))
		}
	}
	if err := l.st.reserve(l.end + n); err != nil {
		return l.poison(fmt.Errorf("wal: reserve segment %s: %w", l.active.name, err))
	}
	if err := l.write(buf, l.end); err != nil {
		return l.poison(fmt.Errorf("wal: write segment %s at %d: %w", l.active.name, l.end, err))
	}
	l.enc = l.next
	l.appended.Add(uint64(n))
	last := &recs[len(recs)-1]
	l.mu.Lock()
	l.end += n
	l.lastSeq, l.lastEpoch = last.Seq, last.Epoch
	l.mu.Unlock()
	return nil
}

// TornBytes is how many bytes of a torn tail (an unfinished last batch)
// Open cut; 0 when the log ended cleanly.
func (l *Log) TornBytes() int64 { return l.torn }

// AppendedBytes returns the record bytes appended since Open (segment
// headers not included). Safe from any goroutine.
func (l *Log) AppendedBytes() uint64 { return l.appended.Load() }

func (l *Log) encode(recs []Record, st *codecState) []byte {
	buf := l.buf[:0]
	for i := range recs {
		buf = l.codec.encode(buf, st, &recs[i])
	}
	l.buf = buf // keep the grown buffer
	return buf
}

// write applies the Write hook, then writes p at off.
func (l *Log) write(p []byte, off int64) error {
	if h := l.opts.Hooks.Write; h != nil {
		if keep, err := h(p); err != nil {
			keep = max(0, min(keep, len(p)))
			if keep > 0 {
				l.st.writePartial(p, keep, off)
			}
			return err
		}
	}
	return l.st.writeAt(p, off)
}

// syncHook runs the Sync failpoint.
func (l *Log) syncHook() error {
	if h := l.opts.Hooks.Sync; h != nil {
		return h()
	}
	return nil
}

// Sync makes everything appended durable. A failure poisons the log: the
// kernel may have dropped the dirty pages, so a retry could lie.
func (l *Log) Sync() error {
	if l.poisoned != nil {
		return fmt.Errorf("%w: %w", ErrPoisoned, l.poisoned)
	}
	if l.st == nil {
		if l.isClosed() {
			return ErrClosed
		}
		return nil
	}
	if l.synced == l.end {
		return nil
	}
	if err := l.syncActive(); err != nil {
		return l.poison(err)
	}
	return nil
}

func (l *Log) syncActive() error {
	if err := l.syncHook(); err != nil {
		return fmt.Errorf("wal: sync segment %s: %w", l.active.name, err)
	}
	if err := l.st.sync(l.synced, l.end); err != nil {
		return fmt.Errorf("wal: sync segment %s: %w", l.active.name, err)
	}
	l.synced = l.end
	return nil
}

func (l *Log) poison(err error) error {
	l.poisoned = err
	return err
}

// newSegment seals the active segment and starts one with the batch recs
// in it. The new file, header and batch, is built under a temporary name,
// fsynced once and renamed into place, so a crash leaves either no segment
// or a complete header, and the batch is durable when it returns (which
// spares a new pool, or a rotation, the separate fsync of its first batch).
func (l *Log) newSegment(recs []Record) error {
	first, epoch := recs[0].Seq, recs[0].Epoch
	replace := false
	if l.st != nil {
		// Sealing: the old segment must be durable before a later one
		// exists, because Open only checks the tail of the last segment.
		if l.synced < l.end {
			if err := l.syncActive(); err != nil {
				return err
			}
		}
		replace = l.lastSeq < l.active.hdr.first // empty: the new one takes its name
		err := l.st.close()
		l.st = nil
		if err != nil {
			return fmt.Errorf("wal: close segment %s: %w", l.active.name, err)
		}
	}
	seg := segment{name: segmentName(first), hdr: header{codec: l.codec.name(), first: first, epoch: epoch}}
	// The deltas restart at the new segment.
	l.next = newCodecState(seg.hdr)
	buf := l.encode(recs, &l.next)
	n := int64(len(buf))
	path := filepath.Join(l.dir, seg.name)
	f, err := l.fs.OpenFile(path+".tmp", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("wal: create segment %s: %w", seg.name, err)
	}
	size := max(l.opts.SegmentSize, HeaderSize+n)
	var st storage
	switch {
	case l.opts.Storage == "mmap":
		st, err = newMmapStorage(f, size)
	case l.opts.zeroFill:
		err = preallocate(f, size, true)
		st = newFileStorage(f, l.opts.SegmentSize, false, size)
	case l.opts.Preallocate:
		// Reserve the header and the first batch now, the rest as the
		// segment fills (fileStorage.reserve).
		fs := newFileStorage(f, l.opts.SegmentSize, true, 0)
		err = fs.reserve(HeaderSize + n)
		st = fs
	default:
		st = newFileStorage(f, l.opts.SegmentSize, false, 0)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("wal: create segment %s: %w", seg.name, err)
	}
	l.st, l.active = st, seg
	if err := l.write(seg.hdr.encode(), 0); err != nil {
		return fmt.Errorf("wal: write header of %s: %w", seg.name, err)
	}
	if err := l.write(buf, HeaderSize); err != nil {
		return fmt.Errorf("wal: write segment %s at %d: %w", seg.name, HeaderSize, err)
	}
	if err := l.syncHook(); err != nil {
		return fmt.Errorf("wal: sync segment %s: %w", seg.name, err)
	}
	if l.opts.Storage == "mmap" {
		// The header and the batch are in the mapping, which only msync
		// writes back. For the file storage the fsync below covers the
		// data as well: one flush instead of two for every new segment
		// (and new pool).
		if err := st.sync(0, HeaderSize+n); err != nil {
			return fmt.Errorf("wal: sync segment %s: %w", seg.name, err)
		}
	}
	if err := f.Sync(); err != nil { // the data, size and allocation
		return fmt.Errorf("wal: sync segment %s: %w", seg.name, err)
	}
	if err := l.syncHook(); err != nil {
		return fmt.Errorf("wal: sync dir %s: %w", l.dir, err)
	}
	if err := fsys.Rename(l.fs, path+".tmp", path); err != nil {
		return fmt.Errorf("wal: create segment %s: %w", seg.name, err)
	}
	l.enc = l.next
	l.appended.Add(uint64(n))
	l.synced = HeaderSize + n
	l.rotate = false
	l.mu.Lock()
	if replace {
		l.segs[len(l.segs)-1] = seg
	} else {
		l.segs = append(l.segs, seg)
	}
	l.end = HeaderSize + n
	last := &recs[len(recs)-1]
	l.lastSeq, l.lastEpoch = last.Seq, last.Epoch
	l.mu.Unlock()
	l.log.Info("wal: new segment", "segment", seg.name, "dir", l.dir)
	return nil
}

// DeleteBefore removes whole segments all of whose records have Seq < seq,
// oldest first, never the active segment and never one of the keep most
// recent. It returns how many it removed.
func (l *Log) DeleteBefore(seq uint64, keep int) (int, error) {
	return l.Retain(seq, Retention{Segments: keep})
}

// Retention says what DeleteBefore and Retain keep even when a snapshot
// covers it, so replicas that fall behind can still catch up from disk.
type Retention struct {
	Segments int   // keep at least this many newest segments
	Bytes    int64 // keep the newest segments until they hold at least this many bytes on disk
}

// Retain removes whole segments all of whose records have Seq < seq, oldest
// first, as long as what remains still satisfies r. Never the active
// segment. Returns how many were removed.
func (l *Log) Retain(seq uint64, r Retention) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	keep := max(r.Segments, 1) // the active segment
	var newer int64            // bytes of the segments after the candidate
	if r.Bytes > 0 {
		for _, s := range l.segs[1:] {
			newer += l.segmentBytes(s)
		}
	}
	n := 0
	for len(l.segs)-n > keep && l.segs[n+1].hdr.first <= seq && newer >= r.Bytes {
		if err := l.fs.Remove(filepath.Join(l.dir, l.segs[n].name)); err != nil {
			err = fmt.Errorf("wal: delete segment %s: %w", l.segs[n].name, err)
			l.segs = l.segs[n:]
			return n, errors.Join(err, syncDir(l.fs, l.dir))
		}
		n++
		if r.Bytes > 0 && n < len(l.segs) {
			newer -= l.segmentBytes(l.segs[n])
		}
	}
	if n == 0 {
		return 0, nil
	}
	l.log.Info("wal: deleted segments", "count", n, "before", seq, "dir", l.dir)
	l.segs = append([]segment(nil), l.segs[n:]...)
	return n, syncDir(l.fs, l.dir)
}

// segmentBytes is a segment's size on disk (preallocated space included:
// it is disk the operator pays for).
func (l *Log) segmentBytes(s segment) int64 {
	fi, err := l.fs.Stat(filepath.Join(l.dir, s.name))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Segments describes the segments on disk, oldest first.
func (l *Log) Segments() []SegmentInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, s := range l.segs {
		out[i] = SegmentInfo{Name: s.name, First: s.hdr.first}
		if i == len(l.segs)-1 && !l.closed {
			out[i].Size = l.end
		} else if fi, err := l.fs.Stat(filepath.Join(l.dir, s.name)); err == nil {
			out[i].Size = fi.Size()
		}
	}
	return out
}

// Close syncs (unless the log is poisoned) and closes the log.
func (l *Log) Close() error {
	if l.isClosed() {
		return ErrClosed
	}
	var err error
	if l.poisoned == nil && l.st != nil && l.synced < l.end {
		err = l.syncActive()
	}
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return errors.Join(err, l.closeFiles())
}

func (l *Log) closeFiles() error {
	var err error
	if l.st != nil {
		err = l.st.close()
		l.st = nil
	}
	if l.lock != nil {
		err = errors.Join(err, l.lock.Close()) // releases the flock
		l.lock = nil
	}
	return err
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// lockDir locks dir/LOCK so two processes (or two Logs in one process)
// never write the same log.
func lockDir(fs fsys.FS, dir string) (io.Closer, error) {
	l, err := fs.Lock(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("wal: lock %s: log is in use by another process or Log: %w", dir, err)
	}
	return l, nil
}

// removeTemps deletes segment files left half-created by a crash during
// rotation or repair; they never held a record anyone was told about.
func removeTemps(fs fsys.FS, dir string) {
	ents, _ := fs.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			fs.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
