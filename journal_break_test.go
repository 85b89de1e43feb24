package rewardpool

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/rewardpool/rewardpool/internal/fsys"
	"github.com/rewardpool/rewardpool/internal/fsys/sim"
	"github.com/rewardpool/rewardpool/journal"
	"github.com/rewardpool/rewardpool/wal"
)

// Two pools whose directories share a base name get the same default
// JournalName. Sharing one journal, their batches would interleave under
// one name (a batch from seq 1 after one ending at 3): after a power cut
// the journal refuses to open, or replays one pool's draws onto the
// other's log. The second Open must be refused instead.
func TestTwoPoolsWithOneJournalName(t *testing.T) {
	fs := sim.New(5)
	jopts := journal.Options{FS: fs, Logger: quietLogger(), SegmentSize: 4096}
	opts := func(j *journal.Journal) Options {
		return Options{Items: []Item{{ID: "gem", Quantity: 50, Weight: WeightUnit}}, Logger: quietLogger(), Journal: j, fs: fs}
	}
	j, err := journal.Open("/node/.journal", jopts)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open("/node/east/x", opts(j))
	if err != nil {
		t.Fatal(err)
	}
	acked, err := a.Draw(ctx, DrawRequest{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open("/node/west/x", opts(j))
	if err == nil {
		if _, err := b.Draw(ctx, DrawRequest{Count: 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Draw(ctx, DrawRequest{Count: 1}); err != nil {
			t.Fatal(err)
		}
	} else if !errors.Is(err, journal.ErrInUse) {
		t.Fatalf("second pool named %q in the journal: %v, want journal.ErrInUse", "x", err)
	}
	fs = fs.PowerCut()

	jopts.FS = fs
	j, err = journal.Open("/node/.journal", jopts)
	if err != nil {
		t.Fatalf("journal after a power cut: %v", err)
	}
	defer j.Close()
	a, err = Open("/node/east/x", opts(j))
	if err != nil {
		t.Fatalf("reopen the first pool: %v", err)
	}
	defer a.Close()
	st, err := a.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastRequestID < acked[2].RequestID || quantities(st)["gem"] > 47 {
		t.Fatalf("first pool after the power cut: last id %d, gem %d; want >= %d and <= 47",
			st.LastRequestID, quantities(st)["gem"], acked[2].RequestID)
	}
}

// An Open whose Redo fails part way (here: the pool's log refuses the
// write that puts the journal's batches back, after Redo cut the log's
// unacknowledged tail) must leave those batches in the journal: a retry
// in the same process replays them. Dropping them at the first attempt
// let the retry open a log without the acknowledged draws, and its Attach
// then made the journal forget them for good.
func TestRedoThatFailsIsReplayedByTheRetry(t *testing.T) {
	fs := sim.New(7)
	jopts := journal.Options{FS: fs, Logger: quietLogger(), SegmentSize: 4096}
	opts := func(j *journal.Journal) Options {
		return Options{Items: []Item{{ID: "gem", Quantity: 50, Weight: WeightUnit}}, Logger: quietLogger(), Journal: j, fs: fs}
	}
	j, err := journal.Open("/node/.journal", jopts)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open("/node/p", opts(j))
	if err != nil {
		t.Fatal(err)
	}
	acked, err := e.Draw(ctx, DrawRequest{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	fs = fs.PowerCut()

	jopts.FS = fs
	j, err = journal.Open("/node/.journal", jopts)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if !j.Pending("p") {
		t.Fatal("the journal holds nothing for the pool: the test needs its batches there")
	}
	armed := true
	fs.SetFault(func(op sim.Op, name string) error {
		if armed && op == sim.OpWrite && strings.HasPrefix(name, "/node/p/wal/") {
			armed = false
			return syscall.EIO
		}
		return nil
	})
	if e, err := Open("/node/p", opts(j)); err == nil {
		e.Close()
		t.Fatal("open succeeded though its redo could not write the log")
	}
	fs.SetFault(nil)
	e, err = Open("/node/p", opts(j))
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	defer e.Close()
	st, err := e.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastRequestID < acked[2].RequestID || quantities(st)["gem"] != 47 {
		t.Fatalf("after a retried open: last id %d, gem %d; want >= %d and 47 (acknowledged draws lost)",
			st.LastRequestID, quantities(st)["gem"], acked[2].RequestID)
	}
}

// A pool directory that is gone (deleted by an operator, or a pool
// removed and later added again under its name) while the journal still
// holds batches for it: Redo must not lay the journal's batches, which
// continue a history this directory no longer has, into a new log.
func TestRedoOntoAMissingDirectory(t *testing.T) {
	fs := sim.New(9)
	jopts := journal.Options{FS: fs, Logger: quietLogger(), SegmentSize: 4096}
	opts := func(j *journal.Journal) Options {
		return Options{Items: []Item{{ID: "gem", Quantity: 50, Weight: WeightUnit}}, Logger: quietLogger(), Journal: j, fs: fs}
	}
	j, err := journal.Open("/node/.journal", jopts)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open("/node/p", opts(j))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Draw(ctx, DrawRequest{Count: 4}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if e, err = Open("/node/p", opts(j)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Draw(ctx, DrawRequest{Count: 3}); err != nil {
		t.Fatal(err)
	}
	fs = fs.PowerCut()
	if err := fsys.RemoveAll(fs, "/node/p"); err != nil {
		t.Fatal(err)
	}

	jopts.FS = fs
	j, err = journal.Open("/node/.journal", jopts)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	e, err = Open("/node/p", opts(j))
	if err != nil {
		t.Log(err)
		return // refused: nothing built on a partial history
	}
	defer e.Close()
	st, err := e.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := quantities(st)["gem"]; g != 50 {
		t.Fatalf("a new pool in place of the lost one has gem %d, want 50 (or a refused Open): the journal's batches were replayed onto a log that never had the history before them", g)
	}
}

// A journaled directory that lost power and comes back under another
// name (the pool renamed, its directory moved) finds nothing under its
// new name in the journal: its last acknowledged draws are there under
// the old one. Open must refuse, as it does without a journal, instead
// of serving a state that lacks them.
func TestJournaledDirectoryUnderAnotherName(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		fs := sim.New(seed)
		jopts := journal.Options{FS: fs, Logger: quietLogger(), SegmentSize: 4096}
		opts := func(j *journal.Journal) Options {
			return Options{Items: []Item{{ID: "gem", Quantity: 50, Weight: WeightUnit}}, Logger: quietLogger(), Journal: j, fs: fs}
		}
		j, err := journal.Open("/node/.journal", jopts)
		if err != nil {
			t.Fatal(err)
		}
		e, err := Open("/node/p", opts(j))
		if err != nil {
			t.Fatal(err)
		}
		acked, err := e.Draw(ctx, DrawRequest{Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		fs = fs.PowerCut()
		if err := fsys.Rename(fs, "/node/p", "/node/q"); err != nil {
			t.Fatal(err)
		}

		jopts.FS = fs
		j, err = journal.Open("/node/.journal", jopts)
		if err != nil {
			t.Fatal(err)
		}
		e, err = Open("/node/q", opts(j))
		if err != nil {
			if !errors.Is(err, ErrJournalPending) {
				t.Errorf("seed %d: open under another name: %v, want ErrJournalPending", seed, err)
			}
			j.Close()
			continue
		}
		st, err := e.State(ctx)
		e.Close()
		j.Close()
		if err != nil {
			t.Fatal(err)
		}
		if st.LastRequestID < acked[2].RequestID || quantities(st)["gem"] != 47 {
			t.Fatalf("seed %d: opened under another name: last id %d, gem %d; want >= %d and 47 (acknowledged draws missing)",
				seed, st.LastRequestID, quantities(st)["gem"], acked[2].RequestID)
		}
	}
}

// The journal holds a pool's batches from a run that lost power, and the
// pool's directory is then replaced by one with its own history (rebuilt
// from a replica, restored, bootstrapped again after a wipe) that never
// ran with the journal. Redo must not cut that log and lay the old
// batches onto it.
func TestRedoOntoAReplacedDirectory(t *testing.T) {
	fs := sim.New(11)
	jopts := journal.Options{FS: fs, Logger: quietLogger(), SegmentSize: 4096}
	items := []Item{{ID: "gem", Quantity: 50, Weight: WeightUnit}}
	j, err := journal.Open("/node/.journal", jopts)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open("/node/p", Options{Items: items, Logger: quietLogger(), Journal: j, fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Draw(ctx, DrawRequest{Count: 3}); err != nil {
		t.Fatal(err)
	}
	fs = fs.PowerCut()
	// The new directory: the same pool rebuilt elsewhere, without the
	// journal, with a history of its own.
	if err := fsys.RemoveAll(fs, "/node/p"); err != nil {
		t.Fatal(err)
	}
	n, err := Open("/node/p", Options{Items: items, Logger: quietLogger(), fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Draw(ctx, DrawRequest{Count: 10}); err != nil {
		t.Fatal(err)
	}
	want, err := n.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	jopts.FS = fs
	j, err = journal.Open("/node/.journal", jopts)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	e, err = Open("/node/p", Options{Items: items, Logger: quietLogger(), Journal: j, fs: fs})
	if err != nil {
		t.Log(err)
		return // refused: the directory is left as it was
	}
	defer e.Close()
	st, err := e.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Seq != want.Seq || st.LastRequestID != want.LastRequestID || quantities(st)["gem"] != quantities(want)["gem"] {
		t.Fatalf("the replaced directory after Open with the journal: seq %d, last id %d, gem %d; it held seq %d, last id %d, gem %d",
			st.Seq, st.LastRequestID, quantities(st)["gem"], want.Seq, want.LastRequestID, quantities(want)["gem"])
	}
	// Its log, which replicas and audits read, still holds its own history.
	var seqs []uint64
	if err := e.ScanLog(1, func(r *wal.Record) error { seqs = append(seqs, r.Seq); return nil }); err != nil {
		t.Fatalf("scan the log: %v", err)
	}
	if len(seqs) == 0 || seqs[0] != 1 || seqs[len(seqs)-1] != want.Seq || uint64(len(seqs)) != want.Seq {
		t.Fatalf("the replaced directory's log holds seqs %v, want 1..%d: the journal's old batches were laid onto it", seqs, want.Seq)
	}
}

// A pool that fails in a run (its log refused a write) closes without
// clearing its journaled mark; reopening it in the same run, with the
// same journal, must work even when the journal recovered other pools'
// entries and none of its own.
func TestFailedPoolReopensWithItsJournal(t *testing.T) {
	fs := sim.New(13)
	jopts := journal.Options{FS: fs, Logger: quietLogger(), SegmentSize: 4096}
	opts := func(j *journal.Journal) Options {
		return Options{Items: []Item{{ID: "gem", Quantity: 50, Weight: WeightUnit}}, Logger: quietLogger(), Journal: j, fs: fs}
	}
	j, err := journal.Open("/node/.journal", jopts)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open("/node/other", opts(j))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Draw(ctx, DrawRequest{Count: 1}); err != nil {
		t.Fatal(err)
	}
	fs = fs.PowerCut() // the journal now holds "other"

	jopts.FS = fs
	j, err = journal.Open("/node/.journal", jopts)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	e, err := Open("/node/p", opts(j))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Draw(ctx, DrawRequest{Count: 2}); err != nil {
		t.Fatal(err)
	}
	fs.SetFault(func(op sim.Op, name string) error {
		if op == sim.OpWrite && strings.HasPrefix(name, "/node/p/wal/") {
			return syscall.EIO
		}
		return nil
	})
	if _, err := e.Draw(ctx, DrawRequest{Count: 1}); err == nil {
		t.Fatal("draw succeeded though the log refused the write")
	}
	e.Close()
	fs.SetFault(nil)
	e, err = Open("/node/p", opts(j))
	if err != nil {
		t.Fatalf("reopen the failed pool with its journal: %v", err)
	}
	defer e.Close()
	st, err := e.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if quantities(st)["gem"] > 48 {
		t.Fatalf("gem %d after two acknowledged draws", quantities(st)["gem"])
	}
}
