package rewardpool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/internal/fsys/sim"
	"github.com/rewardpool/rewardpool/wal"
)

// The tests in this file attack the data-safety promises at crash points
// the random power-loss test does not reach: a power cut during `wal
// repair`, during `wal reseed`, and during the Open that applies the floors
// they recorded. Each one rebuilds the same damaged directory on the
// simulator, cuts the power at the k-th mutating file-system operation for
// every k until the operation completes, restarts as an operator would
// (running the tool again when Open says so) and checks that no request id
// that may have been acknowledged is handed out again.

const reviewDir = "/data/pool"

// reviewOptions: one unlimited item, small segments, no snapshots, so a
// repair loses acknowledged draws.
func reviewOptions(fs *sim.FS) Options {
	o := testOptions()
	o.Items = []Item{{ID: "coin", Quantity: Unlimited, Weight: WeightUnit}, {ID: "gem", Quantity: 1000, Weight: WeightUnit}}
	o.SegmentSize = 2 << 10
	o.SnapshotEvery = 1 << 40
	o.fs = fs
	return o
}

// damagedLog writes 600 acknowledged draws on a new simulator, crashes,
// and flips a byte in a middle segment. It returns the file system as it
// came back and the highest acknowledged request id and seq.
func damagedLog(t *testing.T, seed uint64) (fs *sim.FS, maxID, maxSeq uint64) {
	t.Helper()
	fs = sim.New(seed)
	e := mustOpen(t, reviewDir, reviewOptions(fs))
	for range 120 {
		for _, r := range mustDraw(t, e, DrawRequest{Count: 5}) {
			maxID = max(maxID, r.RequestID)
		}
	}
	maxSeq = e.LastSeq()
	fs = fs.PowerCut()
	abandon(t, e)
	segs, err := fs.ReadDir(filepath.Join(reviewDir, walDir))
	if err != nil || len(segs) < 4 {
		t.Fatalf("want at least 4 segments: %v %v", segs, err)
	}
	mid := filepath.Join(reviewDir, walDir, segs[len(segs)/2].Name())
	info, _ := segs[len(segs)/2].Info()
	if err := fs.FlipBit(mid, info.Size()/3, 6); err != nil {
		t.Fatal(err)
	}
	plan, err := wal.PlanRepair(filepath.Join(reviewDir, walDir), wal.Options{FS: fs, Logger: quietLogger()})
	if err != nil || plan.Segment == "" || len(plan.Cut) == 0 {
		t.Fatalf("the flipped bit is not damage a repair cuts: %+v, %v", plan, err)
	}
	return fs, maxID, maxSeq
}

// openAsOperator opens the pool; if Open refuses with a damaged log it
// runs repair (no crash) and opens again, as the error message says.
func openAsOperator(fs *sim.FS) (*Engine, error) {
	e, err := Open(reviewDir, reviewOptions(fs))
	if err == nil {
		return e, nil
	}
	if _, rerr := repairLog(fs, reviewDir, quietLogger()); rerr != nil {
		return nil, fmt.Errorf("open: %v; repair: %w", err, rerr)
	}
	return Open(reviewDir, reviewOptions(fs))
}

// checkAbove draws once and checks the new request id and seq are above
// every one that may have been handed out before.
func checkAbove(t *testing.T, e *Engine, maxID, maxSeq uint64, where string) {
	t.Helper()
	res, err := e.Draw(ctx, DrawRequest{})
	if err != nil {
		t.Fatalf("%s: draw: %v", where, err)
	}
	if res[0].RequestID <= maxID {
		t.Fatalf("%s: request id %d handed out again (ids up to %d were acknowledged)", where, res[0].RequestID, maxID)
	}
	if e.LastSeq() <= maxSeq {
		t.Fatalf("%s: seq %d used again (seqs up to %d were written)", where, e.LastSeq(), maxSeq)
	}
}

// crashPoints runs op on a fresh copy of a scenario with the power cut at
// the k-th mutating operation, k = 1, 2, ..., until op completes without a
// cut, calling after with the file system as it came back.
func crashPoints(t *testing.T, build func() *sim.FS, op func(fs *sim.FS) error, after func(fs *sim.FS, k int)) {
	t.Helper()
	for k := 1; k < 500; k++ {
		fs := build()
		fs.CrashAfter(k)
		err := op(fs)
		select {
		case <-fs.Crashed():
		default:
			if err != nil {
				t.Fatalf("no cut at %d: %v", k, err)
			}
			fs.CrashAfter(0)
			after(fs, 0)
			return
		}
		after(fs.AfterCrash(), k)
	}
	t.Fatal("the operation never completed")
}

func TestPowerCutDuringRepairNeverReusesIDs(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		powerCutDuringRepair(t, seed)
	}
}

func powerCutDuringRepair(t *testing.T, seed uint64) {
	var maxID, maxSeq uint64
	build := func() *sim.FS {
		var fs *sim.FS
		fs, maxID, maxSeq = damagedLog(t, seed)
		return fs
	}
	crashPoints(t, build, func(fs *sim.FS) error {
		_, err := repairLog(fs, reviewDir, quietLogger())
		return err
	}, func(fs *sim.FS, k int) {
		e, err := openAsOperator(fs)
		if err != nil {
			t.Fatalf("seed %d, cut at op %d of repair: %v", seed, k, err)
		}
		defer e.Close()
		checkAbove(t, e, maxID, maxSeq, fmt.Sprintf("seed %d, cut at op %d of repair", seed, k))
	})
}

// After a repair, the Open that applies the floors writes a snapshot at
// the seq floor and sets the old log aside: cut the power there.
func TestPowerCutDuringOpenAfterRepairNeverReusesIDs(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		powerCutDuringOpenAfterRepair(t, seed)
	}
}

func powerCutDuringOpenAfterRepair(t *testing.T, seed uint64) {
	var maxID, maxSeq uint64
	build := func() *sim.FS {
		fs, mi, ms := damagedLog(t, seed)
		maxID, maxSeq = mi, ms
		if _, err := repairLog(fs, reviewDir, quietLogger()); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	crashPoints(t, build, func(fs *sim.FS) error {
		e, err := Open(reviewDir, reviewOptions(fs))
		if err != nil {
			return err
		}
		// One acknowledged draw above the floors, then a clean close.
		res, err := e.Draw(ctx, DrawRequest{})
		if err == nil {
			maxID = max(maxID, res[0].RequestID)
		}
		return errors.Join(err, e.Close())
	}, func(fs *sim.FS, k int) {
		e, err := openAsOperator(fs)
		if err != nil {
			t.Fatalf("seed %d, cut at op %d of open after repair: %v", seed, k, err)
		}
		defer e.Close()
		checkAbove(t, e, maxID, maxSeq, fmt.Sprintf("seed %d, cut at op %d of open after repair", seed, k))
	})
}

// unprovableDir writes acknowledged draws with frequent snapshots (so the
// log's first segments are deleted), crashes and damages every snapshot:
// Open refuses with ErrUnprovable, and `wal reseed` is the override.
func unprovableDir(t *testing.T, seed uint64) (fs *sim.FS, maxID, maxSeq uint64) {
	t.Helper()
	fs = sim.New(seed)
	o := reviewOptions(fs)
	o.SnapshotEvery = 40
	// Two runs, each ending in a clean close (a snapshot): the second
	// close's snapshot and the first's cover the first segments, which go.
	for range 2 {
		e := mustOpen(t, reviewDir, o)
		for range 150 {
			for _, r := range mustDraw(t, e, DrawRequest{Count: 5}) {
				maxID = max(maxID, r.RequestID)
			}
		}
		maxSeq = e.LastSeq()
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fs = fs.PowerCut()
	damageSimSnapshots(t, fs)
	if _, err := Open(reviewDir, reviewOptions(fs)); !errors.Is(err, ErrUnprovable) {
		t.Fatalf("Open with damaged snapshots and a pruned log = %v, want ErrUnprovable", err)
	}
	return fs, maxID, maxSeq
}

// damageSimSnapshots flips a bit in the middle of every snapshot file.
func damageSimSnapshots(t *testing.T, fs *sim.FS) int {
	t.Helper()
	ents, err := fs.ReadDir(filepath.Join(reviewDir, snapDir))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ent := range ents {
		if filepath.Ext(ent.Name()) != ".snap" {
			continue
		}
		info, _ := ent.Info()
		if err := fs.FlipBit(filepath.Join(reviewDir, snapDir, ent.Name()), info.Size()/2, 3); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// A power cut during `wal reseed`, or during the Open that seeds the pool
// afresh, must leave a directory that either refuses (run reseed again) or
// continues above every seq and request id ever handed out; and once the
// reseeded pool is running, losing its snapshot must not let it be seeded
// from scratch a second time, with seqs from 1.
func TestPowerCutDuringReseedNeverGoesBack(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		var maxID, maxSeq uint64
		build := func() *sim.FS {
			var fs *sim.FS
			fs, maxID, maxSeq = unprovableDir(t, seed)
			return fs
		}
		crashPoints(t, build, func(fs *sim.FS) error {
			if _, err := reseedLog(fs, reviewDir, quietLogger()); err != nil {
				return err
			}
			e, err := Open(reviewDir, reviewOptions(fs))
			if err != nil {
				return err
			}
			return e.Close()
		}, func(fs *sim.FS, k int) {
			where := fmt.Sprintf("seed %d, cut at op %d of reseed and open", seed, k)
			e, err := Open(reviewDir, reviewOptions(fs))
			if errors.Is(err, ErrUnprovable) {
				if _, err := reseedLog(fs, reviewDir, quietLogger()); err != nil {
					t.Fatalf("%s: reseed again: %v", where, err)
				}
				e, err = Open(reviewDir, reviewOptions(fs))
			}
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if e.LastSeq() <= maxSeq {
				t.Fatalf("%s: reseeded pool at seq %d, not above %d", where, e.LastSeq(), maxSeq)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			// Before any draw, the reseeded pool's snapshot is damaged.
			if damageSimSnapshots(t, fs) == 0 {
				t.Fatalf("%s: no snapshot after the reseed", where)
			}
			e, err = Open(reviewDir, reviewOptions(fs))
			if errors.Is(err, ErrUnprovable) {
				return
			}
			if err != nil {
				t.Fatalf("%s: open after the reseeded snapshot was damaged: %v", where, err)
			}
			defer e.Close()
			checkAbove(t, e, maxID, maxSeq, where+", then the reseeded snapshot damaged")
		})
	}
}

// Under DurabilityInterval a draw is acknowledged after the write, before
// the fsync, so a power cut may lose it: the documented risk. Its request
// id must still never be handed out again. A cut can lose the unsynced
// batches whole (the file comes back at its synced size, or a new
// segment's name is lost), leaving no torn bytes for Open to notice; and
// the restart may run in another durability mode.
func TestIntervalPowerCutNeverReusesAcknowledgedIDs(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		for _, restart := range []Durability{DurabilityInterval, DurabilityAlways} {
			fs := sim.New(seed)
			o := reviewOptions(fs)
			o.Durability, o.SyncInterval = DurabilityInterval, time.Hour
			e := mustOpen(t, reviewDir, o)
			var maxID uint64
			for range 50 {
				for _, r := range mustDraw(t, e, DrawRequest{Count: 3}) {
					maxID = max(maxID, r.RequestID)
				}
			}
			fs = fs.PowerCut()
			abandon(t, e)
			o.fs, o.Durability = fs, restart
			e, err := Open(reviewDir, o)
			if err != nil {
				t.Fatalf("seed %d: open after the cut: %v", seed, err)
			}
			next := mustDraw(t, e, DrawRequest{})[0].RequestID
			e.Close()
			if next <= maxID {
				t.Fatalf("seed %d, restart under %s: request id %d handed out again (ids up to %d were acknowledged)", seed, restart, next, maxID)
			}
		}
	}
}

// The engine's side of the torn-rule false positive (see the wal test
// TestFlippedLengthInLastBatchIsDamage): under the default options a bit
// flipped in the length of the last record, after a crash, makes Open cut
// the last acknowledged batch as torn, and its request id is handed out
// again.
func TestFlippedLengthInLastBatchNeverReusesIDs(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.Items = []Item{{ID: "coin", Quantity: Unlimited, Weight: WeightUnit}}
	o.SnapshotEvery = 1 << 40
	e := mustOpen(t, dir, o)
	var maxID uint64
	for range 20 {
		maxID = mustDraw(t, e, DrawRequest{})[0].RequestID
	}
	abandon(t, e) // a crash: no final snapshot covers the log
	segs, _ := filepath.Glob(filepath.Join(dir, walDir, "*.wal"))
	seg := segs[len(segs)-1]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Binary records with one-byte lengths: length, body, CRC32C.
	last := int64(-1)
	for off := int64(wal.HeaderSize); off < int64(len(b)) && b[off] != 0; off += 1 + int64(b[off]) + 4 {
		if b[off] >= 0x80 {
			t.Fatalf("record at %d has a long length", off)
		}
		last = off
	}
	b[last] ^= 0x40
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err = Open(dir, o)
	if err != nil {
		return // refusing a damaged log keeps the promise
	}
	defer e.Close()
	if next := mustDraw(t, e, DrawRequest{})[0].RequestID; next <= maxID {
		t.Fatalf("request id %d handed out again (ids up to %d were acknowledged)", next, maxID)
	}
}

// A directory written before identities existed (no IDENTITY) whose last
// segment is damaged near its start: the binary records after the damage
// cannot be decoded, and repair reserves only a fixed step (ceilingStep)
// above the ids it can see. A segment holds far more draws than that (64
// MiB of 11-byte records), so the next request id can land on one that was
// acknowledged.
func TestLegacyRepairReservesAboveUndecodedDraws(t *testing.T) {
	if testing.Short() {
		t.Skip("writes about 1.1 million records")
	}
	dir := t.TempDir()
	o := testOptions()
	o.Items = []Item{{ID: "coin", Quantity: Unlimited, Weight: WeightUnit}}
	e := mustOpen(t, dir, o)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// What an engine without identities left: the same files, no IDENTITY,
	// and ceilingStep + 100,000 more acknowledged draws in the log.
	if err := os.Remove(filepath.Join(dir, identityFile)); err != nil {
		t.Fatal(err)
	}
	l, err := wal.Open(filepath.Join(dir, walDir), wal.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	seq, id := l.LastSeq(), uint64(0)
	batch := make([]wal.Record, 10_000)
	for range (ceilingStep + 100_000) / len(batch) {
		for i := range batch {
			seq++
			id++
			batch[i] = wal.Record{Seq: seq, Epoch: 1, Kind: wal.KindDraw, Item: 0, RequestID: id}
		}
		batch[len(batch)-1].Commit = true
		if err := l.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(l.Sync(), l.Close()); err != nil {
		t.Fatal(err)
	}
	maxID := id
	segs, _ := filepath.Glob(filepath.Join(dir, walDir, "*.wal"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Damage early in the draws: a flipped byte well inside a record.
	b := make([]byte, 1)
	at := int64(wal.HeaderSize + 1000)
	f.ReadAt(b, at)
	b[0] ^= 0x10
	f.WriteAt(b, at)
	f.Close()

	rep, err := RepairLog(dir, quietLogger())
	if err != nil {
		t.Fatalf("RepairLog: %v", err)
	}
	if rep.NextRequestIDAbove < maxID {
		t.Errorf("repair: next request id above %d, but ids up to %d were written (undecoded bytes %d)",
			rep.NextRequestIDAbove, maxID, rep.Removed.UndecodedBytes)
	}
	e, err = Open(dir, o)
	if err != nil {
		t.Fatalf("Open after repair: %v", err)
	}
	defer e.Close()
	if next := mustDraw(t, e, DrawRequest{})[0].RequestID; next <= maxID {
		t.Fatalf("request id %d handed out again (ids up to %d were acknowledged)", next, maxID)
	}
}

// appendDraws appends n draws with consecutive seqs and request ids after
// the log's end, in batches of 10,000, and returns the last request id.
func appendDraws(t *testing.T, l *wal.Log, n int) uint64 {
	t.Helper()
	seq, id := l.LastSeq(), uint64(0)
	batch := make([]wal.Record, 10_000)
	for range n / len(batch) {
		for i := range batch {
			seq++
			id++
			batch[i] = wal.Record{Seq: seq, Epoch: 1, Kind: wal.KindDraw, Item: 0, RequestID: id}
		}
		batch[len(batch)-1].Commit = true
		if err := l.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	return id
}

// `wal reseed` on a directory written before identities existed, in the
// state reseed is for: its snapshots are damaged and its log no longer
// starts at seq 1. The identity it builds must bound every request id the
// log holds, not only those of a snapshot it could not read.
func TestLegacyReseedKeepsIDsAboveTheLog(t *testing.T) {
	if testing.Short() {
		t.Skip("writes about 1.1 million records")
	}
	dir := t.TempDir()
	o := testOptions()
	o.Items = []Item{{ID: "coin", Quantity: Unlimited, Weight: WeightUnit}}
	o.SegmentSize = 4 << 10
	e := mustOpen(t, dir, o)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, identityFile)); err != nil {
		t.Fatal(err)
	}
	// The draws go to new segments (each batch is larger than one); the
	// first segment (the seed) is then deleted, as snapshots let it be.
	l, err := wal.Open(filepath.Join(dir, walDir), wal.Options{Logger: quietLogger(), SegmentSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	maxID := appendDraws(t, l, ceilingStep+100_000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, walDir, "*.wal"))
	if len(segs) < 2 {
		t.Fatalf("want two segments, got %v", segs)
	}
	if err := os.Remove(segs[0]); err != nil {
		t.Fatal(err)
	}
	damageSnapshots(t, dir)
	if _, err := Open(dir, o); !errors.Is(err, ErrUnprovable) {
		t.Fatalf("Open = %v, want ErrUnprovable", err)
	}
	if _, err := ReseedLog(dir, quietLogger()); err != nil {
		t.Fatalf("ReseedLog: %v", err)
	}
	e, err = Open(dir, o)
	if err != nil {
		t.Fatalf("Open after reseed: %v", err)
	}
	defer e.Close()
	if next := mustDraw(t, e, DrawRequest{})[0].RequestID; next <= maxID {
		t.Fatalf("request id %d handed out again (ids up to %d were acknowledged)", next, maxID)
	}
}

// A replica bootstrapped from its primary's snapshot holds the pool's state
// before it has written a record of its own. If that snapshot is later
// damaged, the directory must refuse to start (it is used), not seed the
// pool from scratch when started as a primary: request ids would restart
// at 1, reusing the primary's, and every item would be back at full stock.
func TestBootstrappedReplicaIsNeverSeededAgain(t *testing.T) {
	primary, replica := t.TempDir(), t.TempDir()
	o := testOptions()
	e := mustOpen(t, primary, o)
	for range 10 {
		mustDraw(t, e, DrawRequest{Count: 2})
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	ro := o
	ro.Replica = true
	e = mustOpen(t, replica, ro)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Install the primary's snapshot as the replica's only state, as a
	// bootstrap does, and let the replica open on it.
	snaps, _ := filepath.Glob(filepath.Join(primary, snapDir, "*.snap"))
	b, err := os.ReadFile(snaps[len(snaps)-1])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(replica, snapDir, filepath.Base(snaps[len(snaps)-1])), b, 0o644); err != nil {
		t.Fatal(err)
	}
	e = mustOpen(t, replica, ro)
	if st := mustState(t, e); st.LastRequestID != 20 {
		t.Fatalf("bootstrapped replica at request id %d, want 20", st.LastRequestID)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	damageSnapshots(t, replica)
	e, err = Open(replica, o)
	if errors.Is(err, ErrUnprovable) {
		return
	}
	if err != nil {
		t.Fatalf("Open = %v, want ErrUnprovable", err)
	}
	st := mustState(t, e)
	e.Close()
	t.Fatalf("a bootstrapped replica's directory whose snapshot is damaged was seeded again: %+v", st)
}

// The same for a directory written before identities existed: the run that
// gives it its IDENTITY must also record that it answers before the fsync,
// or a power cut in that first run lets its acknowledged ids be reused.
func TestLegacyIntervalPowerCutNeverReusesAcknowledgedIDs(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		fs := sim.New(seed)
		o := reviewOptions(fs)
		e := mustOpen(t, reviewDir, o)
		mustDraw(t, e, DrawRequest{Count: 3})
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		// As written by a version without IDENTITY.
		if err := fs.Remove(reviewDir + "/" + identityFile); err != nil {
			t.Fatal(err)
		}
		fs.SyncDir(reviewDir)
		o.Durability, o.SyncInterval = DurabilityInterval, time.Hour
		e = mustOpen(t, reviewDir, o)
		var maxID uint64
		for range 50 {
			for _, r := range mustDraw(t, e, DrawRequest{Count: 3}) {
				maxID = max(maxID, r.RequestID)
			}
		}
		fs = fs.PowerCut()
		abandon(t, e)
		o.fs = fs
		e, err := Open(reviewDir, o)
		if err != nil {
			t.Fatalf("seed %d: open after the cut: %v", seed, err)
		}
		next := mustDraw(t, e, DrawRequest{})[0].RequestID
		e.Close()
		if next <= maxID {
			t.Fatalf("seed %d: request id %d handed out again (ids up to %d were acknowledged)", seed, next, maxID)
		}
	}
}
