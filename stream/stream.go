package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/rewardpool/rewardpool/wal"
)

// Sink receives committed records in log order, each exactly once, from the
// seq it was added at. Stream is called from one goroutine per sink; it must
// not keep recs (nor modify them) after returning: copy what it needs.
// ItemID may be "" for draws read back from disk; see the package doc.
// Close is called once when the sink is removed, fails, or the streamer closes.
type Sink interface {
	Stream(recs []wal.Record) error
	Close() error
}

// Source reads committed records back, in order, from seq from on. fn's
// *Record may be reused between calls. *wal.Log satisfies it. It must be
// safe to call from several goroutines while the writer appends.
type Source interface {
	Scan(from uint64, fn func(*wal.Record) error) error
}

// SourceFunc adapts a function to Source, e.g. one that forwards to a log
// the caller only gets after opening the engine.
type SourceFunc func(from uint64, fn func(*wal.Record) error) error

// Scan calls f.
func (f SourceFunc) Scan(from uint64, fn func(*wal.Record) error) error { return f(from, fn) }

// Options configure a Streamer. The zero value of each field means its default.
type Options struct {
	// Buffer bounds the records queued between the writer and the
	// streamer. When it is full, Committed drops the batch and the streamer
	// reads it back from the Source. Default 65536.
	Buffer int
	// Window is how many of the newest records the streamer keeps in
	// memory for its sinks. A sink further behind reads from the Source.
	// Default 65536.
	Window int
	// MaxBatch bounds the records of one Sink.Stream call. Default 1024.
	MaxBatch int
	// Logger receives sink failures and catch-up errors. Default slog.Default().
	Logger *slog.Logger
	// Resolve, when set, names the item of a catalog slot. Records with
	// ItemID "" and Item >= 0 (records read back from a binary segment)
	// get ItemID = Resolve(Item) before they reach a sink. It is called
	// from the sink goroutines, concurrently. Default: none; sinks get
	// such records with ItemID "".
	Resolve func(slot int32) string
}

const (
	defaultBuffer   = 65536
	defaultWindow   = 65536
	defaultMaxBatch = 1024
	// maxQueueBatches bounds the queue's channel: a slot per record of
	// Buffer would cost every streamer 512 KiB up front. A hub that falls
	// this many batches behind is dropped onto the Source like one whose
	// queue holds Buffer records.
	maxQueueBatches = 4096
)

var (
	// ErrClosed: the streamer was closed.
	ErrClosed = errors.New("stream: closed")
	// ErrNoSink: no sink has that name.
	ErrNoSink = errors.New("stream: no such sink")
	// ErrDuplicateSink: a sink with that name exists.
	ErrDuplicateSink = errors.New("stream: sink name in use")

	errStop = errors.New("stream: stop scan") // internal: ends a Scan early
)

// batch is one copied batch travelling from the writer to the hub.
type batch struct{ recs []wal.Record }

// Streamer fans committed records out to sinks. Committed is called by the
// writer; every other method is safe for concurrent use.
type Streamer struct {
	src  Source
	opts Options
	log  *slog.Logger

	// Writer side.
	queue     chan *batch
	queued    atomic.Int64  // records in queue
	committed atomic.Uint64 // last seq handed to Committed
	behind    atomic.Uint64 // last seq of the newest dropped batch
	dropped   atomic.Uint64 // batches dropped
	wake      chan struct{} // cap 1: a batch was dropped
	bufs      sync.Pool     // *batch

	// Hub side (hub goroutine only, after Start).
	next     uint64 // next seq the hub needs
	ring     *ring
	catchUps atomic.Uint64
	dups     atomic.Uint64 // batches (or parts) already read from the Source

	mu      sync.Mutex
	started bool
	closed  bool
	sinks   map[string]*sinkRunner
	list    atomic.Pointer[[]*sinkRunner] // copy of sinks for the hub
	stop    chan struct{}
	hubDone chan struct{}
	closing atomic.Bool
}

// New returns a streamer reading dropped or evicted records back from src.
// src is not used before Start. Call Start once the engine is open.
func New(src Source, opts Options) *Streamer {
	if opts.Buffer <= 0 {
		opts.Buffer = defaultBuffer
	}
	if opts.Window <= 0 {
		opts.Window = defaultWindow
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = defaultMaxBatch
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Streamer{
		src:     src,
		opts:    opts,
		log:     opts.Logger,
		queue:   make(chan *batch, min(opts.Buffer, maxQueueBatches)),
		wake:    make(chan struct{}, 1),
		ring:    newRing(opts.Window),
		sinks:   make(map[string]*sinkRunner),
		stop:    make(chan struct{}),
		hubDone: make(chan struct{}),
	}
	s.bufs.New = func() any { return &batch{} }
	s.list.Store(&[]*sinkRunner{})
	return s
}

// Committed hands a durable batch to the streamer. Plug it into
// rewardpool.Options.Committed: it runs on the writer goroutine, never
// blocks and does not keep recs. When the queue is full it drops the batch
// and marks the streamer behind; the records are read back from the Source.
// It must be called by one goroutine at a time, with consecutive batches.
func (s *Streamer) Committed(recs []wal.Record) {
	if len(recs) == 0 {
		return
	}
	last := recs[len(recs)-1].Seq
	s.committed.Store(last)
	if s.closing.Load() {
		return
	}
	n := int64(len(recs))
	if s.queued.Add(n) > int64(s.opts.Buffer) {
		s.queued.Add(-n)
		s.drop(last)
		return
	}
	b := s.bufs.Get().(*batch)
	b.recs = append(b.recs[:0], recs...)
	select {
	case s.queue <- b:
	default: // maxQueueBatches batches queued; never block
		s.queued.Add(-n)
		s.bufs.Put(b)
		s.drop(last)
	}
}

// drop marks the streamer behind up to seq last and wakes the hub.
func (s *Streamer) drop(last uint64) {
	s.dropped.Add(1)
	s.behind.Store(last) // only the writer stores; seqs increase
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start starts streaming after lastCommitted, the engine's last seq when it
// was opened (rewardpool.State.Seq before any draw). Batches handed to
// Committed before Start are kept (or read back) like any other.
func (s *Streamer) Start(lastCommitted uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.started = true
	s.next = lastCommitted + 1
	s.ring.reset(s.next)
	go s.run()
	for _, r := range s.sinks {
		s.launch(r)
	}
}

// run is the hub: queue → ring, filling gaps from the Source.
func (s *Streamer) run() {
	defer close(s.hubDone)
	for {
		select {
		case <-s.stop:
			return
		case b := <-s.queue:
			s.take(b)
		case <-s.wake:
			// Take what is queued first: it precedes the dropped batch.
			for drained := false; !drained; {
				select {
				case b := <-s.queue:
					s.take(b)
				default:
					drained = true
				}
			}
			if to := s.behind.Load(); to >= s.next {
				s.fill(to)
			}
		}
	}
}

// take appends a queued batch to the ring, first reading back any seqs
// between the hub's position and the batch, and skipping what it has.
func (s *Streamer) take(b *batch) {
	recs := b.recs
	s.queued.Add(-int64(len(recs)))
	first, last := recs[0].Seq, recs[len(recs)-1].Seq
	switch {
	case last < s.next:
		s.dups.Add(1)
		recs = nil
	case first > s.next:
		s.fill(first - 1)
	}
	if len(recs) > 0 && first < s.next {
		s.dups.Add(1)
		recs = recs[s.next-first:]
	}
	if len(recs) > 0 {
		s.ring.push(recs)
		s.next = last + 1
		s.notify()
	}
	clear(b.recs) // drop string references before pooling
	b.recs = b.recs[:0]
	s.bufs.Put(b)
}

// fill reads seqs [s.next, to] back from the Source into the ring. Only
// the last Window of them are read: sinks further behind read their own.
// If the Source fails, the hub jumps over the gap: the ring then starts at
// to+1, and sinks that need the missing seqs ask the Source themselves
// (and fail with its error if it still cannot serve them).
func (s *Streamer) fill(to uint64) {
	s.catchUps.Add(1)
	if to-s.next+1 > uint64(s.opts.Window) {
		s.next = to - uint64(s.opts.Window) + 1
		s.ring.reset(s.next)
	}
	buf := make([]wal.Record, 0, min(to-s.next+1, uint64(s.opts.MaxBatch)))
	flush := func() {
		s.ring.push(buf)
		s.notify()
		clear(buf)
		buf = buf[:0]
	}
	err := s.scan(s.next, func(r *wal.Record) error {
		if r.Seq != s.next {
			return fmt.Errorf("stream: source gave seq %d, want %d", r.Seq, s.next)
		}
		buf = append(buf, *r)
		s.next++
		if len(buf) == cap(buf) {
			flush()
		}
		if r.Seq >= to {
			return errStop
		}
		return nil
	})
	flush()
	if err == nil && s.next <= to {
		err = fmt.Errorf("stream: source ended at seq %d, want %d", s.next-1, to)
	}
	if err != nil {
		s.log.Error("stream: cannot read dropped records back; sinks needing them will retry from the source",
			"from", s.next, "to", to, "err", err)
		s.next = to + 1
		s.ring.reset(s.next)
		s.notify()
	}
}

// scan runs src.Scan, turning errStop into nil.
func (s *Streamer) scan(from uint64, fn func(*wal.Record) error) error {
	if s.src == nil {
		return errors.New("stream: no source")
	}
	err := s.src.Scan(from, fn)
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// notify wakes every sink goroutine.
func (s *Streamer) notify() {
	for _, r := range *s.list.Load() {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// AddSink starts feeding sink, from seq fromSeq on (0: from the next
// record the streamer gets). Records before the streamer's window are read
// from the Source first; the sink then follows live. Sinks added before
// Start begin at Start.
func (s *Streamer) AddSink(name string, sink Sink, fromSeq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.sinks[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateSink, name)
	}
	r := &sinkRunner{
		s:    s,
		name: name,
		sink: sink,
		from: fromSeq,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	s.sinks[name] = r
	s.publish()
	if s.started {
		s.launch(r)
	}
	return nil
}

// launch starts r's goroutine; s.mu is held and the streamer started.
func (s *Streamer) launch(r *sinkRunner) {
	from := r.from
	if from == 0 {
		from = s.ring.hiA.Load() + 1
	}
	r.pos.Store(from)
	r.launched.Store(true)
	go r.run()
}

// publish refreshes the hub's copy of the sink list; s.mu is held.
func (s *Streamer) publish() {
	l := make([]*sinkRunner, 0, len(s.sinks))
	for _, r := range s.sinks {
		l = append(l, r)
	}
	s.list.Store(&l)
}

// RemoveSink stops and closes the named sink. It returns the sink's Close
// error, or ErrNoSink.
func (s *Streamer) RemoveSink(name string) error {
	s.mu.Lock()
	r, ok := s.sinks[name]
	if ok {
		delete(s.sinks, name)
		s.publish()
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoSink, name)
	}
	return r.shutdown()
}

// Close stops the streamer and closes every sink. Records not yet delivered
// are not delivered; use WaitSink first to drain. Committed becomes a
// no-op. It returns the sinks' Close errors.
func (s *Streamer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.closing.Store(true)
	started := s.started
	runners := make([]*sinkRunner, 0, len(s.sinks))
	for _, r := range s.sinks {
		runners = append(runners, r)
	}
	clear(s.sinks)
	s.publish()
	s.mu.Unlock()

	close(s.stop)
	if started {
		<-s.hubDone
	}
	var errs []error
	for _, r := range runners {
		if err := r.shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("stream: close sink %q: %w", r.name, err))
		}
	}
	return errors.Join(errs...)
}

// WaitSink waits until the named sink has been given every record up to
// seq, and returns nil; or the sink's error if it failed; or ctx's error.
func (s *Streamer) WaitSink(ctx context.Context, name string, seq uint64) error {
	s.mu.Lock()
	r, ok := s.sinks[name]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoSink, name)
	}
	for {
		r.mu.Lock()
		if r.pos.Load() > seq {
			r.mu.Unlock()
			return nil
		}
		if r.progress == nil {
			r.progress = make(chan struct{})
		}
		ch := r.progress
		r.mu.Unlock()
		select {
		case <-ch:
		case <-r.done:
			if r.pos.Load() > seq {
				return nil
			}
			if err := r.failure(); err != nil {
				return err
			}
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats is a point-in-time view of the streamer.
type Stats struct {
	Committed uint64 // last seq handed to Committed by the writer
	Streamed  uint64 // last seq the streamer holds, in order (the hub's position)
	Dropped   uint64 // batches Committed dropped because the queue was full
	CatchUps  uint64 // times the hub read dropped records back from the Source
	Sinks     []SinkStats
}

// SinkStats describes one sink.
type SinkStats struct {
	Name      string
	Delivered uint64 // last seq given to the sink (0: none yet)
	Lag       uint64 // Committed - Delivered
	CatchUps  uint64 // times it read from the Source (history or evicted)
	Err       error  // why it stopped, if it failed
}

// Stats returns counters and per-sink positions. Cheap: atomics only.
func (s *Streamer) Stats() Stats {
	st := Stats{
		Committed: s.committed.Load(),
		Streamed:  s.ring.hiA.Load(),
		Dropped:   s.dropped.Load(),
		CatchUps:  s.catchUps.Load(),
	}
	for _, r := range *s.list.Load() {
		d := r.pos.Load() - 1
		if !r.started() {
			d = 0
		}
		ss := SinkStats{Name: r.name, Delivered: d, CatchUps: r.catchUps.Load(), Err: r.failure()}
		if st.Committed > d {
			ss.Lag = st.Committed - d
		}
		st.Sinks = append(st.Sinks, ss)
	}
	return st
}

// Position returns the last seq given to the named sink.
func (s *Streamer) Position(name string) (uint64, bool) {
	s.mu.Lock()
	r, ok := s.sinks[name]
	s.mu.Unlock()
	if !ok || !r.started() {
		return 0, ok
	}
	return r.pos.Load() - 1, true
}
