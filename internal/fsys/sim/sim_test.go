package sim

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

func write(t *testing.T, f *FS, name string, data []byte, sync bool) {
	t.Helper()
	h, err := f.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
}

func read(t *testing.T, f *FS, name string) ([]byte, bool) {
	t.Helper()
	b, err := fsys.ReadFile(f, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

// A file created, written and fsynced, in a directory that was never
// fsynced, can vanish; once the directory is synced, it stays.
func TestPowerCutDropsUnsyncedEntries(t *testing.T) {
	vanished, kept := 0, 0
	for seed := range uint64(200) {
		f := New(seed)
		if err := f.Mkdir("/d", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := f.SyncDir("/"); err != nil {
			t.Fatal(err)
		}
		write(t, f, "/d/a", []byte("hello"), true)
		g := f.PowerCut()
		if b, ok := read(t, g, "/d/a"); ok {
			kept++
			if string(b) != "hello" {
				t.Fatalf("seed %d: synced data came back as %q", seed, b)
			}
		} else {
			vanished++
		}
		// With the directory synced, the file always survives.
		f = New(seed)
		f.Mkdir("/d", 0o755)
		f.SyncDir("/")
		write(t, f, "/d/a", []byte("hello"), true)
		if err := f.SyncDir("/d"); err != nil {
			t.Fatal(err)
		}
		if b, ok := read(t, f.PowerCut(), "/d/a"); !ok || string(b) != "hello" {
			t.Fatalf("seed %d: synced file in synced dir came back as %q, %v", seed, b, ok)
		}
	}
	if vanished == 0 || kept == 0 {
		t.Fatalf("unsynced entry: vanished %d, kept %d times of 200: want both", vanished, kept)
	}
}

// A rename not followed by a directory sync can be undone by a power cut.
func TestPowerCutCanUndoRename(t *testing.T) {
	undone := 0
	for seed := range uint64(100) {
		f := New(seed)
		write(t, f, "/a", []byte("x"), true)
		f.SyncDir("/")
		if err := f.Rename("/a", "/b"); err != nil {
			t.Fatal(err)
		}
		g := f.PowerCut()
		_, a := read(t, g, "/a")
		_, b := read(t, g, "/b")
		if a == b {
			t.Fatalf("seed %d: after the cut a=%v b=%v: want exactly one name", seed, a, b)
		}
		if a {
			undone++
		}
	}
	if undone == 0 {
		t.Fatal("a rename without a directory sync always survived")
	}
}

// Unsynced data is kept or lost per sector, torn in any order; synced data
// always survives.
func TestPowerCutTearsUnsyncedSectors(t *testing.T) {
	synced := bytes.Repeat([]byte{1}, 2*SectorSize)
	newer := bytes.Repeat([]byte{2}, 4*SectorSize)
	sawTorn, sawShort := false, false
	for seed := range uint64(200) {
		f := New(seed)
		write(t, f, "/a", synced, true)
		f.SyncDir("/")
		write(t, f, "/a", newer, false)
		b, ok := read(t, f.PowerCut(), "/a")
		if !ok {
			t.Fatal("a synced file in a synced directory vanished")
		}
		if len(b) != 2*SectorSize && len(b) != 4*SectorSize {
			t.Fatalf("seed %d: size %d is neither the synced nor the written size", seed, len(b))
		}
		kinds := map[byte]bool{}
		for s := 0; s < len(b); s += SectorSize {
			sec := b[s : s+SectorSize]
			if !bytes.Equal(sec, bytes.Repeat(sec[:1], SectorSize)) {
				t.Fatalf("seed %d: sector %d mixes bytes: a sector is kept or lost whole", seed, s/SectorSize)
			}
			kinds[sec[0]] = true
			if s >= 2*SectorSize && sec[0] == 1 {
				t.Fatalf("seed %d: old data beyond the synced size", seed)
			}
		}
		if len(kinds) > 1 {
			sawTorn = true
		}
		if len(b) == 2*SectorSize {
			sawShort = true
		}
	}
	if !sawTorn || !sawShort {
		t.Fatalf("torn=%v short=%v: the cut never tore the write or kept the old size", sawTorn, sawShort)
	}
}

func TestFaultsAndCapacity(t *testing.T) {
	f := New(1)
	f.SetFault(func(op Op, name string) error {
		if op == OpSync {
			return syscall.EIO
		}
		return nil
	})
	h, _ := f.OpenFile("/a", os.O_RDWR|os.O_CREATE, 0o644)
	h.Write([]byte("abc"))
	if err := h.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("sync: %v, want EIO", err)
	}
	f.SetFault(nil)
	f.SetCapacity(10)
	if _, err := h.WriteAt(make([]byte, 20), 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write past capacity: %v, want ENOSPC", err)
	}
	if err := h.Allocate(100); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("allocate past capacity: %v, want ENOSPC", err)
	}
}

func TestCrashAfterKillsTheFileSystem(t *testing.T) {
	f := New(3)
	f.CrashAfter(2)
	h, err := f.OpenFile("/a", os.O_RDWR|os.O_CREATE, 0o644) // op 1
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write([]byte("x")); !errors.Is(err, ErrDead) { // op 2: the cut
		t.Fatalf("write at the cut: %v, want ErrDead", err)
	}
	select {
	case <-f.Crashed():
	default:
		t.Fatal("Crashed not closed")
	}
	if _, err := f.Stat("/a"); !errors.Is(err, ErrDead) {
		t.Fatalf("stat after the cut: %v", err)
	}
	if f.AfterCrash() == nil {
		t.Fatal("no state after the crash")
	}
}

func TestLock(t *testing.T) {
	f := New(1)
	l, err := f.Lock("/LOCK")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Lock("/LOCK"); !errors.Is(err, fsys.ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	l.Close()
	if _, err := f.Lock("/LOCK"); err != nil {
		t.Fatal(err)
	}
}

// MkdirAll makes a directory durable even when it already exists: one
// created by an earlier call whose parent sync failed would otherwise
// vanish at the next power cut, with everything written inside it.
func TestMkdirAllMakesAnExistingDirectoryDurable(t *testing.T) {
	for seed := range uint64(50) {
		f := New(seed)
		f.Mkdir("/a", 0o755) // created, parent never synced
		if err := fsys.MkdirAll(f, "/a/b", 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, f, "/a/b/x", []byte("data"), true)
		if err := fsys.MkdirAll(f, "/a/b", 0o755); err != nil { // syncs /a/b: x's entry
			t.Fatal(err)
		}
		if b, ok := read(t, f.PowerCut(), "/a/b/x"); !ok || string(b) != "data" {
			t.Fatalf("seed %d: /a/b/x after the cut: %q, %v", seed, b, ok)
		}
	}
}
