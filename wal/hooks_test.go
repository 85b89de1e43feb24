package wal

import (
	"errors"
	"testing"
)

func TestHooks(t *testing.T) {
	errDisk := errors.New("disk on fire")
	cases := []struct {
		name      string
		keep      int  // bytes of the failing write that land
		header    bool // fail the header write of a rotation instead
		syncFails bool
	}{
		{name: "write fails, nothing lands", keep: 0},
		{name: "write fails, 7 bytes land", keep: 7},
		{name: "rotation header write fails", keep: 10, header: true},
		{name: "sync fails", syncFails: true},
	}
	for _, c := range combos {
		for _, tc := range cases {
			t.Run(c.String()+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				fail := false
				o := testOptions(c, 4096, nil)
				o.Hooks.Write = func(p []byte) (int, error) {
					isHeader := len(p) == HeaderSize && string(p[:5]) == "RPWAL"
					if fail && !tc.syncFails && isHeader == tc.header {
						return tc.keep, errDisk
					}
					return 0, nil
				}
				o.Hooks.Sync = func() error {
					if fail && tc.syncFails {
						return errDisk
					}
					return nil
				}
				l := mustOpen(t, dir, o)
				g := newGen()
				var all []Record
				for i := 0; i < 5; i++ {
					b := g.batch(4)
					mustAppend(t, l, b)
					all = append(all, b...)
				}
				fail = true
				n := 4
				if tc.header {
					n = 400 // does not fit: rotates
				}
				b := g.batch(n)
				err := l.Append(b)
				if err == nil {
					err = l.Sync()
				}
				if !errors.Is(err, errDisk) {
					t.Fatalf("got %v, want the injected error", err)
				}
				if err := l.Append(g.batch(1)); !errors.Is(err, ErrPoisoned) {
					t.Fatalf("Append after failure = %v, want ErrPoisoned", err)
				}
				if err := l.Sync(); !errors.Is(err, ErrPoisoned) {
					t.Fatalf("Sync after failure = %v, want ErrPoisoned", err)
				}
				l.Close()

				fail = false
				l = mustOpen(t, dir, o)
				defer l.Close()
				got := scanAll(t, l, 1)
				if tc.syncFails && len(got) == len(all)+len(b) {
					all = append(all, b...) // written, only the sync failed
				}
				checkRecords(t, c.codec, got, all)
				g.seq = l.LastSeq() + 1
				mustAppend(t, l, g.batch(2))
			})
		}
	}
}
