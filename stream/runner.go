package stream

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/rewardpool/rewardpool/wal"
)

// sinkRunner is one sink, its position and its goroutine.
type sinkRunner struct {
	s    *Streamer
	name string
	sink Sink
	from uint64 // requested first seq (0: live)

	pos      atomic.Uint64 // next seq to deliver
	launched atomic.Bool
	catchUps atomic.Uint64
	wake     chan struct{} // cap 1: the ring grew
	stop     chan struct{}
	done     chan struct{} // closed when the goroutine exits
	stopOnce sync.Once
	buf      []wal.Record // reused between Stream calls

	mu       sync.Mutex
	err      error         // why the sink failed
	closed   bool          // sink.Close was called
	closeErr error         // its result
	progress chan struct{} // closed when pos advances; made by waiters
}

func (r *sinkRunner) started() bool { return r.launched.Load() }

func (r *sinkRunner) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// run delivers from the ring, or from the Source when the sink's position
// is no longer in the ring.
func (r *sinkRunner) run() {
	defer close(r.done)
	s := r.s
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		pos := r.pos.Load()
		if pos > s.ring.hiA.Load() {
			select {
			case <-r.wake:
			case <-r.stop:
				return
			}
			continue
		}
		buf, ok := s.ring.read(pos, r.buf[:0], s.opts.MaxBatch)
		r.buf = buf
		if !ok {
			if err := r.catchUp(pos); err != nil {
				if !errors.Is(err, errStop) {
					r.fail(err)
				}
				return
			}
			continue
		}
		if len(buf) == 0 {
			continue
		}
		if err := r.deliver(buf); err != nil {
			r.fail(err)
			return
		}
	}
}

// catchUp reads from the Source, from pos on, until the sink is back
// inside the ring (with a margin) or the Source has nothing more that the
// streamer knows is committed. errStop means the runner was stopped.
func (r *sinkRunner) catchUp(pos uint64) error {
	s := r.s
	r.catchUps.Add(1)
	target := s.ring.hiA.Load() // committed: the hub has it
	margin := uint64(s.opts.Window / 4)
	next := pos
	buf := r.buf[:0]
	var sinkErr, stopped error
	err := s.scan(pos, func(rec *wal.Record) error {
		if rec.Seq > target {
			if target = s.ring.hiA.Load(); rec.Seq > target {
				return errStop
			}
		}
		if rec.Seq != next {
			return fmt.Errorf("stream: source gave seq %d, want %d", rec.Seq, next)
		}
		buf = append(buf, *rec)
		next++
		if len(buf) < s.opts.MaxBatch {
			return nil
		}
		if err := r.deliver(buf); err != nil {
			sinkErr = err
			return errStop
		}
		buf = buf[:0]
		select {
		case <-r.stop:
			stopped = errStop
			return errStop
		default:
		}
		if next >= s.ring.loA.Load()+margin {
			return errStop // the ring has it from here
		}
		return nil
	})
	r.buf = buf
	switch {
	case sinkErr != nil:
		return sinkErr
	case stopped != nil:
		return stopped
	case err != nil:
		return fmt.Errorf("stream: read from seq %d: %w", next, err)
	}
	if len(buf) > 0 {
		if err := r.deliver(buf); err != nil {
			return err
		}
	}
	if next == pos {
		return fmt.Errorf("stream: source has no record at seq %d (committed up to %d)", pos, target)
	}
	return nil
}

// deliver resolves item names, calls Stream and advances the position.
func (r *sinkRunner) deliver(buf []wal.Record) error {
	if resolve := r.s.opts.Resolve; resolve != nil {
		for i := range buf {
			if buf[i].ItemID == "" && buf[i].Item >= 0 {
				buf[i].ItemID = resolve(buf[i].Item)
			}
		}
	}
	if err := r.sink.Stream(buf); err != nil {
		return fmt.Errorf("stream: sink %q at seq %d: %w", r.name, buf[0].Seq, err)
	}
	r.pos.Store(buf[len(buf)-1].Seq + 1)
	r.mu.Lock()
	if r.progress != nil {
		close(r.progress)
		r.progress = nil
	}
	r.mu.Unlock()
	return nil
}

// fail records err, logs it and closes the sink.
func (r *sinkRunner) fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	r.s.log.Error("stream: sink stopped", "sink", r.name, "delivered", r.pos.Load()-1, "err", err)
	r.closeSink()
}

// closeSink closes the sink once and returns its Close error.
func (r *sinkRunner) closeSink() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.closeErr = r.sink.Close()
	}
	return r.closeErr
}

// shutdown stops the goroutine (if it runs), waits for it and closes the sink.
func (r *sinkRunner) shutdown() error {
	r.stopOnce.Do(func() { close(r.stop) })
	if r.started() {
		<-r.done
	}
	return r.closeSink()
}
