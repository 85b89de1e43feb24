package wal

import "testing"

// Retain keeps the newest segments until they hold Bytes on disk, and at
// least Segments of them, deleting only what seq covers.
func TestRetainBytes(t *testing.T) {
	c := combo{codec: "binary", storage: "file"}
	dir := t.TempDir()
	o := testOptions(c, 1024, nil)
	l := mustOpen(t, dir, o)
	defer l.Close()
	g := newGen()
	for range 40 {
		mustAppend(t, l, g.batch(8))
	}
	segs := l.Segments()
	if len(segs) < 6 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	var total int64
	for _, s := range segs {
		total += s.Size
	}
	// Keep about half the bytes: the newest segments holding >= half stay.
	half := total / 2
	if _, err := l.Retain(l.LastSeq()+1, Retention{Bytes: half}); err != nil {
		t.Fatal(err)
	}
	var kept int64
	left := l.Segments()
	for _, s := range left {
		kept += s.Size
	}
	if kept < half {
		t.Fatalf("kept %d bytes, want at least %d", kept, half)
	}
	if kept-left[0].Size >= half {
		t.Fatalf("kept one segment too many: %d bytes without the oldest, limit %d", kept-left[0].Size, half)
	}
	// seq still bounds what may go: nothing the caller has not covered.
	first := l.FirstSeq()
	if n, err := l.Retain(first, Retention{}); err != nil || n != 0 {
		t.Fatalf("Retain before the first seq removed %d (%v)", n, err)
	}
	// Segments and bytes together: the stricter wins.
	if _, err := l.Retain(l.LastSeq()+1, Retention{Segments: 2, Bytes: 1}); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 2 {
		t.Fatalf("%d segments left, want 2", n)
	}
	scanAll(t, l, l.FirstSeq()) // what is left still reads
}
