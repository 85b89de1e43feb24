package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/internal/fsys/sim"
	"github.com/rewardpool/rewardpool/wal"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// waitFile polls until name exists on fs (a background prepare), failing
// the test after a bounded wait.
func waitFile(t *testing.T, fs *sim.FS, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := fs.Stat(name); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", name)
		}
		time.Sleep(time.Millisecond)
	}
}

// A power cut while a round is written, with the next segment already
// prepared (zero-filled and renamed into place in the background, which
// is nearly always the case), tears the last round of a segment that is
// not the last file. That is a torn round, not damage: the segments after
// it hold no round. Open must cut it and give back every acknowledged
// batch, not refuse to start.
func TestTornRoundWithThePreparedNextSegment(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			fs := sim.New(seed)
			dir := "/node/.journal"
			j, err := Open(dir, Options{FS: fs, SegmentSize: 1 << 16, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if err := j.Commit("a", batch(1, 2)); err != nil {
				t.Fatal(err)
			}
			waitFile(t, fs, filepath.Join(dir, segName(2)))
			// The next round is written but its fdatasync never completes.
			fs.SetFault(func(op sim.Op, name string) error {
				if op == sim.OpSync && strings.Contains(name, segName(1)) {
					return syscall.EIO
				}
				return nil
			})
			if err := j.Commit("a", batch(3, 200)); err == nil {
				t.Fatal("commit with a failing fsync succeeded")
			}
			cut := fs.PowerCut()

			j2, err := Open(dir, Options{FS: cut, SegmentSize: 1 << 16, Logger: quiet()})
			if err != nil {
				t.Fatalf("Open after a power cut during a round: %v", err)
			}
			defer j2.Close()
			n, err := j2.Redo("a", "/node/a/wal", wal.Options{FS: cut})
			if err != nil || (n != 2 && n != 202) {
				t.Fatalf("redo gave back %d records (err %v), want the acknowledged 2 (or 202)", n, err)
			}
		})
	}
}

var _ = errors.Is

// A pool name the decoder would refuse (empty, or longer than maxName)
// must be refused when it is written: once in a durable round, it made
// the next Open fail with ErrCorrupt, which kept every other pool's
// acknowledged batches from coming back.
func TestBadPoolNameIsRefusedNotWritten(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("p", maxName+1)} {
		t.Run(fmt.Sprint(len(name)), func(t *testing.T) {
			dir := t.TempDir()
			j := open(t, dir, Options{SegmentSize: 1 << 16, Logger: quiet()})
			if err := j.Commit("a", batch(1, 2)); err != nil {
				t.Fatal(err)
			}
			if err := j.Claim(name); err == nil {
				t.Error("Claim accepted the name")
			}
			if err := j.Commit(name, batch(1, 1)); err == nil {
				t.Error("Commit accepted the name")
			}
			j.Attach(name, 0, nil)
			j.Checkpoint(name, 1)
			j.Commit("a", batch(3, 1))
			j.Close() // "a" never checkpointed: its batches stay

			j, err := Open(dir, Options{SegmentSize: 1 << 16, Logger: quiet()})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer j.Close()
			n, err := j.Redo("a", filepath.Join(t.TempDir(), "a"), wal.Options{})
			if err != nil || n < 2 {
				t.Fatalf("redo gave back %d records (err %v), want the acknowledged 2", n, err)
			}
		})
	}
}

// A pool asked to checkpoint that closes (Detach) before answering, then
// opens again, must be asked again: the ask went to the closed run. Else
// the journal never asks the new run and keeps every segment from then
// on (until something else happens to checkpoint it).
func TestReattachedPoolIsAskedAgain(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 4096, Logger: quiet()})
	defer j.Close()
	askedOld := make(chan struct{}, 1)
	if err := j.Attach("a", 0, func() {
		select {
		case askedOld <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	commit := func() {
		t.Helper()
		if err := j.Commit("a", batch(seq+1, 3)); err != nil {
			t.Fatal(err)
		}
		seq += 3
	}
	for i := 0; i < 400 && len(askedOld) == 0; i++ {
		commit()
	}
	if len(askedOld) == 0 {
		t.Fatal("the pool was never asked to checkpoint")
	}
	// The run closes without answering (its writer was already stopping).
	if err := j.Detach("a", seq); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	if err := j.Attach("a", seq, func() {
		mu.Lock()
		defer mu.Unlock()
		j.Checkpoint("a", seq)
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 400; i++ {
		mu.Lock()
		commit()
		mu.Unlock()
	}
	if n := len(Segments(dir)); n > 8 {
		t.Fatalf("%d segments on disk: the reopened pool was never asked to checkpoint", n)
	}
}

// Rounds larger than a segment, between small ones, come back whole after
// a power cut, in order, with the next segment prepared or not.
func TestHugeRoundsComeBack(t *testing.T) {
	fs := sim.New(4)
	dir := "/node/.journal"
	j, err := Open(dir, Options{FS: fs, SegmentSize: 4096, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	seq := uint64(1)
	for _, n := range []int{2, 3000, 1, 5000, 7, 1} {
		if err := j.Commit("a", batch(seq, n)); err != nil {
			t.Fatal(err)
		}
		seq += uint64(n)
	}
	cut := fs.PowerCut()
	j2, err := Open(dir, Options{FS: cut, SegmentSize: 4096, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	n, err := j2.Redo("a", "/node/a/wal", wal.Options{FS: cut})
	if err != nil || uint64(n) != seq-1 {
		t.Fatalf("redo gave back %d records (err %v), want %d", n, err, seq-1)
	}
}

// Forget before Redo (a pool whose directory is replaced before this run
// opened it): the batches recovered for the old directory must not be
// replayed onto the new one, in this run or the next.
func TestForgetDropsBatchesNotYetRedone(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 1 << 16, Logger: quiet()})
	if err := j.Commit("a", batch(1, 5)); err != nil {
		t.Fatal(err)
	}
	j.Close() // "a" never checkpointed: the batches stay

	j = open(t, dir, Options{SegmentSize: 1 << 16, Logger: quiet()})
	if !j.Pending("a") {
		t.Fatal("nothing pending for a")
	}
	if err := j.Forget("a"); err != nil {
		t.Fatal(err)
	}
	if j.Pending("a") {
		t.Error("Pending after Forget")
	}
	if n, err := j.Redo("a", filepath.Join(t.TempDir(), "new"), wal.Options{}); err != nil || n != 0 {
		t.Fatalf("redo onto the replaced directory appended %d records (err %v), want none", n, err)
	}
	j.Close()
	j = open(t, dir, Options{SegmentSize: 1 << 16, Logger: quiet()})
	defer j.Close()
	if n, err := j.Redo("a", filepath.Join(t.TempDir(), "new"), wal.Options{}); err != nil || n != 0 {
		t.Fatalf("next run: redo appended %d records (err %v), want none", n, err)
	}
}

// Close while pools commit: every commit either succeeds (and comes back
// after a power cut) or is refused with ErrClosed; Close waits for rounds
// in flight and leaves the journal readable.
func TestCloseWhileRoundsAreInFlight(t *testing.T) {
	fs := sim.New(6)
	dir := "/node/.journal"
	j, err := Open(dir, Options{FS: fs, SegmentSize: 4096, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	pools := []string{"a", "b", "c", "d"}
	acked := make([]uint64, len(pools))
	var wg sync.WaitGroup
	errs := make(chan error, len(pools))
	started := make(chan struct{})
	var once sync.Once
	for i, p := range pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq < 400; seq += 2 {
				err := j.Commit(p, batch(seq, 2))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				acked[i] = seq + 1
				once.Do(func() { close(started) })
			}
		}()
	}
	<-started // Close once rounds are running
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cut := fs.PowerCut()
	j2, err := Open(dir, Options{FS: cut, SegmentSize: 4096, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	for i, p := range pools {
		n, err := j2.Redo(p, "/node/"+p+"/wal", wal.Options{FS: cut, Logger: quiet()})
		if err != nil || uint64(n) < acked[i] {
			t.Fatalf("pool %s: redo gave back %d records (err %v), %d acknowledged", p, n, err, acked[i])
		}
	}
}

// A batch's own bytes (an idempotency key is client input: any valid
// UTF-8, NUL included) can hold something that parses as a frame of a
// later round. When the round carrying it is torn by a power cut, Open
// takes that for "a later round follows a damaged one" and refuses to
// start (ErrCorrupt), though no acknowledged round was damaged.
func TestFrameInsideABatchIsNotALaterRound(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 1 << 16, Logger: quiet()})
	if err := j.Commit("a", batch(1, 2)); err != nil {
		t.Fatal(err)
	}
	// A fake frame of a far later round, placed so that it starts on the
	// second sector of the next round's frame.
	fake := sealFrame(make([]byte, frameHeader+8), 1<<40, 0)[:frameHeader+8] // the forger cannot know the seed
	recs := []wal.Record{{Seq: 3, Epoch: 1, Kind: wal.KindKey, Item: -1, Count: 1, Commit: true}}
	pad := 300
	for range 3 {
		recs[0].Key = strings.Repeat("k", pad) + string(fake) + strings.Repeat("k", 100)
		at := frameHeader + 8 + bytes.Index(appendBatch(nil, "a", recs), fake)
		pad += sectorSize - at
	}
	recs[0].Key = strings.Repeat("k", pad) + string(fake) + strings.Repeat("k", 100)
	if err := j.Commit("a", recs); err != nil {
		t.Fatal(err)
	}
	j.Close()
	seg := filepath.Join(dir, Segments(dir)[0])
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := parseFrame(data[2*sectorSize:], 0); !ok {
		t.Fatal("the fake frame is not on a sector boundary: fix the test's arithmetic")
	}
	// The power cut kept the round's second sector but not its first.
	clear(data[sectorSize : 2*sectorSize])
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	j, err = Open(dir, Options{SegmentSize: 1 << 16, Logger: quiet()})
	if err != nil {
		t.Fatalf("Open after a torn round: %v", err)
	}
	defer j.Close()
	if n, err := j.Redo("a", filepath.Join(t.TempDir(), "a"), wal.Options{}); err != nil || n != 2 {
		t.Fatalf("redo gave back %d records (err %v), want the acknowledged 2", n, err)
	}
}

// A pool whose batches the journal still holds from a run that lost power,
// and that this run never opens (removed from the configuration), holds
// back the deletion of its segment and of every later one: the journal
// grows without bound while the other pools keep committing.
func TestAPoolNeverReopenedDoesNotKeepEverySegment(t *testing.T) {
	t.Skip("known issue: retain stops at the first segment a pool without a run lags in; bounding it needs the pending batches carried forward (a reset and the batches in the new segment) or the server refusing to start without the pool")
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 4096, Logger: quiet()})
	if err := j.Commit("gone", batch(1, 3)); err != nil {
		t.Fatal(err)
	}
	j.Close() // "gone" never checkpointed, as after a power cut

	j = open(t, dir, Options{SegmentSize: 4096, Logger: quiet()})
	defer j.Close()
	var mu sync.Mutex
	seq := uint64(0)
	if err := j.Attach("a", 0, func() {
		mu.Lock()
		defer mu.Unlock()
		j.Checkpoint("a", seq)
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 600; i++ {
		mu.Lock()
		if err := j.Commit("a", batch(seq+1, 3)); err != nil {
			mu.Unlock()
			t.Fatal(err)
		}
		seq += 3
		mu.Unlock()
	}
	if n := len(Segments(dir)); n > 10 {
		t.Fatalf("%d segments on disk: the pool that never came back keeps them all", n)
	}
}

// Old segments are deleted oldest first; one whose removal fails must stop
// the deletion there. Deleting the ones after it left a gap in the rounds
// (round 40 after round 12), and the next Open refused the journal.
func TestFailedSegmentRemovalLeavesNoGap(t *testing.T) {
	fs := sim.New(8)
	dir := "/node/.journal"
	j, err := Open(dir, Options{FS: fs, SegmentSize: 4096, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	fs.SetFault(func(op sim.Op, name string) error {
		if op == sim.OpRemove && strings.HasSuffix(name, segName(2)) {
			return syscall.EIO
		}
		return nil
	})
	var mu sync.Mutex
	seq := uint64(0)
	if err := j.Attach("a", 0, func() {
		mu.Lock()
		defer mu.Unlock()
		j.Checkpoint("a", seq)
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 400; i++ {
		mu.Lock()
		err := j.Commit("a", batch(seq+1, 3))
		if err == nil {
			seq += 3
		}
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	cut := fs.PowerCut()
	j2, err := Open(dir, Options{FS: cut, SegmentSize: 4096, Logger: quiet()})
	if err != nil {
		t.Fatalf("Open after a failed segment removal: %v", err)
	}
	j2.Close()
}
