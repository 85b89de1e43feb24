package journal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/rewardpool/rewardpool/internal/fsys"
	"github.com/rewardpool/rewardpool/wal"
)

// Errors.
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("journal: closed")
	// ErrFailed wraps the write or fsync error that stopped the journal:
	// every later commit is refused until the process reopens it, because
	// the kernel may have dropped the failed round's pages.
	ErrFailed = errors.New("journal: failed")
	// ErrCorrupt is damage that is not a torn last round: start-up stops
	// rather than guess which acknowledged batches were lost.
	ErrCorrupt = errors.New("journal: corrupt")
	// ErrInUse is returned by Attach for a pool name another open pool
	// holds: their batches would interleave under one name.
	ErrInUse = errors.New("journal: pool name in use")
	// ErrName is a pool name that the journal cannot store: empty, or
	// longer than 4096 bytes.
	ErrName = errors.New("journal: bad pool name")
)

// Options configures a Journal.
type Options struct {
	// SegmentSize is the size of a segment file, zero-filled ahead of use
	// off the commit path (default 64 MiB). A round larger than a segment
	// gets a segment of its own.
	SegmentSize int64
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger

	// FS is the file system (default: the real one; tests pass the
	// power-loss simulator).
	FS fsys.FS

	syncHook func() error
}

const defaultSegmentSize = 64 << 20

// Journal is a node's commit log, shared by every pool on the node. See
// the package documentation.
type Journal struct {
	dir  string
	opts Options
	fs   fsys.FS
	log  *slog.Logger
	lock io.Closer

	mu       sync.Mutex
	queue    []*waiter
	leading  bool // a caller is running rounds
	failed   error
	closed   bool
	marks    map[string]uint64 // checkpoints waiting for the next round
	ckpt     map[string]uint64 // each pool's durable checkpoint
	syncReq  map[string]func() // asks a pool to make its own log durable
	asked    map[string]bool   // pools asked since their last checkpoint
	segs     []*segInfo        // oldest first; the last one is active
	redo     map[string]*redoState
	claimed  map[string]bool // pool names an open pool holds (Claim)
	known    map[string]bool // pools Open recovered an entry of; nil: none
	idle     *sync.Cond      // signalled when no round runs
	pool     sync.Pool
	janitor  sync.WaitGroup
	deleting bool

	// Leader state: touched only by the caller running rounds.
	afile fsys.File
	off   int64
	size  int64
	round uint64
	frame []byte
	seed  uint32 // the frames' checksum seed (see frame.go)
	// activeName names the segment rounds go to (j.segs is shared with
	// the janitor and read under j.mu).
	activeName string
	prep       chan prepared // the next segment, zero-filled in the background
}

type segInfo struct {
	idx    uint64
	name   string
	maxSeq map[string]uint64 // last seq of each pool's batches in the segment
}

type prepared struct {
	f    fsys.File
	idx  uint64
	name string
	size int64
	err  error
}

type waiter struct {
	buf     []byte
	pool    string
	last    uint64 // last seq of a batch, 0 for marks
	done    chan struct{}
	promote bool // woken to lead the next round
	err     error
}

// redoState is what recovery found for one pool.
type redoState struct {
	ckpt    uint64
	batches [][]wal.Record
}

// Open opens (creating if needed) the journal in dir and reads what it
// holds. Engines opened with it replay their part (Redo) before anything
// commits.
func Open(dir string, opts Options) (*Journal, error) {
	if opts.FS == nil {
		opts.FS = fsys.OS
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = defaultSegmentSize
	}
	opts.SegmentSize = (opts.SegmentSize + sectorSize - 1) / sectorSize * sectorSize
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := fsys.MkdirAll(opts.FS, dir, 0o755); err != nil {
		return nil, fmt.Errorf("journal: create %s: %w", dir, err)
	}
	lock, err := opts.FS.Lock(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("journal: lock %s: %w", dir, err)
	}
	j := &Journal{
		dir: dir, opts: opts, fs: opts.FS, log: opts.Logger, lock: lock,
		ckpt: map[string]uint64{}, marks: map[string]uint64{}, syncReq: map[string]func(){}, asked: map[string]bool{},
		redo: map[string]*redoState{}, claimed: map[string]bool{},
	}
	j.idle = sync.NewCond(&j.mu)
	j.pool.New = func() any { return &waiter{done: make(chan struct{}, 1)} }
	if err := j.loadSeed(); err != nil {
		lock.Close()
		return nil, err
	}
	if err := j.recover(); err != nil {
		lock.Close()
		return nil, err
	}
	if err := j.startSegment(); err != nil {
		lock.Close()
		return nil, err
	}
	return j, nil
}

// Dir is the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// Commit makes a pool's batch durable: it returns once a round holding it
// is written and fsynced. Callers on many pools share rounds, so N pools
// committing at once pay about one fsync, not N. recs must be one whole
// batch (the last record has Commit set).
func (j *Journal) Commit(pool string, recs []wal.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := checkName(pool); err != nil {
		return err
	}
	w := j.pool.Get().(*waiter)
	w.buf = appendBatch(w.buf[:0], pool, recs)
	w.pool, w.last = pool, recs[len(recs)-1].Seq
	err := j.run(w)
	j.put(w)
	return err
}

// Checkpoint records that pool's own log is durable through seq. It goes
// out with the next round; the journal then forgets the pool's batches up
// to seq (segments holding nothing else are deleted).
func (j *Journal) Checkpoint(pool string, seq uint64) {
	if checkName(pool) != nil {
		return // no batch can be stored under it either
	}
	j.mu.Lock()
	j.marks[pool] = max(j.marks[pool], seq)
	j.asked[pool] = false
	j.mu.Unlock()
}

// Knows reports whether the journal can stand for pool's last run: Open
// recovered an entry of the pool, or the pool attached since, or Open
// recovered no entry at all (a new journal, or one closed with every pool
// detached, holds no batches). A
// pool directory whose journaled run lost power and that the journal does
// not know was renamed or moved: its last batches are under another name.
func (j *Journal) Knows(pool string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.known == nil || j.known[pool]
}

// Claim reserves pool's name for one open pool, before its Redo: two
// pools committing under one name would interleave their batches, which
// the next Open refuses (or replays onto the wrong log). It fails with
// ErrInUse while another holds it. Detach and Release give it back.
func (j *Journal) Claim(pool string) error {
	if err := checkName(pool); err != nil {
		return err
	}
	j.mu.Lock()
	if j.claimed[pool] {
		j.mu.Unlock()
		return fmt.Errorf("%w: %q is held by another open pool", ErrInUse, pool)
	}
	j.claimed[pool] = true
	_, known := j.ckpt[pool]
	j.mu.Unlock()
	if !known {
		// Record the name before the pool's directory says it runs with
		// the journal (Knows, at the next Open, must not take the pool
		// for a stranger). Every segment's first round carries it on.
		if err := j.mark(entryCheckpoint, pool, 0); err != nil {
			j.Release(pool)
			return err
		}
	}
	return nil
}

// Release gives back a name Claim reserved without a clean Detach (an
// Open that failed, or a pool that closed after a failure): whatever the
// journal holds for it stays, to be replayed by a later Redo.
func (j *Journal) Release(pool string) {
	j.mu.Lock()
	delete(j.claimed, pool)
	delete(j.syncReq, pool)
	j.mu.Unlock()
}

// Attach starts a pool's run: its log is durable through last and holds
// everything the journal had for it (Redo ran), so the journal forgets
// its earlier entries. It returns once that is durable. syncLog, if not
// nil, is called (on another goroutine) when the journal wants the pool's
// log fsynced and checkpointed, to delete old segments.
func (j *Journal) Attach(pool string, last uint64, syncLog func()) error {
	j.mu.Lock()
	if syncLog != nil {
		j.syncReq[pool] = syncLog
	}
	j.asked[pool] = false // an ask that went to an earlier run is void
	if j.known != nil {
		j.known[pool] = true // its run is in the journal from now on
	}
	j.mu.Unlock()
	return j.mark(entryReset, pool, last)
}

// Detach ends a pool's run after its log was fsynced through last (a
// clean close), and returns once that is durable.
func (j *Journal) Detach(pool string, last uint64) error {
	j.mu.Lock()
	delete(j.syncReq, pool)
	j.mu.Unlock()
	defer j.Release(pool)
	return j.mark(entryCheckpoint, pool, last)
}

// Forget drops what the journal holds for pool before its directory is
// replaced (a replica's bootstrap): the old batches must never be replayed
// onto the new log.
func (j *Journal) Forget(pool string) error { return j.mark(entryReset, pool, 0) }

func (j *Journal) mark(typ byte, pool string, seq uint64) error {
	if err := checkName(pool); err != nil {
		return err
	}
	w := j.pool.Get().(*waiter)
	w.buf = appendMark(w.buf[:0], typ, pool, seq)
	w.pool, w.last = pool, 0
	err := j.run(w)
	j.put(w)
	return err
}

// checkName refuses a name the decoder would refuse: written in a round,
// it would make the next Open fail for every pool.
func checkName(pool string) error {
	if pool == "" || len(pool) > maxName {
		return fmt.Errorf("%w: %d bytes (1 to %d)", ErrName, len(pool), maxName)
	}
	return nil
}

func (j *Journal) put(w *waiter) {
	w.promote, w.err = false, nil
	if cap(w.buf) > 1<<20 {
		w.buf = nil // a huge batch's buffer is not worth keeping
	}
	j.pool.Put(w)
}

// run queues w and waits for the round that carries it. The first caller
// to find no round running leads: it writes and fsyncs everything queued,
// answers the others, and hands the lead to a waiter queued meanwhile.
// With one pool the committing writer does its own fsync (no hand-off);
// with many, one fsync covers them all.
func (j *Journal) run(w *waiter) error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	if j.failed != nil {
		err := j.failed
		j.mu.Unlock()
		return err
	}
	j.queue = append(j.queue, w)
	lead := !j.leading
	j.leading = true
	j.mu.Unlock()
	if !lead {
		// Woken once: either the round that carried w is done, or the lead
		// passed to w (w is then in the queue the next round takes).
		<-w.done
		if !w.promote {
			return w.err
		}
		w.promote = false
	}
	j.lead(w)
	return w.err
}

// lead runs one round for everything queued, then passes the lead on.
func (j *Journal) lead(self *waiter) {
	j.mu.Lock()
	batch := j.queue
	j.queue = nil
	var marks []byte
	for p, seq := range j.marks {
		marks = appendMark(marks, entryCheckpoint, p, seq)
	}
	clear(j.marks)
	failed := j.failed
	j.mu.Unlock()

	err := failed
	if err == nil {
		err = j.writeRound(batch, marks)
	}

	j.mu.Lock()
	if err != nil && j.failed == nil {
		j.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		j.log.Error("journal: commit round failed; refusing commits until restart", "dir", j.dir, "err", err)
	}
	if err == nil {
		seg := j.segs[len(j.segs)-1]
		for _, w := range batch {
			if w.last > seg.maxSeq[w.pool] {
				seg.maxSeq[w.pool] = w.last
			}
		}
		j.applyMarks(batch, marks)
		j.retain()
	}
	var next *waiter
	if len(j.queue) > 0 {
		next = j.queue[0]
	} else {
		j.leading = false
		j.idle.Broadcast()
	}
	j.mu.Unlock()

	for _, w := range batch {
		w.err = err
		if err != nil {
			w.err = j.failedErr(err)
		}
		if w != self {
			w.done <- struct{}{}
		}
	}
	if next != nil {
		next.promote = true
		next.done <- struct{}{}
	}
}

func (j *Journal) failedErr(err error) error {
	if errors.Is(err, ErrFailed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrFailed, err)
}

// applyMarks updates the durable checkpoints from a round's entries.
func (j *Journal) applyMarks(batch []*waiter, marks []byte) {
	apply := func(p []byte) {
		for len(p) > 0 {
			d := decoder{p: p}
			typ := d.byte()
			pool := d.str(maxName)
			if typ == entryBatch || d.err != nil {
				return
			}
			seq := d.uvarint()
			p = d.p
			switch typ {
			case entryCheckpoint:
				j.ckpt[pool] = max(j.ckpt[pool], seq)
			case entryReset:
				j.ckpt[pool] = seq
				// Batches recovered for the pool and not redone yet are
				// for a log that is gone or already holds them.
				delete(j.redo, pool)
				for _, s := range j.segs {
					delete(s.maxSeq, pool)
				}
			}
		}
	}
	for _, w := range batch {
		if w.last == 0 {
			apply(w.buf)
		}
	}
	apply(marks)
}

// writeRound writes one frame holding the batches and marks, and fsyncs.
func (j *Journal) writeRound(batch []*waiter, marks []byte) error {
	f := append(j.frame[:0], frameStart[:]...)
	for _, w := range batch {
		f = append(f, w.buf...)
	}
	f = append(f, marks...)
	if j.off > 0 && j.off+int64(len(f))+sectorSize > j.size {
		if err := j.rotate(); err != nil {
			return err
		}
	}
	if j.off == 0 {
		// Every segment (the first of a run too) starts with every pool's
		// checkpoint, so older segments can go without taking the
		// checkpoints, or the pools' names (Knows), with them.
		j.mu.Lock()
		base := j.baseMarks(nil)
		j.mu.Unlock()
		f = append(f[:frameHeader+8], append(base, f[frameHeader+8:]...)...)
	}
	j.round++
	f = sealFrame(f, j.round, j.seed)
	j.frame = f
	if _, err := j.afile.WriteAt(f, j.off); err != nil {
		return fmt.Errorf("journal: write %s at %d: %w", j.activeName, j.off, err)
	}
	if h := j.opts.syncHook; h != nil {
		if err := h(); err != nil {
			return fmt.Errorf("journal: sync %s: %w", j.activeName, err)
		}
	}
	if err := j.afile.Datasync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", j.activeName, err)
	}
	j.off += int64(len(f))
	if j.off > j.size {
		j.size = j.off
	}
	return nil
}

// frameStart is a frame's header and round, filled in by sealFrame.
var frameStart [frameHeader + 8]byte

// baseMarks appends a checkpoint entry for every pool the journal knows.
func (j *Journal) baseMarks(dst []byte) []byte {
	names := make([]string, 0, len(j.ckpt))
	for p := range j.ckpt {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		dst = appendMark(dst, entryCheckpoint, p, j.ckpt[p])
	}
	return dst
}

// retain deletes the oldest segments whose every batch is covered by a
// durable checkpoint, and asks the pools that hold one back to checkpoint.
// Called with j.mu held.
func (j *Journal) retain() {
	n := 0
	for _, s := range j.segs[:len(j.segs)-1] {
		lagging := false
		for p, seq := range s.maxSeq {
			if j.ckpt[p] >= seq {
				continue
			}
			lagging = true
			if fn := j.syncReq[p]; fn != nil && !j.asked[p] {
				j.asked[p] = true
				go fn()
			}
		}
		if lagging {
			break
		}
		n++
	}
	if n == 0 || j.deleting {
		return
	}
	old := append([]*segInfo(nil), j.segs[:n]...)
	j.segs = append(j.segs[:0:0], j.segs[n:]...)
	j.deleting = true
	j.janitor.Add(1)
	go func() {
		defer j.janitor.Done()
		var left []*segInfo
		for i, s := range old {
			if err := fsys.Remove(j.fs, filepath.Join(j.dir, s.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				// Stop here: the segments left must stay a run with no
				// gap before the newer ones, or Open finds rounds missing.
				// A later round tries them again.
				j.log.Warn("journal: delete old segment", "segment", s.name, "err", err)
				left = old[i:]
				break
			}
		}
		j.mu.Lock()
		if len(left) > 0 {
			j.segs = append(append([]*segInfo(nil), left...), j.segs...)
		}
		j.deleting = false
		j.mu.Unlock()
	}()
}

// Close waits for running rounds and closes the journal. If every pool's
// log covers its batches (each detached), the segments are deleted: the
// next start has nothing to replay.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	for j.leading {
		j.idle.Wait() // rounds in flight finish; new callers are refused
	}
	// A deletion under way may give segments back to j.segs.
	j.mu.Unlock()
	j.janitor.Wait()
	j.mu.Lock()
	covered := j.failed == nil
	for _, s := range j.segs {
		for p, seq := range s.maxSeq {
			if j.ckpt[p] < seq {
				covered = false
			}
		}
	}
	segs := j.segs
	j.mu.Unlock()
	var err error
	if j.afile != nil {
		err = j.afile.Close()
	}
	if p, ok := <-j.prepCh(); ok && p.f != nil {
		p.f.Close()
		fsys.Remove(j.fs, filepath.Join(j.dir, p.name))
	}
	if covered {
		for _, s := range segs {
			if rerr := fsys.Remove(j.fs, filepath.Join(j.dir, s.name)); rerr != nil {
				// Oldest first, and no further: what is left has no gap.
				err = errors.Join(err, fmt.Errorf("journal: delete %s: %w", s.name, rerr))
				break
			}
		}
	}
	if lerr := j.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

func (j *Journal) prepCh() chan prepared {
	if j.prep == nil {
		c := make(chan prepared)
		close(c)
		return c
	}
	return j.prep
}

func segName(idx uint64) string { return fmt.Sprintf("journal-%016x.log", idx) }

func parseSegName(name string) (uint64, bool) {
	var idx uint64
	if !strings.HasPrefix(name, "journal-") || !strings.HasSuffix(name, ".log") || len(name) != len("journal-")+16+len(".log") {
		return 0, false
	}
	if _, err := fmt.Sscanf(name[len("journal-"):len("journal-")+16], "%016x", &idx); err != nil {
		return 0, false
	}
	return idx, true
}
