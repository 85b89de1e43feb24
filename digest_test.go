package rewardpool

import (
	"testing"
)

// The digest depends only on the state: the same log replayed elsewhere
// gives the same digest; a different state gives a different one.
func TestDigestFollowsState(t *testing.T) {
	dir := t.TempDir()
	e := mustOpen(t, dir, testOptions())
	for range 20 {
		mustDraw(t, e, DrawRequest{Count: 2})
	}
	seq1, d1, err := e.Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	removeSnapshots(t, dir) // recover from the log alone
	e = mustOpen(t, dir, testOptions())
	defer e.Close()
	seq2, d2, _ := e.Digest(ctx)
	if seq1 != seq2 || d1 != d2 {
		t.Fatalf("after replay: seq %d digest %s, before: seq %d digest %s", seq2, d2, seq1, d1)
	}
	mustDraw(t, e, DrawRequest{})
	if _, d3, _ := e.Digest(ctx); d3 == d1 {
		t.Fatalf("digest did not change after a draw")
	}
}
