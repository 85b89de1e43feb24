package stream_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/stream"
	"github.com/rewardpool/rewardpool/wal"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testItems() []rewardpool.Item {
	return []rewardpool.Item{
		{ID: "gold", Quantity: 50, Weight: 1 * rewardpool.WeightUnit},
		{ID: "silver", Quantity: rewardpool.Unlimited, Weight: 3 * rewardpool.WeightUnit},
		{ID: "bronze", Quantity: rewardpool.Unlimited, Weight: 6 * rewardpool.WeightUnit},
	}
}

// env is an engine whose Committed hook feeds a Streamer.
//
// The engine does not expose its *wal.Log, and a second wal.Log cannot be
// opened on its directory while it runs (flock). So the Source here is a
// mirror: a wal.Log in another directory that starts as a copy of the
// engine's log and to which the hook appends every batch, on the writer
// goroutine, right before handing it to the streamer. The streamer's
// goroutines Scan the mirror while the writer appends to it, exactly as
// they would Scan the engine's own log. See the report: the engine should
// expose its log (or a Scan) so that the mirror is not needed.
type env struct {
	t      testing.TB
	dir    string
	eng    *rewardpool.Engine
	mirror *wal.Log
	st     *stream.Streamer
	start  uint64 // engine's last seq at open
	once   sync.Once
}

func newEnv(t testing.TB, opts stream.Options) *env {
	t.Helper()
	return newEnvMirror(t, opts, wal.Options{SegmentSize: 64 << 10})
}

// newEnvMirror is newEnv with the mirror log's options.
func newEnvMirror(t testing.TB, opts stream.Options, mopts wal.Options) *env {
	t.Helper()
	dir := t.TempDir()
	eopts := rewardpool.Options{Items: testItems(), Durability: rewardpool.DurabilityNone, Logger: quietLogger()}
	eng, err := rewardpool.Open(dir, eopts)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	mopts.Logger = quietLogger()
	mirror, err := wal.Open(filepath.Join(t.TempDir(), "mirror"), mopts)
	if err != nil {
		t.Fatal(err)
	}
	var batch []wal.Record
	err = scanAll(filepath.Join(dir, "wal"), func(r *wal.Record) error {
		batch = append(batch, *r)
		if r.Commit {
			err := mirror.Append(batch)
			batch = batch[:0]
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	e := &env{t: t, dir: dir, mirror: mirror}
	e.st = stream.New(mirror, opts)
	eopts.Committed = func(recs []wal.Record) {
		if err := mirror.Append(recs); err != nil {
			panic(fmt.Sprintf("mirror append: %v", err))
		}
		e.st.Committed(recs)
	}
	e.eng, err = rewardpool.Open(dir, eopts)
	if err != nil {
		t.Fatal(err)
	}
	state, err := e.eng.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.start = state.Seq
	e.st.Start(state.Seq)
	t.Cleanup(e.close)
	return e
}

// close closes the streamer, the engine and the mirror, in that order.
func (e *env) close() {
	e.once.Do(func() {
		if err := e.st.Close(); err != nil {
			e.t.Error(err)
		}
		if err := e.eng.Close(); err != nil {
			e.t.Error(err)
		}
		if err := e.mirror.Close(); err != nil {
			e.t.Error(err)
		}
	})
}

// engineLog returns every record of the engine's log; call after close.
func (e *env) engineLog() []wal.Record {
	e.t.Helper()
	var all []wal.Record
	if err := scanAll(filepath.Join(e.dir, "wal"), func(r *wal.Record) error {
		all = append(all, *r)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return all
}

func scanAll(dir string, fn func(*wal.Record) error) error {
	l, err := wal.Open(dir, wal.Options{Logger: quietLogger()})
	if err != nil {
		return err
	}
	defer l.Close()
	return l.Scan(1, fn)
}

// draw runs workers goroutines each making n draw requests; count(w, i)
// gives the Count of request i of worker w (nil: 1).
func (e *env) draw(workers, n int, count func(w, i int) int) {
	e.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []rewardpool.DrawResult
			for i := range n {
				c := 1
				if count != nil {
					c = count(w, i)
				}
				var err error
				dst, err = e.eng.DrawInto(context.Background(), dst[:0], rewardpool.DrawRequest{Count: c})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
}

// wait waits until sink name has everything the writer committed so far
// and returns that seq.
func (e *env) wait(name string) uint64 {
	e.t.Helper()
	target := e.st.Stats().Committed
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.st.WaitSink(ctx, name, target); err != nil {
		e.t.Fatalf("sink %s waiting for seq %d: %v (stats %+v)", name, target, err, e.st.Stats())
	}
	return target
}

// collector records what it receives and checks seqs are consecutive.
type collector struct {
	slow time.Duration // sleep per Stream call
	gate chan struct{} // if set, the first Stream call waits for it

	mu     sync.Mutex
	recs   []wal.Record
	calls  int
	err    error
	closed int
}

func (c *collector) Stream(recs []wal.Record) error {
	if c.gate != nil {
		<-c.gate
		c.gate = nil
	}
	if c.slow > 0 {
		time.Sleep(c.slow)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	for _, r := range recs {
		if n := len(c.recs); n > 0 && r.Seq != c.recs[n-1].Seq+1 && c.err == nil {
			c.err = fmt.Errorf("got seq %d after %d", r.Seq, c.recs[n-1].Seq)
		}
		c.recs = append(c.recs, r)
	}
	return nil
}

func (c *collector) Close() error {
	c.mu.Lock()
	c.closed++
	c.mu.Unlock()
	return nil
}

func (c *collector) records() []wal.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		panic(c.err)
	}
	return c.recs
}

// sameRecords checks got equals want record by record. ItemID is compared
// only when both carry it: records served from disk carry only the slot.
func sameRecords(t testing.TB, name string, got, want []wal.Record) {
	t.Helper()
	if len(got) != len(want) {
		first := func(r []wal.Record) uint64 {
			if len(r) == 0 {
				return 0
			}
			return r[0].Seq
		}
		t.Fatalf("%s: got %d records (from seq %d), want %d (from seq %d)", name, len(got), first(got), len(want), first(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ItemID == "" || w.ItemID == "" {
			g.ItemID, w.ItemID = "", ""
		}
		if g != w {
			t.Fatalf("%s: record %d:\n got %+v\nwant %+v", name, i, got[i], want[i])
		}
		if i > 0 && got[i].Seq != got[i-1].Seq+1 {
			t.Fatalf("%s: record %d: seq %d after %d", name, i, got[i].Seq, got[i-1].Seq)
		}
	}
}

// memSource is an in-memory Source the test appends to, as a writer would.
type memSource struct {
	mu    sync.Mutex
	first uint64
	recs  []wal.Record
	scans int
}

func (m *memSource) append(recs []wal.Record) {
	m.mu.Lock()
	m.recs = append(m.recs, recs...)
	m.mu.Unlock()
}

func (m *memSource) Scan(from uint64, fn func(*wal.Record) error) error {
	m.mu.Lock()
	recs := m.recs
	m.scans++
	m.mu.Unlock()
	if from < m.first {
		return fmt.Errorf("%w: from %d, oldest %d", wal.ErrGap, from, m.first)
	}
	for i := int(from - m.first); i < len(recs); i++ {
		r := recs[i]
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}
