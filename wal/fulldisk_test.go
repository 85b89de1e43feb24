package wal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// A full disk under the mmap storage must be an ENOSPC error, never a
// SIGBUS that kills the process (issue 7, defect 7): the segment's blocks
// are reserved with fallocate before it is mapped. The parent mounts a
// 1 MiB tmpfs (root only) and runs the writer in a child process, so a
// SIGBUS fails the test instead of killing it.
func TestMmapFullDiskIsAnError(t *testing.T) {
	if dir := os.Getenv("REWARDPOOL_FULLDISK_DIR"); dir != "" {
		fullDiskChild(dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	cmd := exec.Command(os.Args[0], "-test.run=^TestMmapFullDiskIsAnError$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REWARDPOOL_FULLDISK_DIR="+mnt)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("the writer died of %v on a full disk; output:\n%s", ws.Signal(), out)
		}
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// fullDiskChild appends to an mmap log on a 1 MiB file system until a call
// fails, and exits 0 only if that failure is an ENOSPC error.
func fullDiskChild(dir string) {
	o := testOptions(combo{"binary", "mmap"}, 4<<20, nil)
	l, err := Open(dir, o)
	if err != nil {
		fail("open: %v", err)
	}
	g := newGen()
	for i := 0; i < 100_000; i++ {
		err = l.Append(g.batch(50))
		if err == nil {
			err = l.Sync()
		}
		if err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		fail("want an ENOSPC error on a full disk, got %v", err)
	}
	os.Stdout.WriteString("ENOSPC as an error: " + err.Error() + "\n")
	os.Exit(0)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(3)
}
