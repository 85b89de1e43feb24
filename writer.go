package rewardpool

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/rewardpool/rewardpool/gacha"
	"github.com/rewardpool/rewardpool/pool"
	"github.com/rewardpool/rewardpool/snapshot"
	"github.com/rewardpool/rewardpool/wal"
)

// run is the writer goroutine: it owns the catalog and the log. It blocks
// for one call, drains whatever else is waiting into a batch, and commits
// the batch with one write and (by default) one fsync.
func (e *Engine) run() {
	w := &e.w
	defer close(e.stopped)
	for {
		select {
		case c, ok := <-e.mailbox:
			if !ok {
				e.stopErr = e.shutdown()
				return
			}
			w.batch = append(w.batch[:0], c)
			draws := c.count
			if len(e.mailbox) == 0 && w.lastBatch < yieldBelow {
				// Callers answered by the last batch are runnable but have
				// not sent again yet; yielding once lets them, so the batch
				// (and its one write) covers them instead of one caller.
				runtime.Gosched()
			}
		drain:
			for len(w.batch) < e.opts.MaxBatch && draws < maxBatchDraws {
				select {
				case c, ok := <-e.mailbox:
					if !ok {
						// Closed: commit this batch; the outer loop sees
						// the closed mailbox next and shuts down.
						break drain
					}
					w.batch = append(w.batch, c)
					draws += c.count
				default:
					break drain
				}
			}
			if len(w.batch) < w.active && draws < maxBatchDraws && e.opts.Durability == DurabilityAlways && e.opts.GatherWait != 0 {
				draws = e.gather(draws)
			}
			var start time.Time
			if e.opts.GatherWait < 0 {
				start = time.Now() // the adaptive wait follows the commit time
			}
			e.commit(w.batch)
			w.lastBatch = len(w.batch)
			w.active = len(w.batch) + len(e.mailbox)
			if e.opts.GatherWait < 0 {
				w.commitEWMA += (time.Since(start) - w.commitEWMA) / 8
			}
			clear(w.batch)
		case <-w.syncTimer.C:
			w.timerOn = false
			e.syncNow()
		case res := <-w.snapDone:
			e.snapshotFinished(res)
		}
	}
}

// gather waits, a little, for the callers the last commit answered to send
// again before this batch closes. A network client needs a round trip to
// come back; without the wait the batch closes on the first few, and the
// rest arrive during its fsync and wait for the next one: about two fsyncs
// each instead of one. The wait ends once as many callers are in the batch
// as were active at the last commit, or after half a commit's time (so a
// caller that has gone costs one batch at most half an fsync, and active
// then shrinks to who came).
func (e *Engine) gather(draws int) int {
	w := &e.w
	wait := e.opts.GatherWait
	if wait < 0 {
		wait = min(w.commitEWMA/2, maxGather)
	}
	if wait <= 0 {
		return draws
	}
	// Yield rather than sleep on a timer: a timer's wake-up on a busy
	// machine can take longer than the fsync the wait is meant to save.
	deadline := time.Now().Add(wait)
	for len(w.batch) < w.active && len(w.batch) < e.opts.MaxBatch && draws < maxBatchDraws {
		select {
		case c, ok := <-e.mailbox:
			if !ok {
				return draws // closed: commit what is here; run shuts down next
			}
			w.batch = append(w.batch, c)
			draws += c.count
			continue
		default:
		}
		if time.Now().After(deadline) {
			break
		}
		runtime.Gosched()
	}
	return draws
}

// maxGather bounds gather's wait whatever the fsync takes.
const maxGather = 2 * time.Millisecond

// yieldBelow: the writer yields once before draining only after a batch
// smaller than this. With many callers batches fill by themselves, and
// yielding would only let the crowd contend for the mailbox.
const yieldBelow = 64

// commit is the hot path: decide every call of the batch in memory, write
// their records in one append, fsync once, then answer everyone. If the
// write or fsync fails, every in-memory change of the batch is undone and
// every caller gets ErrOutcomeUnknown: nothing that is not durable is
// acknowledged, but the batch may still be in the file.
func (e *Engine) commit(batch []*call) {
	w := &e.w
	w.recs = w.recs[:0]
	w.adminUndo = w.adminUndo[:0]
	start := w.mark()
	w.promoting = false
	wasFailed := w.failed != nil
	logTouched := false // the batch's records reached the log's write path

	draws := 0
	if w.failed == nil {
		for _, c := range batch {
			switch {
			case (c.op == opDraw || c.op == opAdmin) && w.replica:
				c.err = fmt.Errorf("%w: draws and item changes go to the primary", ErrReplica)
			case c.op == opDraw:
				draws += c.count
				e.decideDraw(c)
			case c.op == opAdmin:
				c.err = e.decideAdmin(&c.admin)
			case c.op == opApply:
				c.err = e.decideApply(c.apply)
			case c.op == opPromote:
				c.err = e.decidePromote()
			}
		}
	}

	if len(w.recs) > 0 {
		w.recs[len(w.recs)-1].Commit = true
		var err error
		if !w.ident.covers(w.seq, w.reqID) {
			// Raise the ceilings durably before any record above them
			// exists: whatever is lost later, ids restart above them.
			err = w.ident.reserve(e.fs, e.dir, w.seq, w.reqID)
		}
		if err == nil {
			logTouched = true
			err = w.wal.Append(w.recs)
		}
		if err == nil && e.opts.Durability == DurabilityAlways {
			if e.opts.Journal != nil {
				err = e.commitJournal()
			} else {
				err = e.sync()
			}
		}
		if errors.Is(err, wal.ErrRejected) {
			// The log refused the batch before writing a byte: undo it and
			// fail its callers, but the log is healthy, so do not poison.
			// Validation in decide* should make this unreachable.
			e.undo(0, start)
			e.log.Error("rewardpool: log refused a batch; nothing was written", "dir", e.dir, "err", err)
			for _, c := range batch {
				if c.op.writes() {
					c.err = fmt.Errorf("rewardpool: batch refused by the log, nothing was written: %w", err)
				}
			}
		} else if err != nil {
			e.undo(0, start)
			e.fail(err)
		} else {
			// Readers of the log (ScanLog) must see the batch before the
			// Committed observers hear of it: a streamer that dropped it
			// reads it back from disk.
			e.lastSeq.Store(w.seq)
			e.epoch.Store(w.epoch)
			if e.opts.Durability != DurabilityInterval {
				// always: fsynced above. none: never fsynced, and makes no
				// promise to replicas either: written counts as durable.
				e.durableSeq.Store(w.seq)
			}
			e.committed()
			if w.promoting {
				e.promoted()
			}
			e.stats.draws.Add(uint64(draws))
			if e.opts.Observer != nil {
				e.opts.Observer.Batch(len(batch), draws, len(w.recs))
			}
		}
	}

	for _, c := range batch {
		switch {
		case c.op == opState:
			c.state = e.stateCopy()
		case c.op == opFunc:
			c.fn()
		case w.failed != nil && !wasFailed && logTouched && c.op.writes() && c.err == nil:
			// This batch's write or fsync failed: part or all of it may be
			// in the file and come back on reopen. Callers refused by
			// their own error (c.err) wrote nothing and keep it.
			c.err = fmt.Errorf("%w: %w; retry with the same idempotency key", ErrOutcomeUnknown, w.failed)
		case w.failed != nil && c.op.writes() && (wasFailed || c.err == nil):
			// Nothing of this call reached the log: the log had failed
			// before, or raising the ceilings failed before the append.
			c.err = fmt.Errorf("%w: refusing writes until reopened: %w", ErrWAL, w.failed)
		case c.op == opPromote && c.err == nil:
			c.epoch = w.epoch
		}
		c.done <- struct{}{}
	}
}

// decideDraw picks c.count items, takes them in memory and appends their
// records. An idempotent retry answers from memory and writes nothing.
func (e *Engine) decideDraw(c *call) {
	w := &e.w
	if c.key != "" {
		if prev, pity, ok := w.idem.lookup(c.key); ok {
			if len(prev) != c.count {
				c.err = fmt.Errorf("%w: key %q was used for %d draws, this request asks for %d; a new request needs a new key",
					ErrIdempotencyMismatch, c.key, len(prev), c.count)
				return
			}
			for i, d := range prev {
				r := w.result(d.RequestID, d.Slot)
				r.Replayed = true
				if pity != nil {
					r.Pity = pity[i]
				}
				c.results = append(c.results, r)
			}
			return
		}
	}
	var pr playerRef
	if w.rules != nil {
		// Caps and the window refuse the whole request before it takes a
		// seq or a request id: nothing of it is logged.
		if err := e.checkPlayer(c, &pr); err != nil {
			c.err = err
			return
		}
	}
	if c.key != "" {
		w.seq++
		w.recs = append(w.recs, wal.Record{Seq: w.seq, Epoch: w.epoch, Kind: wal.KindKey,
			Item: -1, Key: c.key, Count: uint32(c.count)})
	}
	for range c.count {
		w.seq++
		w.reqID++
		rec := wal.Record{Seq: w.seq, Epoch: w.epoch, Kind: wal.KindDrawFailed, RequestID: w.reqID, Item: -1}
		res := DrawResult{RequestID: w.reqID, Err: ErrPoolEmpty}
		if w.rules != nil {
			w.drawPlayer(&pr, &rec, &res)
		} else if total := w.cat.Total(); total > 0 {
			slot, _ := w.cat.Pick(w.rng.Uint64N(total))
			w.cat.Take(slot)
			it, _ := w.cat.Item(slot)
			rec.Kind, rec.Item, rec.ItemID = wal.KindDraw, slot, it.ID
			res = DrawResult{RequestID: w.reqID, ItemID: it.ID}
		}
		w.recs = append(w.recs, rec)
		c.results = append(c.results, res)
	}
	if c.key != "" {
		draws := make([]snapshot.Draw, c.count)
		for i, r := range w.recs[len(w.recs)-c.count:] {
			draws[i] = snapshot.Draw{RequestID: r.RequestID, Slot: r.Item}
		}
		// A retry answers why pity acted as the first answer did, whatever
		// the rules say by then.
		var pity []string
		for i, r := range c.results[len(c.results)-c.count:] {
			if r.Pity != "" {
				if pity == nil {
					pity = make([]string, c.count)
				}
				pity[i] = r.Pity
			}
		}
		w.idem.insert(c.key, draws, pity)
	}
}

// result rebuilds a DrawResult from a remembered draw.
func (w *writerState) result(reqID uint64, slot int32) DrawResult {
	if slot < 0 {
		return DrawResult{RequestID: reqID, Err: ErrPoolEmpty}
	}
	it, _ := w.cat.Item(slot)
	return DrawResult{RequestID: reqID, ItemID: it.ID}
}

// adminUndo is what undo needs to reverse one admin record.
type adminUndo struct {
	slot    int32
	slots   int // catalog size before the change (an add may append a slot)
	prev    Item
	removed bool
}

// decideAdmin validates and applies one catalog change in memory and
// appends its record. A rejected change writes nothing and changes nothing.
func (e *Engine) decideAdmin(op *adminOp) error {
	w := &e.w
	if op.kind == wal.KindRules {
		return w.decideRules(op.rules, e.opts.clock())
	}
	it := op.item
	slot, exists := w.cat.Lookup(it.ID)
	kind := op.kind
	if kind == wal.KindSet && !exists && op.upsert {
		kind = wal.KindAdd
	}
	if kind != wal.KindRemove {
		if err := pool.ValidateItem(it); err != nil {
			return err
		}
	} else if it.ID == "" {
		return fmt.Errorf("%w: empty item id", ErrInvalidItem)
	}
	u := adminUndo{slot: slot, slots: w.cat.Slots()}
	var err error
	switch kind {
	case wal.KindAdd:
		if exists {
			return fmt.Errorf("rewardpool: add %s: %w", it.ID, ErrDuplicateItem)
		}
		if s, ok := w.cat.LookupAny(it.ID); ok {
			u.slot = s
			u.prev, u.removed = w.cat.Item(s)
		}
		slot, err = w.cat.Add(it)
		if u.slot < 0 {
			u.slot = slot
		}
	case wal.KindSet:
		if !exists {
			return fmt.Errorf("rewardpool: set %s: %w", it.ID, ErrUnknownItem)
		}
		u.prev, u.removed = w.cat.Item(slot)
		err = w.cat.Set(slot, it.Quantity, it.Weight)
	case wal.KindRemove:
		if !exists {
			return fmt.Errorf("rewardpool: remove %s: %w", it.ID, ErrUnknownItem)
		}
		u.prev, u.removed = w.cat.Item(slot)
		err = w.cat.Remove(slot)
	}
	if err != nil {
		return fmt.Errorf("rewardpool: %s %s: %w", kind, it.ID, err)
	}
	w.adminUndo = append(w.adminUndo, u)
	w.seq++
	w.recs = append(w.recs, wal.Record{Seq: w.seq, Epoch: w.epoch, Kind: kind,
		Item: slot, ItemID: it.ID, Quantity: it.Quantity, Weight: it.Weight})
	return nil
}

// undo reverses the in-memory changes of the current batch from record
// from on, newest first, using the batch's own records as the undo log.
func (e *Engine) undo(from int, m mark) {
	w := &e.w
	a := len(w.adminUndo)
	for i := len(w.recs) - 1; i >= from; i-- {
		r := &w.recs[i]
		switch r.Kind {
		case wal.KindDraw:
			w.cat.Untake(r.Item)
		case wal.KindKey:
			w.idem.unInsert(r.Key)
		case wal.KindRules:
			w.undoRules()
		case wal.KindAdd, wal.KindSet, wal.KindRemove:
			a--
			u := w.adminUndo[a]
			if u.slot >= int32(u.slots) {
				w.cat.Truncate(u.slots)
			} else {
				w.cat.Restore(u.slot, u.prev, u.removed)
			}
		}
	}
	w.recs = w.recs[:from]
	w.adminUndo = w.adminUndo[:a]
	w.seq, w.reqID, w.epoch = m.seq, m.reqID, m.epoch
	if w.players != nil {
		w.players.Rollback(m.players)
	}
}

// mark is the writer's counters at a point undo can return to.
type mark struct {
	seq, reqID, epoch uint64
	players           gacha.Mark // the players' undo journal
}

func (w *writerState) mark() mark {
	m := mark{seq: w.seq, reqID: w.reqID, epoch: w.epoch}
	if w.players != nil {
		m.players = w.players.Mark()
	}
	return m
}

// fail poisons the engine after a log failure: every later write is
// refused until the engine is reopened and recovers from disk.
func (e *Engine) fail(err error) {
	clear(e.w.pending) // never durable: never observed
	e.w.pending = e.w.pending[:0]
	if e.w.failed == nil {
		e.w.failed = err
		e.failedErr.Store(&err)
		e.log.Error("rewardpool: write-ahead log failed; refusing writes until reopened", "dir", e.dir, "err", err)
	}
}

// committed runs after a batch is durable (or written, for the weaker
// durability modes): bookkeeping, the Committed hook, the sync timer, and
// the snapshot trigger.
func (e *Engine) committed() {
	w := &e.w
	n := uint64(len(w.recs))
	e.stats.batches.Add(1)
	e.stats.records.Add(n)
	w.idem.evict(e.opts.IdempotencyWindow)
	if w.players != nil {
		w.players.Commit() // the batch is durable: nothing to undo
	}
	clear(w.rulesUndo)
	w.rulesUndo = w.rulesUndo[:0]
	if e.opts.Durability != DurabilityAlways {
		w.unsynced = true
		if e.opts.Durability == DurabilityInterval && !w.timerOn {
			w.syncTimer.Reset(e.opts.SyncInterval)
			w.timerOn = true
		}
	}
	if e.opts.Committed != nil {
		if e.opts.Durability == DurabilityInterval {
			// Observers (replication) see records only once fsynced: a
			// replica must never hold records its primary could lose.
			w.pending = append(w.pending, w.recs...)
		} else {
			e.opts.Committed(w.recs)
		}
	}
	w.sinceSnap += n
	if !w.snapRunning && e.snapshotDue() {
		e.startSnapshot()
	}
}

// snapSchedule is what the byte and time schedule of snapshots remembers.
type snapSchedule struct {
	logMark   uint64    // the log's AppendedBytes when the last snapshot started
	lastBytes uint64    // size of the last snapshot written since Open; 0 = none yet
	started   time.Time // when the last snapshot started (or the first commit after Open)
}

// snapshotDue decides whether the batch just committed starts a snapshot.
// With SnapshotEvery set, every that many records. Otherwise a snapshot
// rewrites the whole catalog and idempotency window, so it waits until the
// log written since the last one is SnapshotLogPercent of that snapshot's
// size (the bytes recovery would replay), and at least SnapshotMinInterval
// after the last one started: the cost of snapshots stays a fixed share
// of the log's, whether the catalog has ten items or a million.
func (e *Engine) snapshotDue() bool {
	w := &e.w
	if e.opts.SnapshotEvery > 0 {
		return w.sinceSnap >= e.opts.SnapshotEvery
	}
	s := &w.snapSched
	now := time.Now()
	if s.started.IsZero() {
		// The first commit since Open: the interval counts from here.
		s.started, s.logMark = now, 0
	}
	logged := w.wal.AppendedBytes()
	if logged >= s.logMark {
		logged -= s.logMark
	} // else the log was reopened (repair, replica restore) and counts anew
	if logged < s.lastBytes/100*uint64(e.opts.SnapshotLogPercent) {
		return false
	}
	return now.Sub(s.started) >= e.opts.SnapshotMinInterval
}

// slowSync is the fsync latency above which the engine warns.
const slowSync = time.Second

// sync fsyncs the log and times it.
func (e *Engine) sync() error {
	start := time.Now()
	err := e.w.wal.Sync()
	took := time.Since(start)
	e.stats.syncs.Add(1)
	e.stats.syncNanos.Add(uint64(took))
	if e.opts.Observer != nil {
		e.opts.Observer.Sync(took, err)
	}
	if took > slowSync {
		// Every caller in the batch waited this long: the disk, not the
		// engine, is the bottleneck an operator should look at.
		e.log.Warn("rewardpool: slow fsync of the write-ahead log", "dir", e.dir, "took", took)
	}
	if err == nil {
		// The first durable batch of the directory's life: from now on an
		// empty log without a snapshot means lost state, never a new pool.
		err = e.w.ident.markWritten(e.fs, e.dir)
	}
	if err == nil {
		w := &e.w
		w.unsynced = false
		e.durableSeq.Store(w.seq)
		if j := e.opts.Journal; j != nil {
			j.Checkpoint(e.opts.JournalName, w.seq)
		}
		if len(w.pending) > 0 {
			e.opts.Committed(w.pending)
			clear(w.pending)
			w.pending = w.pending[:0]
		}
	}
	return err
}

// commitJournal makes the batch durable through the node's journal, in a
// round shared with every pool committing at the same time. The pool's own
// log now holds records it has not fsynced: snapshots, checkpoints and
// Close fsync it.
func (e *Engine) commitJournal() error {
	w := &e.w
	start := time.Now()
	var err error
	if h := e.opts.walHooks.Sync; h != nil {
		// The log's fsync failpoint stands for the commit's fsync: the
		// journal's, here.
		err = h()
	}
	if err == nil {
		err = e.opts.Journal.Commit(e.opts.JournalName, w.recs)
	}
	took := time.Since(start)
	e.stats.syncs.Add(1)
	e.stats.syncNanos.Add(uint64(took))
	if e.opts.Observer != nil {
		e.opts.Observer.Sync(took, err)
	}
	if took > slowSync {
		e.log.Warn("rewardpool: slow commit to the journal", "dir", e.dir, "took", took)
	}
	if err == nil {
		err = w.ident.markWritten(e.fs, e.dir)
	}
	if err == nil {
		w.unsynced = true
	}
	return err
}

// requestCheckpoint is the journal asking for the pool's log to be fsynced,
// so that old journal segments can go.
func (e *Engine) requestCheckpoint() {
	e.onWriter(context.Background(), func() {
		w := &e.w
		if w.failed != nil {
			return
		}
		if w.unsynced {
			e.syncNow()
			return
		}
		e.opts.Journal.Checkpoint(e.opts.JournalName, w.seq)
	})
}

// syncNow fsyncs what the weaker durability modes left unsynced.
func (e *Engine) syncNow() {
	if !e.w.unsynced || e.w.failed != nil {
		return
	}
	if err := e.sync(); err != nil {
		e.fail(err)
	}
}

// stateCopy returns the committed state; the writer calls it between
// batches, so it never sees a half-decided batch.
func (e *Engine) stateCopy() State {
	w := &e.w
	return State{Seq: w.seq, Epoch: w.epoch, LastRequestID: w.reqID, Items: w.cat.Items(),
		Available: w.available(e.opts.clock().UnixMilli())}
}

// captureState copies what a snapshot needs, so the writer pays little;
// the encoding and the fsync happen on another goroutine. Of the catalog
// it copies only the remaining counts, 8 bytes a slot: ids, weights and
// removed flags change only with admin records, so they are kept in a
// table that snapshots share (never modified; rebuilt when the catalog no
// longer matches it). A 1M-item pool used to copy its 40 MB of slots, and
// encode 20 MB in memory, at every snapshot: that was most of its peak RSS.
func (e *Engine) captureState() *snapshot.State {
	w := &e.w
	n := w.cat.Slots()
	qty := make([]int64, n)
	t := w.snapTable
	same := t != nil && t.Len() == n
	for i := range n {
		it, removed := w.cat.Item(int32(i))
		qty[i] = it.Quantity
		if same && !t.Matches(i, it.ID, it.Weight, removed) {
			same = false
		}
	}
	if !same {
		t = &snapshot.Table{IDs: make([]string, n), Weights: make([]uint64, n), Removed: make([]bool, n)}
		for i := range n {
			it, removed := w.cat.Item(int32(i))
			t.IDs[i], t.Weights[i], t.Removed[i] = it.ID, it.Weight, removed
		}
		w.snapTable = t
	}
	return &snapshot.State{
		Seq: w.seq, Epoch: w.epoch, LastRequestID: w.reqID,
		Table: t, Quantities: qty,
		Keys:    w.idem.capture(),
		Rules:   w.rulesJSON,
		Players: w.capturePlayers(),
	}
}

type snapResult struct {
	seq      uint64
	size     uint64 // bytes written
	oldest   uint64 // seq of the oldest of two snapshots kept; 0 = delete nothing
	err      error
	duration time.Duration
}

// startSnapshot hands a copy of the state to a goroutine that writes it.
// The log is fsynced first, so a snapshot never covers records that a crash
// could still lose (which would leave the log behind the snapshot).
func (e *Engine) startSnapshot() {
	w := &e.w
	if w.failed != nil {
		return
	}
	if w.unsynced {
		if err := e.sync(); err != nil {
			e.fail(err)
			return
		}
	}
	st := e.captureState()
	w.snapRunning = true
	w.sinceSnap = 0
	w.snapSched.started, w.snapSched.logMark = time.Now(), w.wal.AppendedBytes()
	go func() { w.snapDone <- e.writeSnapshot(st) }()
}

// writeSnapshot writes st and prunes old snapshots, keeping two so that a
// damaged newest one can fall back to the one before.
func (e *Engine) writeSnapshot(st *snapshot.State) snapResult {
	start := time.Now()
	dir := snapshot.In(e.fs, filepath.Join(e.dir, snapDir))
	res := snapResult{seq: st.Seq}
	_, size, err := dir.WriteState(st)
	res.size, res.err = uint64(size), err
	if res.err == nil {
		var kept []snapshot.Info
		kept, res.err = dir.Prune(2)
		// Log segments may go only once two snapshots cover them: if the
		// newest is ever found damaged, recovery falls back to the older one
		// and replays the log from there.
		if len(kept) >= 2 {
			res.oldest = kept[0].Seq
		}
	}
	res.duration = time.Since(start)
	if e.opts.Observer != nil {
		e.opts.Observer.Snapshot(st.Seq, res.duration, res.err)
	}
	return res
}

// snapshotFinished deletes the log segments that every kept snapshot covers.
func (e *Engine) snapshotFinished(res snapResult) {
	w := &e.w
	w.snapRunning = false
	if res.err != nil {
		// A failed snapshot loses nothing: the log still holds every record.
		e.log.Warn("rewardpool: snapshot failed", "dir", e.dir, "seq", res.seq, "err", res.err)
		return
	}
	e.stats.snapshots.Add(1)
	w.lastSnapSeq = res.seq
	w.snapSched.lastBytes = res.size
	deleted := 0
	if res.oldest > 0 {
		var err error
		deleted, err = w.wal.Retain(res.oldest+1, wal.Retention{Segments: e.opts.KeepSegments, Bytes: e.opts.KeepBytes})
		if err != nil {
			e.log.Warn("rewardpool: deleting covered log segments failed", "dir", e.dir, "err", err)
		}
	}
	e.log.Info("rewardpool: snapshot written", "dir", e.dir, "seq", res.seq,
		"took", res.duration, "segments_deleted", deleted)
}

// shutdown runs when the mailbox is closed and drained: wait for a running
// snapshot, fsync, write a final snapshot, close the log, unlock the dir.
func (e *Engine) shutdown() error {
	w := &e.w
	w.syncTimer.Stop()
	if w.snapRunning {
		e.snapshotFinished(<-w.snapDone)
	}
	var firstErr error
	if w.failed == nil {
		e.syncNow()
		if w.failed == nil && w.seq > w.lastSnapSeq {
			e.snapshotFinished(e.writeSnapshot(e.captureState()))
		}
	}
	if w.failed != nil {
		firstErr = fmt.Errorf("%w: %w", ErrWAL, w.failed)
	}
	if err := w.wal.Close(); err != nil && firstErr == nil && w.failed == nil {
		firstErr = fmt.Errorf("rewardpool: close log: %w", err)
	}
	if j := e.opts.Journal; j != nil && firstErr == nil && w.failed == nil {
		// The log holds every batch the journal has for the pool.
		firstErr = j.Detach(e.opts.JournalName, w.seq)
	} else if j != nil {
		j.Release(e.opts.JournalName) // the journal keeps its batches
	}
	if firstErr == nil && w.failed == nil {
		// Everything answered is fsynced: the next start need not assume
		// that acknowledged draws were lost.
		firstErr = w.ident.setRun(e.fs, e.dir, false, false)
	}
	e.lock.Close()
	e.log.Info("rewardpool: closed", "dir", e.dir, "last_seq", w.seq, "last_request_id", w.reqID)
	return firstErr
}
