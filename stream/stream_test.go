package stream_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/stream"
	"github.com/rewardpool/rewardpool/wal"
)

// (1) Every committed record reaches a sink exactly once, in order, and
// what it got equals the engine's log.
func TestEngineEveryRecordOnceInOrder(t *testing.T) {
	e := newEnv(t, stream.Options{})
	c := &collector{}
	if err := e.st.AddSink("c", c, 1); err != nil {
		t.Fatal(err)
	}
	e.draw(8, 2500, nil)
	target := e.wait("c")
	e.close()
	all := e.engineLog()
	if uint64(len(all)) != target || target < 20000 {
		t.Fatalf("engine log has %d records, streamer saw up to seq %d", len(all), target)
	}
	sameRecords(t, "c", c.records(), all)
	if c.closed != 1 {
		t.Fatalf("sink closed %d times, want 1", c.closed)
	}
}

// (2) A slow sink delays neither the writer nor a fast sink, and still gets
// everything in order (from disk, once it falls out of the window).
func TestSlowSinkDoesNotHoldBackFastSink(t *testing.T) {
	e := newEnv(t, stream.Options{Window: 1024, MaxBatch: 64})
	fast := &collector{}
	gate := make(chan struct{})
	slow := &collector{slow: 200 * time.Microsecond, gate: gate}
	if err := e.st.AddSink("slow", slow, 1); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddSink("fast", fast, 1); err != nil {
		t.Fatal(err)
	}
	e.draw(8, 1000, nil)
	target := e.wait("fast")
	// The slow sink is stuck in its first Stream call: the writer and the
	// fast sink got through everything regardless.
	if pos, _ := e.st.Position("slow"); pos >= target {
		t.Fatalf("slow sink at %d, fast at %d: expected the slow one behind", pos, target)
	}
	close(gate)
	e.wait("slow")
	var slowStats stream.SinkStats
	for _, s := range e.st.Stats().Sinks {
		if s.Name == "slow" {
			slowStats = s
		}
	}
	e.close()
	all := e.engineLog()
	sameRecords(t, "fast", fast.records(), all)
	sameRecords(t, "slow", slow.records(), all)
	if slowStats.CatchUps == 0 {
		t.Fatalf("slow sink never read from the source: %+v", slowStats)
	}
	t.Logf("slow sink: %+v, %d Stream calls", slowStats, slow.calls)
}

// (3) A tiny queue makes Committed drop batches; the hub reads them back
// from disk: no gap, no duplicate.
func TestDroppedBatchesAreReadBack(t *testing.T) {
	e := newEnv(t, stream.Options{Buffer: 8})
	c := &collector{}
	if err := e.st.AddSink("c", c, 1); err != nil {
		t.Fatal(err)
	}
	// Every 50th request draws 16: a batch over Buffer is always dropped.
	e.draw(8, 2500, func(w, i int) int {
		if i%50 == 0 {
			return 16
		}
		return 1
	})
	e.wait("c")
	st := e.st.Stats()
	e.close()
	sameRecords(t, "c", c.records(), e.engineLog())
	if st.Dropped == 0 || st.CatchUps == 0 {
		t.Fatalf("want drops and catch-ups, got %+v", st)
	}
	t.Logf("dropped %d batches, %d catch-ups from disk", st.Dropped, st.CatchUps)
}

// (4) The log sink writes one line per record, in seq order.
func TestLogSinkOneLinePerRecord(t *testing.T) {
	e := newEnv(t, stream.Options{})
	var buf lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	if err := e.st.AddSink("log", stream.NewLogSink(logger), e.start+1); err != nil {
		t.Fatal(err)
	}
	e.draw(1, 100, nil)
	e.wait("log")
	e.close()
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	n := 0
	for sc.Scan() {
		var line struct {
			Msg       string  `json:"msg"`
			Seq       *uint64 `json:"seq"`
			Epoch     uint64  `json:"epoch"`
			Kind      string  `json:"kind"`
			RequestID uint64  `json:"request_id"`
			Item      any     `json:"item"`
			Commit    *bool   `json:"commit"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %d: %v: %s", n, err, sc.Text())
		}
		want := e.start + 1 + uint64(n)
		if line.Msg != "wal record" || line.Seq == nil || *line.Seq != want || line.Epoch != 1 ||
			line.Kind != "draw" || line.RequestID != uint64(n+1) || line.Item == nil || line.Commit == nil {
			t.Fatalf("line %d: want seq %d, request_id %d: %s", n, want, n+1, sc.Text())
		}
		n++
	}
	if n != 100 {
		t.Fatalf("got %d lines, want 100", n)
	}
}

// The log sink's attributes for admin, key and disk-read records.
func TestLogSinkAttrs(t *testing.T) {
	var buf lockedBuffer
	s := stream.NewLogSink(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	err := s.Stream([]wal.Record{
		{Seq: 1, Epoch: 1, Kind: wal.KindAdd, Item: 0, ItemID: "gold", Quantity: -1, Weight: 2_500_000},
		{Seq: 2, Epoch: 1, Kind: wal.KindKey, Item: -1, Key: "k1", Count: 1},
		{Seq: 3, Epoch: 1, Kind: wal.KindDraw, RequestID: 7, Item: 4, Commit: true},
		{Seq: 4, Epoch: 1, Kind: wal.KindDrawFailed, RequestID: 8, Item: -1, Commit: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `level=INFO msg="wal record" seq=1 epoch=1 kind=add item=gold quantity=-1 weight=2.5 commit=false
level=INFO msg="wal record" seq=2 epoch=1 kind=key key=k1 count=1 commit=false
level=INFO msg="wal record" seq=3 epoch=1 kind=draw request_id=7 item=4 commit=true
level=INFO msg="wal record" seq=4 epoch=1 kind=draw_failed request_id=8 commit=true
`
	if got := string(buf.Bytes()); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// (5) A sink added late, from a past seq, reads history first (from disk
// when it is out of the window), then follows live.
func TestAddSinkFromThePast(t *testing.T) {
	e := newEnv(t, stream.Options{Window: 256})
	e.draw(4, 750, nil)
	late, mid := &collector{}, &collector{}
	if err := e.st.AddSink("late", late, 1); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddSink("mid", mid, 1500); err != nil {
		t.Fatal(err)
	}
	e.draw(4, 250, nil)
	e.wait("late")
	e.wait("mid")
	var catchUps uint64
	for _, s := range e.st.Stats().Sinks {
		if s.Name == "late" {
			catchUps = s.CatchUps
		}
	}
	e.close()
	all := e.engineLog()
	sameRecords(t, "late", late.records(), all)
	sameRecords(t, "mid", mid.records(), all[1499:])
	if catchUps == 0 {
		t.Fatal("late sink never read from the source")
	}
}

// Without an engine: a sink from before the oldest record the source holds
// fails with wal.ErrGap; a failing sink is closed and reported; Resolve
// names slots; RemoveSink and Close close sinks once.
func TestSinkErrorsAndLifecycle(t *testing.T) {
	src := &memSource{first: 11}
	st := stream.New(src, stream.Options{Buffer: 4, Window: 8, MaxBatch: 3, Logger: quietLogger(),
		Resolve: func(slot int32) string { return []string{"a", "b"}[slot] }})
	defer st.Close()
	st.Start(10)
	gap, bad, good := &collector{}, &failing{after: 5}, &collector{}
	for name, s := range map[string]stream.Sink{"gap": gap, "bad": bad, "good": good} {
		from := uint64(11)
		if name == "gap" {
			from = 5
		}
		if err := st.AddSink(name, s, from); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddSink("good", good, 1); !errors.Is(err, stream.ErrDuplicateSink) {
		t.Fatalf("duplicate name: %v", err)
	}
	seq := uint64(10)
	for i := range 20 {
		b := make([]wal.Record, 1+i%5) // batches of 1..5; Buffer 4 drops some
		for j := range b {
			seq++
			b[j] = wal.Record{Seq: seq, Epoch: 1, Kind: wal.KindDraw, RequestID: seq, Item: int32(seq % 2)}
		}
		b[len(b)-1].Commit = true
		src.append(b)
		st.Committed(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitSink(ctx, "good", seq); err != nil {
		t.Fatal(err)
	}
	if err := st.WaitSink(ctx, "gap", seq); !errors.Is(err, wal.ErrGap) {
		t.Fatalf("gap sink: %v, want ErrGap", err)
	}
	if err := st.WaitSink(ctx, "bad", seq); err == nil || !bad.isClosed() {
		t.Fatalf("bad sink: %v, closed %v", err, bad.isClosed())
	}
	got := good.records()
	if len(got) != int(seq-10) || got[0].Seq != 11 || got[len(got)-1].Seq != seq {
		t.Fatalf("good sink got %d records", len(got))
	}
	for _, r := range got {
		if want := []string{"a", "b"}[r.Seq%2]; r.ItemID != want {
			t.Fatalf("seq %d: item %q, want %q", r.Seq, r.ItemID, want)
		}
	}
	stats := st.Stats()
	if stats.Dropped == 0 {
		t.Fatalf("expected drops: %+v", stats)
	}
	if err := st.RemoveSink("good"); err != nil || good.closed != 1 {
		t.Fatalf("remove: %v, closed %d", err, good.closed)
	}
	if err := st.RemoveSink("good"); !errors.Is(err, stream.ErrNoSink) {
		t.Fatalf("remove twice: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if gap.closed != 1 || !bad.isClosed() {
		t.Fatalf("sinks not closed once: gap %d", gap.closed)
	}
	st.Committed([]wal.Record{{Seq: seq + 1, Commit: true}}) // no-op, no panic
	if err := st.Close(); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
}

// failing accepts `after` records, then fails.
type failing struct {
	after  int
	n      int
	mu     sync.Mutex
	closed bool
}

func (f *failing) Stream(recs []wal.Record) error {
	f.n += len(recs)
	if f.n > f.after {
		return errors.New("boom")
	}
	return nil
}

func (f *failing) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

func (f *failing) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
