package fsys_test

import (
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/internal/fsys"
	"github.com/rewardpool/rewardpool/internal/fsys/sim"
)

// FreeName must return when Stat fails for a reason other than "does not
// exist" (EIO, EACCES, a file system gone after a power cut): it used to
// loop forever, hanging `wal repair`, `wal reseed` and Open. The operation
// that then uses the name reports the real error.
func TestFreeNameReturnsWhenStatFails(t *testing.T) {
	fs := sim.New(1)
	if err := fsys.MkdirAll(fs, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	fs.PowerCut() // from here on every call on fs fails
	done := make(chan string, 1)
	go func() { done <- fsys.FreeName(fs, "/d/x.broken") }()
	select {
	case n := <-done:
		if n != "/d/x.broken" {
			t.Fatalf("FreeName = %q, want the name itself", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("FreeName does not return when Stat fails")
	}
}

func TestFreeNameSkipsExistingNames(t *testing.T) {
	fs := sim.New(1)
	for _, n := range []string{"/a", "/a.1"} {
		if err := fsys.WriteFileAtomic(fs, n, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n := fsys.FreeName(fs, "/a"); n != "/a.2" {
		t.Fatalf("FreeName = %q, want /a.2", n)
	}
}
