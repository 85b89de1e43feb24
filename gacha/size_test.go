package gacha

import (
	"runtime"
	"strconv"
	"testing"
)

// TestBytesPerPlayer measures the memory a player costs in a pool with two
// pity rules and a daily cap (the aim: at most 128 bytes), the id
// string (12 bytes, as a server would keep it) included.
func TestBytesPerPlayer(t *testing.T) {
	const n = 200_000
	c, r := banner()
	tb := mustTable(t, c, r)
	ids := make([]string, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ps := NewPlayers(tb.Stride())
	for i := range n {
		ids[i] = "user-" + strconv.Itoa(1_000_000+i)
		tb.Apply(c, ps.Edit(ids[i]), 4, 0)
		if i%1024 == 0 {
			ps.Commit()
		}
	}
	ps.Commit()
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d players: %.1f bytes each (row %d bytes)", n, per, 4*tb.Stride())
	if per > 128 {
		t.Errorf("%.1f bytes per player, want <= 128", per)
	}
	runtime.KeepAlive(ps)
	runtime.KeepAlive(ids)
}

// A capture is a frozen copy: edits after it (changes, new players, a
// rollback) never show in it, and it costs no copy of the rows.
func TestCaptureIsCopyOnWrite(t *testing.T) {
	c, r := banner()
	tb := mustTable(t, c, r)
	ps := NewPlayers(tb.Stride())
	const n = 3*ChunkPlayers + 17
	for i := range n {
		tb.Apply(c, ps.Edit("u"+strconv.Itoa(i)), 4, 0)
	}
	ps.Commit()
	ids, chunks := ps.Capture()
	before := Flatten(chunks, len(ids), tb.Stride())
	m := ps.Mark()
	tb.Apply(c, ps.Edit("u0"), 0, 0)
	tb.Apply(c, ps.Edit("u"+strconv.Itoa(n-1)), 0, 0)
	tb.Apply(c, ps.Edit("new"), 0, 0)
	if got := Flatten(chunks, len(ids), tb.Stride()); !slicesEqual(got, before) || len(ids) != n {
		t.Fatal("edits after a capture changed it")
	}
	ps.Rollback(m)
	if got := Flatten(chunks, len(ids), tb.Stride()); !slicesEqual(got, before) {
		t.Fatal("a rollback after a capture changed it")
	}
	ids2, chunks2 := ps.Capture()
	if got := Flatten(chunks2, len(ids2), tb.Stride()); !slicesEqual(got, before) {
		t.Fatal("state after the rollback differs from before the edits")
	}
}

// BenchmarkCapture is the writer's cost of a snapshot of a million players
// (the snapshot's encoding runs on another goroutine).
func BenchmarkCapture(b *testing.B) {
	c, r := banner()
	tb, _ := New(r)
	ps := NewPlayers(tb.Stride())
	for i := range 1_000_000 {
		tb.Apply(c, ps.Edit("u"+strconv.Itoa(i)), 4, 0)
		if i%4096 == 0 {
			ps.Commit()
		}
	}
	ps.Commit()
	b.ResetTimer()
	for range b.N {
		ps.Capture()
		// The first edit after a capture copies one chunk.
		tb.Apply(c, ps.Edit("u1"), 4, 0)
		ps.Commit()
	}
}
