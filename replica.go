package rewardpool

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rewardpool/rewardpool/wal"
)

// A replica engine follows another engine's log: it refuses draws and item
// changes (ErrReplica) and takes records through Apply, writing them to its
// own log with the same sequence numbers and applying them exactly as
// recovery replays them. Promote turns it into a primary.

// Apply appends records received from the primary, in order: the first
// must continue this engine's log (seq = last seq + 1), and the last must
// close a primary batch (Commit set), so a batch is never split. They are
// made durable per the durability mode, then applied; Committed observers
// see them, so replicas can cascade. A record this state cannot take (a
// draw of an item without stock, a gap) rejects the whole call with
// ErrRecovery and changes nothing.
func (e *Engine) Apply(ctx context.Context, recs []wal.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if !recs[len(recs)-1].Commit {
		return fmt.Errorf("%w: apply: last record (seq %d) does not end a batch", ErrInvalidRequest, recs[len(recs)-1].Seq)
	}
	c := e.calls.Get().(*call)
	c.op, c.apply = opApply, recs
	err := e.submit(ctx, c)
	if err == nil {
		err = c.err
	}
	e.release(c)
	return err
}

// decideApply replays one Apply call's records into memory and the batch;
// on a bad record it undoes them and reports why.
func (e *Engine) decideApply(recs []wal.Record) error {
	w := &e.w
	if !w.replica {
		return ErrNotReplica
	}
	from, start := len(w.recs), w.mark()
	w.applying = true
	defer func() { w.applying = false }()
	var pk pendingKey
	for i := range recs {
		r := recs[i] // a copy: replay fills Item/ItemID
		if err := w.replay(&r, &pk); err != nil {
			e.undo(from, start)
			return err
		}
		w.recs = append(w.recs, r)
	}
	if pk.key != "" {
		e.undo(from, start)
		return fmt.Errorf("%w: apply ends inside the draws of idempotency key %q", ErrRecovery, pk.key)
	}
	return nil
}

// Promote turns a replica into a primary: it starts a new epoch with an
// EPOCH record and from then on draws continue the sequence numbers and
// request ids it has, never reusing one. It returns the new epoch.
func (e *Engine) Promote(ctx context.Context) (uint64, error) {
	c := e.calls.Get().(*call)
	c.op = opPromote
	err := e.submit(ctx, c)
	if err == nil {
		err = c.err
	}
	epoch := c.epoch
	e.release(c)
	return epoch, err
}

func (e *Engine) decidePromote() error {
	w := &e.w
	if !w.replica {
		return ErrNotReplica
	}
	if w.promoting {
		return nil // a second Promote in the same batch shares the first's epoch
	}
	w.promoting = true
	// Ids this directory handed out before a repair or reseed cut them stay
	// used: a promoted replica continues above them too.
	w.reqID = max(w.reqID, w.ident.FloorID)
	w.seq++
	w.epoch = NextEpoch(w.epoch)
	w.recs = append(w.recs, wal.Record{Seq: w.seq, Epoch: w.epoch, Kind: wal.KindEpoch, Item: -1})
	return nil
}

// An epoch is a uint64 in two parts: the generation (a counter that each
// promotion raises by one) in the high 32 bits, and a random tag in the low
// 32 bits chosen by the promoting node. Ordering epochs as numbers orders
// them by generation first, so a later promotion is always newer; the tag
// makes two promotions of the same generation (two replicas of one primary
// promoted apart: a split brain) two different epochs, so that a follower
// can tell their histories apart by (epoch, seq). The first epoch of a new
// log is 1 (generation 0), as before; logs written before this scheme hold
// small counters, all generation 0, still ordered by value.
const epochTagBits = 32

// EpochGeneration returns the promotion count part of an epoch.
func EpochGeneration(epoch uint64) uint64 { return epoch >> epochTagBits }

// NextEpoch returns a new epoch one generation after prev, with a random
// non-zero tag.
func NextEpoch(prev uint64) uint64 {
	var b [4]byte
	var tag uint32
	for tag == 0 {
		if _, err := crand.Read(b[:]); err != nil {
			panic("rewardpool: crypto/rand failed: " + err.Error())
		}
		tag = binary.LittleEndian.Uint32(b[:])
	}
	return (EpochGeneration(prev)+1)<<epochTagBits | uint64(tag)
}

// promoted runs once the EPOCH record is durable.
func (e *Engine) promoted() {
	if !e.w.replica {
		return
	}
	e.w.replica = false
	e.replica.Store(false)
	e.log.Info("rewardpool: promoted to primary", "dir", e.dir, "epoch", e.w.epoch,
		"generation", EpochGeneration(e.w.epoch), "seq", e.w.seq,
		"last_request_id", e.w.reqID)
}

// Err returns the log failure that poisoned the engine (wrapping ErrWAL),
// or nil while its log works. Once set it stays set until the engine is
// reopened: every write fails meanwhile, so a server takes the node out of
// rotation on it.
func (e *Engine) Err() error {
	if p := e.failedErr.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrWAL, *p)
	}
	return nil
}

// IsReplica reports whether the engine follows a primary.
func (e *Engine) IsReplica() bool { return e.replica.Load() }

// LastSeq returns the seq of the last record written to the log (under
// DurabilityAlways, also fsynced).
func (e *Engine) LastSeq() uint64 { return e.lastSeq.Load() }

// Epoch returns the epoch of the last record written: epochs change only
// through records (promotions), so it is the epoch the log ends in.
func (e *Engine) Epoch() uint64 { return e.epoch.Load() }

// DurableSeq returns the seq of the last record fsynced (under
// DurabilityNone, written: that mode promises nothing). Replicas
// acknowledge this, and ScanLog reads up to it.
func (e *Engine) DurableSeq() uint64 { return e.durableSeq.Load() }

// FirstLogSeq returns the oldest seq still in the log on disk (0 if the log
// is empty): ScanLog from an older seq fails with wal.ErrGap.
func (e *Engine) FirstLogSeq() uint64 { return e.w.wal.FirstSeq() }

// errStopScan ends a ScanLog early without an error.
var errStopScan = errors.New("stop")

// ScanLog calls fn for each durable record with seq >= from, in order,
// reading the log segments on disk; it stops at DurableSeq as it was when
// the scan started, so a reader never sees a record a power loss could
// still take back. Records read back from the binary codec name their item by
// catalog slot (Item) only. from older than the oldest kept segment gives
// an error wrapping wal.ErrGap: the reader needs a snapshot first.
func (e *Engine) ScanLog(from uint64, fn func(*wal.Record) error) error {
	limit := e.durableSeq.Load()
	if from > limit {
		return nil
	}
	err := e.w.wal.Scan(from, func(r *wal.Record) error {
		if r.Seq > limit {
			return errStopScan
		}
		return fn(r)
	})
	if errors.Is(err, errStopScan) {
		return nil
	}
	return err
}
