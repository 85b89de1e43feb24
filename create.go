package rewardpool

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/rewardpool/rewardpool/internal/fsys"
	"github.com/rewardpool/rewardpool/pool"
	"github.com/rewardpool/rewardpool/wal"
)

// create makes a new pool in dir when it holds nothing a pool writes (no
// identity, no log, no snapshot), and reports whether it did; a used
// directory is left to recover.
//
// A node creates hundreds of pools on its first start, and each used to
// make about ten fsyncs: every directory, the identity and the first log
// segment were made durable one step at a time. Here everything is built
// first and made durable at the end, with one fsync per file and one per
// directory:
//
//  1. the rules are checked and the catalog is built in memory (bad
//     options fail before any write);
//  2. snapshots/ and wal/ are created, not synced;
//  3. the seed batch goes into the first log segment, which the log
//     fsyncs once (header and batch) before renaming it into place, then
//     fsyncs wal/;
//  4. IDENTITY is written (temp file, fsync, rename) with its final
//     content: ceilings above the seed, Written once the seed is durable,
//     Unsynced for a run that answers before the fsync, Journaled for one
//     that commits through a node journal;
//  5. the pool directory and every directory above it are fsynced,
//     bottom-up.
//
// Why a power cut anywhere in between is safe (TestPowerLossDuringCreation
// cuts at every step): nothing was acknowledged before Open returns, so
// every state a cut leaves must only open again. The simulator's model (and
// a journaling file system's) keeps a directory's entry changes as an
// ordered prefix; IDENTITY is the pool directory's last new entry, so an
// IDENTITY that survives comes with wal/ and snapshots/, and it is written
// only after the seed is durable in wal/, so Written never claims a batch
// that a cut can take back. Without IDENTITY, a directory whose log
// survived is recovered as one written before identities existed (its
// identity is then created from the log), and one whose log did not is new
// again. Both temp files (the segment's and the identity's) hold complete
// content before their rename, and Open drops leftover temp files.
func (e *Engine) create() (bool, error) {
	used, err := dirUsed(e.fs, e.dir)
	if err != nil || used {
		return false, err
	}
	// Options that cannot open the pool must not create it.
	if err := e.checkOptionRules(); err != nil {
		return false, err
	}
	start := time.Now()
	w := &e.w
	w.rng = newRand(e.opts.Seed)
	w.epoch = 1
	w.window = e.opts.IdempotencyWindow
	w.cat, _ = pool.New(nil)
	seeding := len(e.opts.Items) > 0 && !e.opts.Replica
	if seeding {
		w.recs = slices.Grow(w.recs[:0], len(e.opts.Items))
		w.cat.Grow(len(e.opts.Items))
		for _, it := range e.opts.Items {
			slot, err := w.cat.Add(it)
			if err != nil {
				return false, fmt.Errorf("%w: Items: %w", ErrBadOptions, err)
			}
			w.seq++
			w.recs = append(w.recs, wal.Record{Seq: w.seq, Epoch: w.epoch, Kind: wal.KindAdd,
				Item: slot, ItemID: it.ID, Quantity: it.Quantity, Weight: it.Weight})
		}
		w.recs[len(w.recs)-1].Commit = true
	}
	for _, sub := range []string{snapDir, walDir} {
		if _, err := fsys.Mkdirs(e.fs, filepath.Join(e.dir, sub), 0o755); err != nil {
			return false, fmt.Errorf("rewardpool: create %s: %w", filepath.Join(e.dir, sub), err)
		}
	}
	walOpts := e.opts.walOptions()
	walOpts.ParentSyncs = true // the pool directory is synced below, once
	if w.wal, err = wal.Open(filepath.Join(e.dir, walDir), walOpts); err != nil {
		return false, fmt.Errorf("rewardpool: open log: %w", err)
	}
	if seeding {
		// The first batch of a log creates its segment, which makes the
		// batch durable with the segment's own fsync; Sync is then free.
		if err := w.wal.Append(w.recs); err != nil {
			return false, fmt.Errorf("%w: seed catalog: %w", ErrWAL, err)
		}
		if err := w.wal.Sync(); err != nil {
			return false, fmt.Errorf("%w: seed catalog: %w", ErrWAL, err)
		}
		w.recs = nil // as long as the catalog: batches grow their own
	}
	// The run's flags as settleIdentity would set them for a used
	// directory: before its fsync (unsynced), through a node journal.
	w.ident, err = writeNewIdentity(e.fs, e.dir, identity{
		Written:    seeding,
		Unsynced:   e.opts.Durability != DurabilityAlways && !e.opts.Replica,
		Journaled:  e.opts.Journal != nil && e.opts.Durability == DurabilityAlways,
		SeqCeiling: w.seq + ceilingStep,
		IDCeiling:  w.reqID + ceilingStep,
	}, fsys.WriteFileSynced)
	if err != nil {
		return false, err
	}
	if err := fsys.SyncPath(e.fs, e.dir); err != nil {
		return false, fmt.Errorf("rewardpool: create %s: %w", e.dir, err)
	}
	e.log.Info("rewardpool: created",
		"dir", e.dir, "last_seq", w.seq, "items", len(e.opts.Items), "took", time.Since(start))
	return true, nil
}
