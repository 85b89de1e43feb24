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
