package rewardpool

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rewardpool/rewardpool/gacha"
	"github.com/rewardpool/rewardpool/internal/fsys"
	"github.com/rewardpool/rewardpool/journal"
	"github.com/rewardpool/rewardpool/pool"
	"github.com/rewardpool/rewardpool/snapshot"
	"github.com/rewardpool/rewardpool/wal"
)

// Engine is one reward pool: its catalog, its write-ahead log and the
// single writer goroutine that owns both. All methods are safe for
// concurrent use; they talk to the writer through a bounded mailbox.
type Engine struct {
	dir  string
	opts Options
	log  *slog.Logger
	fs   fsys.FS
	lock io.Closer

	// sendMu orders sends against Close: senders hold it shared while they
	// put a call in the mailbox, Close takes it exclusively to close the
	// mailbox, so no call is ever sent to a closed or abandoned mailbox.
	sendMu  sync.RWMutex
	closed  bool
	mailbox chan *call
	stopped chan struct{} // closed when the writer has exited
	stopErr error         // set by the writer before stopped closes

	calls sync.Pool // *call, reused so a draw costs no allocation

	stats engineStats

	replica    atomic.Bool   // mirrors w.replica for IsReplica
	lastSeq    atomic.Uint64 // last written seq, for LastSeq
	durableSeq atomic.Uint64 // last fsynced seq (written, under DurabilityNone), for ScanLog
	epoch      atomic.Uint64 // epoch of the last written record, for Epoch

	// failedErr mirrors w.failed for Err (readiness checks).
	failedErr atomic.Pointer[error]

	// Everything below is owned by the writer goroutine (and by Open before
	// the writer starts). No locks: one goroutine touches it.
	w writerState
}

// writerState is the state only the writer goroutine touches.
type writerState struct {
	wal   *wal.Log
	ident identity // the directory's identity: ceilings and floors of seqs and ids
	cat   *pool.Catalog
	rng   *rand.Rand
	seq   uint64 // last record written
	epoch uint64
	reqID uint64 // last request id handed out

	idem   idempotency
	window int // idempotency window

	// Player rules (rules.go); nil when the pool has none.
	rules     *gacha.Table
	players   *gacha.Players
	rulesJSON string      // the rules as logged; "" none
	rulesUndo []rulesUndo // the batch's RULES records, for undo
	now       int64       // the writer's clock for the request being decided, Unix ms
	// needsUser: the rules keep per-player state, so a draw needs a user
	// id. Written by the writer, read by CheckDraw on callers' goroutines.
	needsUser atomic.Bool

	replica   bool  // applies a primary's records; refuses draws and item changes
	applying  bool  // replaying records that undo may have to take back
	promoting bool  // the current batch holds this replica's EPOCH record
	failed    error // first WAL failure; poisons every later write

	// pending holds, under DurabilityInterval, records written but not yet
	// fsynced: the Committed observers get them after the fsync.
	pending []wal.Record

	// Per-batch scratch, reused across batches.
	lastBatch int // requests in the previous batch
	batch     []*call
	// Gathering (durability always): callers the last commit answered plus
	// those already queued behind it, and the commit time's moving average.
	active      int
	commitEWMA  time.Duration
	gatherTimer *time.Timer
	recs        []wal.Record
	adminUndo   []adminUndo

	// Durability bookkeeping.
	unsynced  bool // records written but not yet fsynced (interval, none)
	syncTimer *time.Timer
	timerOn   bool

	// Snapshot bookkeeping.
	sinceSnap   uint64 // records since the last snapshot was started
	lastSnapSeq uint64
	snapRunning bool
	snapDone    chan snapResult
	snapSched   snapSchedule    // the byte and time schedule (writer.go)
	snapTable   *snapshot.Table // ids, weights, removed flags shared by snapshots (captureState)
}

// Open opens the pool stored in dir, creating it from opts.Items if dir
// holds no state, and recovers it: the newest valid snapshot, then every log
// record after it. It returns once the engine is ready to draw.
func Open(dir string, opts Options) (*Engine, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	// Not synced yet: a new pool makes its whole path durable at once
	// (create), a used one below.
	if _, err := fsys.Mkdirs(opts.fs, dir, 0o755); err != nil {
		return nil, fmt.Errorf("rewardpool: create %s: %w", dir, err)
	}
	lock, err := lockDir(opts.fs, dir)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		dir:     dir,
		opts:    opts,
		log:     opts.Logger,
		fs:      opts.fs,
		lock:    lock,
		mailbox: make(chan *call, opts.MailboxSize),
		stopped: make(chan struct{}),
	}
	e.calls.New = func() any { return &call{done: make(chan struct{}, 1)} }
	e.w.idem.maxBytes = opts.IdempotencyBytes // before recovery fills the window
	if j := opts.Journal; j != nil {
		if e.opts.JournalName == "" {
			e.opts.JournalName = filepath.Base(filepath.Clean(dir))
		}
		if err := j.Claim(e.opts.JournalName); err != nil {
			lock.Close()
			if errors.Is(err, journal.ErrInUse) {
				return nil, fmt.Errorf("rewardpool: open %s: %w (give each pool its own Options.JournalName)", dir, err)
			}
			return nil, fmt.Errorf("rewardpool: open %s: %w", dir, err)
		}
		// Batches acknowledged through the journal may be missing from the
		// pool's own log (it is fsynced lazily): put them back first. Only
		// into a directory whose last run committed through the journal
		// (IDENTITY says journaled): one that did not is not the directory
		// that wrote them (rebuilt, restored, bootstrapped after a wipe),
		// and its log must not be cut for them. Attach then drops them.
		n := 0
		id, err := loadIdentity(opts.fs, dir)
		if err == nil && id.Journaled {
			n, err = j.Redo(e.opts.JournalName, filepath.Join(dir, walDir), e.opts.walOptions())
		} else if errors.Is(err, errIdentityMissing) {
			err = nil
		}
		if err != nil {
			j.Release(e.opts.JournalName)
			lock.Close()
			return nil, fmt.Errorf("rewardpool: %w", err)
		}
		if n > 0 {
			e.log.Info("rewardpool: replayed the journal into the log", "dir", dir, "records", n)
		}
	}
	created, err := e.create()
	if err == nil && !created {
		// A used directory: its path may have been created by a run whose
		// sync failed, so make it durable before building on it.
		if err = fsys.MkdirAll(opts.fs, dir, 0o755); err != nil {
			err = fmt.Errorf("rewardpool: create %s: %w", dir, err)
		} else {
			err = e.recover()
		}
	}
	if err != nil {
		if e.w.wal != nil {
			e.w.wal.Close()
		}
		if j := opts.Journal; j != nil {
			j.Release(e.opts.JournalName)
		}
		lock.Close()
		return nil, err
	}
	e.opts.Items = nil // seeded or ignored: the catalog is the state's now
	e.w.snapDone = make(chan snapResult, 1)
	e.w.syncTimer = time.NewTimer(time.Hour)
	e.w.syncTimer.Stop()
	e.w.gatherTimer = time.NewTimer(time.Hour)
	e.w.gatherTimer.Stop()
	e.w.replica = e.opts.Replica
	e.replica.Store(e.opts.Replica)
	e.lastSeq.Store(e.w.seq)
	e.durableSeq.Store(e.w.seq)
	e.epoch.Store(e.w.epoch)
	if j := e.opts.Journal; j != nil {
		// The log is durable through w.seq (Open fsynced its tail, Redo
		// its appends): whatever the journal held for this pool before is
		// now the log's, and must never be replayed onto it again.
		if err := j.Attach(e.opts.JournalName, e.w.seq, e.requestCheckpoint); err != nil {
			e.w.wal.Close()
			j.Release(e.opts.JournalName)
			lock.Close()
			return nil, fmt.Errorf("rewardpool: attach to the journal: %w", err)
		}
	}
	go e.run()
	if err := e.adoptOptionRules(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

const (
	walDir   = "wal"
	snapDir  = "snapshots"
	lockFile = "LOCK"
)

// LockDir takes the lock an open Engine holds on its data directory, for
// tools that must not run beside one (the offline log tools). It fails
// with ErrLocked while an engine has dir open. Call unlock when done.
func LockDir(dir string) (unlock func(), err error) {
	l, err := lockDir(fsys.OS, dir)
	if err != nil {
		return nil, err
	}
	return func() { l.Close() }, nil
}

// lockDir locks dir/LOCK. The OS lock is an flock, which the kernel drops
// when the process dies, so a crashed engine never leaves it locked.
func lockDir(fs fsys.FS, dir string) (io.Closer, error) {
	l, err := fs.Lock(filepath.Join(dir, lockFile))
	if errors.Is(err, fsys.ErrLocked) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("rewardpool: lock %s: %w", dir, err)
	}
	return l, nil
}

// recover rebuilds the writer state from the newest valid snapshot and the
// log records after it. It first settles whether the directory is new: a
// directory is new only if it has no IDENTITY and holds no log and no
// snapshot. A used directory whose snapshot and log cannot prove its state
// refuses to start (errUnprovable) rather than be seeded again.
func (e *Engine) recover() error {
	start := time.Now()
	w := &e.w
	w.rng = newRand(e.opts.Seed)
	w.epoch = 1
	w.window = e.opts.IdempotencyWindow

	if err := e.checkOptionRules(); err != nil {
		return err
	}
	legacy, err := e.loadIdentity()
	if err != nil {
		return err
	}
	// The log directory is made durable by wal.Open; the snapshot one here
	// (each MkdirAll fsyncs the whole path, so once is enough).
	if err := fsys.MkdirAll(e.fs, filepath.Join(e.dir, snapDir), 0o755); err != nil {
		return fmt.Errorf("rewardpool: create %s: %w", filepath.Join(e.dir, snapDir), err)
	}
	snaps := snapshot.In(e.fs, filepath.Join(e.dir, snapDir))
	st, info, err := snaps.LoadNewest(e.log)
	if err != nil {
		return err
	}
	w.wal, err = wal.Open(filepath.Join(e.dir, walDir), e.opts.walOptions())
	if err != nil {
		return fmt.Errorf("rewardpool: open log: %w", err)
	}
	if st != nil {
		w.cat, err = pool.FromSlots(st.Slots)
		if err != nil {
			return fmt.Errorf("%w: snapshot %s: %w", ErrRecovery, info.Name, err)
		}
		w.seq, w.epoch, w.reqID = st.Seq, max(st.Epoch, 1), st.LastRequestID
		w.lastSnapSeq = st.Seq
		for _, k := range st.Keys {
			if err := w.checkAnswer(k); err != nil {
				return fmt.Errorf("%w: snapshot %s: %w", ErrRecovery, info.Name, err)
			}
		}
		if err := w.loadRules(st); err != nil {
			return fmt.Errorf("%w: snapshot %s: %w", ErrRecovery, info.Name, err)
		}
		for _, k := range st.Keys {
			if k.Pity != nil && w.rules != nil {
				for i, s := range k.Pity {
					k.Pity[i] = w.rules.Intern(s)
				}
			}
			w.idem.insert(k.Key, k.Draws, k.Pity)
		}
		if last := w.wal.LastSeq(); last < st.Seq {
			// The log ends before the snapshot: empty on a replica that
			// bootstraps from its primary's snapshot, or cut by `wal
			// repair`. A snapshot is written only once the log holds every
			// record it covers, so it is the newest state that survived:
			// continue from it, keeping any older log aside.
			if err := e.setLogAside(last, st.Seq); err != nil {
				return err
			}
			e.log.Warn("rewardpool: the log ends before the newest snapshot; continuing from the snapshot",
				"snapshot", info.Name, "seq", st.Seq, "log_ended_at", last)
		}
	} else {
		w.cat, _ = pool.New(nil)
		if err := e.checkProvable(legacy); err != nil {
			return err
		}
	}

	replayed := 0
	var pending pendingKey
	if w.wal.LastSeq() > w.seq {
		err = w.wal.Scan(w.seq+1, func(r *wal.Record) error {
			replayed++
			if w.players != nil {
				w.players.Commit() // recovery never undoes: keep no journal
			}
			return w.replay(r, &pending)
		})
		if err != nil {
			return fmt.Errorf("rewardpool: replay log: %w", err)
		}
	}
	if pending.key != "" {
		// The log ends inside a keyed request. The WAL keeps batches atomic,
		// so this means the log itself is inconsistent.
		return fmt.Errorf("%w: log ends inside the draws of idempotency key %q", ErrRecovery, pending.key)
	}
	w.idem.evict(e.opts.IdempotencyWindow)

	fresh := st == nil && w.wal.LastSeq() == 0
	if err := e.applyFloors(fresh); err != nil {
		return err
	}
	switch {
	case fresh && w.ident.Reseed && !e.opts.Replica:
		if err := e.reseed(); err != nil {
			return err
		}
	case fresh && len(e.opts.Items) > 0 && !e.opts.Replica:
		if err := e.seed(); err != nil {
			return err
		}
	}
	if err := e.settleIdentity(legacy); err != nil {
		return err
	}
	if w.players != nil {
		w.players.Commit()
	}
	if st != nil {
		// A snapshot is state to prove from now on, even in a directory
		// that has not written a record yet (a replica bootstrapped from
		// its primary's snapshot): if it is lost, refuse, never seed.
		if err := w.ident.markWritten(e.fs, e.dir); err != nil {
			return err
		}
	}
	e.log.Info("rewardpool: recovered",
		"dir", e.dir, "snapshot", info.Name, "snapshot_seq", info.Seq,
		"records_replayed", replayed, "last_seq", w.seq, "last_request_id", w.reqID,
		"items", len(w.cat.Items()), "fresh", fresh, "took", time.Since(start))
	return nil
}

// loadIdentity reads the directory's IDENTITY, creating it (durably) for a
// new directory. legacy is true for a used directory written before
// identities existed: it gets one once its state is recovered.
func (e *Engine) loadIdentity() (legacy bool, err error) {
	w := &e.w
	w.ident, err = loadIdentity(e.fs, e.dir)
	if err == nil {
		err = w.ident.checkJournal(e.dir, e.opts.Journal != nil)
	}
	if j := e.opts.Journal; err == nil && j != nil && w.ident.Journaled && !j.Knows(e.opts.JournalName) {
		err = fmt.Errorf("%w: %s was last run with a node journal and did not close cleanly, but the journal "+
			"holds nothing under the name %q: open it under the name it had then (JournalName; the server's "+
			"pool name)", ErrJournalPending, e.dir, e.opts.JournalName)
	}
	if !errors.Is(err, errIdentityMissing) {
		return false, err
	}
	used, err := dirUsed(e.fs, e.dir)
	if err != nil || used {
		return used, err
	}
	w.ident, err = createIdentity(e.fs, e.dir, identity{})
	return false, err
}

// dirUsed reports whether dir holds anything a pool has written: a log
// segment, a snapshot (damaged ones included), or any file beside them
// (a log set aside, a divergent tail).
func dirUsed(fs fsys.FS, dir string) (bool, error) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("rewardpool: read %s: %w", dir, err)
	}
	for _, ent := range ents {
		switch {
		case ent.Name() == lockFile || strings.HasSuffix(ent.Name(), ".tmp"):
			// The lock, and temp files of an atomic write a crash cut
			// short (the identity's own, say): nothing was written.
			continue
		case ent.Name() == walDir || ent.Name() == snapDir:
			sub, err := fs.ReadDir(filepath.Join(dir, ent.Name()))
			if err != nil {
				return false, fmt.Errorf("rewardpool: read %s: %w", filepath.Join(dir, ent.Name()), err)
			}
			for _, s := range sub {
				if s.Name() != lockFile && !strings.HasSuffix(s.Name(), ".tmp") {
					return true, nil
				}
			}
			continue
		}
		return true, nil
	}
	return false, nil
}

// checkProvable runs when no snapshot could be loaded: the log alone must
// then hold the pool's whole history from seq 1, or the directory must
// never have written anything.
func (e *Engine) checkProvable(legacy bool) error {
	w := &e.w
	if first := w.wal.FirstSeq(); first > 1 {
		return fmt.Errorf("%w: %s: no valid snapshot, and the log starts at seq %d: records 1..%d are gone. %s",
			ErrUnprovable, e.dir, first, first-1, rebuildHint)
	}
	if w.wal.LastSeq() > 0 || w.ident.Reseed {
		return nil
	}
	if legacy || w.ident.Written {
		return fmt.Errorf("%w: %s was created %s and has written records up to seq %d, "+
			"but it holds no valid snapshot and its log is empty (damaged snapshots are kept as *.broken). %s",
			ErrUnprovable, e.dir, w.ident.createdText(), w.ident.SeqCeiling, rebuildHint)
	}
	return nil
}

const rebuildHint = "Rebuild it from a replica (start a new node with --replica-of), " +
	"or restore the files, or, accepting that the pool's state is lost, run " +
	"`rewardpool wal reseed --data-dir <data-dir> --pool <pool>`: it sets the old files aside and " +
	"lets the next start seed the pool from its configuration, with seqs and request ids above every one ever handed out"

func (id *identity) createdText() string {
	if id.Created.IsZero() {
		return "before identities were recorded"
	}
	return "at " + id.Created.UTC().Format(time.RFC3339)
}

// applyFloors makes the next seq and request id start above the floors
// that `wal repair` or `wal reseed` recorded, and above every request id
// that may have been acknowledged from a log tail that was cut at open under
// a durability mode that acknowledges before the fsync. A replica takes its
// seqs and ids from its primary: it applies the id floor only when promoted.
func (e *Engine) applyFloors(fresh bool) error {
	w := &e.w
	if e.opts.Replica {
		return nil
	}
	if w.ident.Unsynced && w.ident.FloorID < w.ident.IDCeiling {
		// The last run answered draws before their fsync and did not close
		// cleanly: a power cut may have taken acknowledged draws, whole
		// batches of them, leaving no trace in the log. Their ids are
		// below the ceiling.
		w.ident.FloorID = w.ident.IDCeiling
		if err := storeIdentity(e.fs, e.dir, &w.ident); err != nil {
			return err
		}
		e.log.Warn("rewardpool: the last run acknowledged draws before their fsync and did not close cleanly; request ids continue above every id that may have been handed out",
			"dir", e.dir, "next_request_id_above", w.ident.FloorID)
	}
	w.reqID = max(w.reqID, w.ident.FloorID)
	if fresh || w.ident.FloorSeq <= w.seq {
		return nil
	}
	// Records up to the floor may have been written, acknowledged and
	// streamed, then lost: continue above it. The state as recovered is
	// snapshotted at the floor, so the log can start at floor+1.
	from := w.seq
	w.seq = w.ident.FloorSeq
	if res := e.writeSnapshot(e.captureState()); res.err != nil {
		return fmt.Errorf("rewardpool: snapshot at the seq floor %d: %w", w.seq, res.err)
	}
	w.lastSnapSeq = w.seq
	if err := e.setLogAside(w.wal.LastSeq(), w.seq); err != nil {
		return err
	}
	e.log.Warn("rewardpool: records were lost (wal repair or reseed); continuing above every seq and request id ever handed out",
		"dir", e.dir, "recovered_seq", from, "next_seq", w.seq+1, "next_request_id", w.reqID+1)
	return nil
}

// settleIdentity makes sure the ceilings cover the recovered state (a
// legacy directory gets its identity here) and clears a used Reseed.
func (e *Engine) settleIdentity(legacy bool) error {
	w := &e.w
	if legacy {
		var err error
		w.ident, err = createIdentity(e.fs, e.dir, identity{Written: true,
			SeqCeiling: w.seq + ceilingStep, IDCeiling: w.reqID + ceilingStep})
		if err != nil {
			return err
		}
	}
	if w.ident.Reseed && (w.seq > 0 || w.wal.LastSeq() > 0) {
		w.ident.Reseed = false
		if err := storeIdentity(e.fs, e.dir, &w.ident); err != nil {
			return err
		}
	}
	if !w.ident.covers(w.seq, w.reqID) {
		if err := w.ident.reserve(e.fs, e.dir, w.seq, w.reqID); err != nil {
			return err
		}
	}
	// Before this run answers anything before its fsync, or through the
	// journal, say so durably.
	return w.ident.setRun(e.fs, e.dir, e.opts.Durability != DurabilityAlways && !e.opts.Replica,
		e.opts.Journal != nil && e.opts.Durability == DurabilityAlways)
}

// setLogAside moves a log that ends before the snapshot at snapSeq out of
// the way (renamed to wal.behind-<snapSeq>, for audit) and opens an empty
// one, which takes its first record at snapSeq+1. The rename and the new
// directory are made durable before anything is written to the new log.
func (e *Engine) setLogAside(last, snapSeq uint64) error {
	if last == 0 && len(e.w.wal.Segments()) == 0 {
		return nil
	}
	if err := e.w.wal.Close(); err != nil {
		return fmt.Errorf("rewardpool: close log: %w", err)
	}
	e.w.wal = nil
	walPath := filepath.Join(e.dir, walDir)
	aside := fsys.FreeName(e.fs, fmt.Sprintf("%s.behind-%d", walPath, snapSeq))
	if err := fsys.Rename(e.fs, walPath, aside); err != nil {
		return fmt.Errorf("rewardpool: set aside a log behind the snapshot: %w", err)
	}
	var err error
	if e.w.wal, err = wal.Open(walPath, e.opts.walOptions()); err != nil {
		return fmt.Errorf("rewardpool: open log: %w", err)
	}
	return nil
}

// seed writes the initial catalog as ADD records, so the log alone can
// rebuild the pool from nothing (a replica can start from seq 1).
func (e *Engine) seed() error {
	w := &e.w
	w.recs = slices.Grow(w.recs[:0], len(e.opts.Items))
	w.cat.Grow(len(e.opts.Items))
	for _, it := range e.opts.Items {
		slot, err := w.cat.Add(it)
		if err != nil {
			return fmt.Errorf("%w: Items: %w", ErrBadOptions, err)
		}
		w.seq++
		w.recs = append(w.recs, wal.Record{Seq: w.seq, Epoch: w.epoch, Kind: wal.KindAdd,
			Item: slot, ItemID: it.ID, Quantity: it.Quantity, Weight: it.Weight})
	}
	w.recs[len(w.recs)-1].Commit = true
	if err := w.ident.reserve(e.fs, e.dir, w.seq, w.reqID); err != nil {
		return fmt.Errorf("%w: seed catalog: %w", ErrWAL, err)
	}
	if err := w.wal.Append(w.recs); err != nil {
		return fmt.Errorf("%w: seed catalog: %w", ErrWAL, err)
	}
	if err := w.wal.Sync(); err != nil {
		return fmt.Errorf("%w: seed catalog: %w", ErrWAL, err)
	}
	w.recs = nil // as long as the catalog: batches grow their own
	return w.ident.markWritten(e.fs, e.dir)
}

// reseed seeds a directory whose old state `wal reseed` set aside: the
// catalog from Items goes into a snapshot at the seq floor (a log starting
// above seq 1 needs a snapshot before it), and request ids continue above
// the id floor.
func (e *Engine) reseed() error {
	w := &e.w
	for _, it := range e.opts.Items {
		if _, err := w.cat.Add(it); err != nil {
			return fmt.Errorf("%w: Items: %w", ErrBadOptions, err)
		}
	}
	w.seq, w.reqID = w.ident.FloorSeq, max(w.reqID, w.ident.FloorID)
	if res := e.writeSnapshot(e.captureState()); res.err != nil {
		return fmt.Errorf("rewardpool: reseed: %w", res.err)
	}
	if err := w.ident.markWritten(e.fs, e.dir); err != nil {
		return err
	}
	w.lastSnapSeq = w.seq
	e.log.Warn("rewardpool: reseeded the pool from its configuration above the recorded floors",
		"dir", e.dir, "next_seq", w.seq+1, "next_request_id", w.reqID+1, "items", len(e.opts.Items))
	return nil
}

// pendingKey tracks, during replay, the idempotency key whose draws are
// being read.
type pendingKey struct {
	key   string
	count uint32
	draws []snapshot.Draw
	pity  []string // each draw's pity explanation, nil while none had one
}

// replay applies one record read from the log. The log records outcomes, so
// replay never draws a random number: it redoes exactly what was decided.
// Any record the state cannot take means the log and the snapshot disagree,
// and recovery stops rather than guess.
func (w *writerState) replay(r *wal.Record, pk *pendingKey) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: record seq %d (%s): %s", ErrRecovery, r.Seq, r.String(), fmt.Sprintf(format, args...))
	}
	if r.Seq != w.seq+1 {
		return bad("expected seq %d", w.seq+1)
	}
	if r.Epoch < w.epoch {
		return bad("epoch %d is older than %d", r.Epoch, w.epoch)
	}
	w.seq, w.epoch = r.Seq, r.Epoch
	if pk.key != "" && r.Kind != wal.KindDraw && r.Kind != wal.KindDrawFailed {
		return bad("idempotency key %q expects %d more draws", pk.key, pk.count)
	}
	switch r.Kind {
	case wal.KindDraw, wal.KindDrawFailed:
		if r.RequestID <= w.reqID {
			return bad("request id not above %d", w.reqID)
		}
		w.reqID = r.RequestID
		slot := int32(-1)
		if r.Kind == wal.KindDraw {
			var err error
			if slot, err = w.resolve(r); err != nil {
				return bad("%v", err)
			}
			if !w.cat.Available(slot) {
				return bad("item has no stock left")
			}
			if pk.key != "" {
				// Before the draw is applied: the state it was decided in.
				if why := w.explain(r, slot); why != "" {
					if pk.pity == nil {
						pk.pity = make([]string, pk.count+uint32(len(pk.draws)))
					}
					pk.pity[len(pk.draws)] = why
				}
			}
			w.cat.Take(slot)
			w.replayPlayer(r, slot)
		} else if w.cat.Total() != 0 && r.User == "" && !w.paced() {
			// A player's draw may find nothing while others could still
			// draw: the items left are capped for that player; and in a
			// paced pool the stock left may not be released yet.
			return bad("pool was not empty")
		}
		if pk.key != "" {
			pk.draws = append(pk.draws, snapshot.Draw{RequestID: r.RequestID, Slot: slot})
			if pk.count--; pk.count == 0 {
				w.idem.insert(pk.key, pk.draws, pk.pity)
				// Evict as the live writer does after each batch, so a key
				// reused after it left the window replays the same way.
				// Records applied on a replica may still be undone, so
				// there eviction waits for the batch to be durable.
				if !w.applying {
					w.idem.evict(w.window)
				}
				*pk = pendingKey{}
			}
		}
	case wal.KindKey:
		if r.Count == 0 {
			return bad("key with no draws")
		}
		*pk = pendingKey{key: r.Key, count: r.Count, draws: make([]snapshot.Draw, 0, r.Count)}
	case wal.KindAdd:
		u := adminUndo{slot: int32(w.cat.Slots()), slots: w.cat.Slots()}
		if s, ok := w.cat.LookupAny(r.ItemID); ok {
			u.slot = s
			u.prev, u.removed = w.cat.Item(s)
		}
		if r.Item >= 0 && r.Item != u.slot {
			return bad("adds at slot %d, log says %d", u.slot, r.Item)
		}
		slot, err := w.cat.Add(pool.Item{ID: r.ItemID, Quantity: r.Quantity, Weight: r.Weight})
		if err != nil {
			return bad("%v", err)
		}
		r.Item = slot
		w.noteAdmin(u)
	case wal.KindSet, wal.KindRemove:
		slot, err := w.resolve(r)
		if err != nil {
			return bad("%v", err)
		}
		u := adminUndo{slot: slot, slots: w.cat.Slots()}
		u.prev, u.removed = w.cat.Item(slot)
		if r.Kind == wal.KindSet {
			err = w.cat.Set(slot, r.Quantity, r.Weight)
		} else {
			err = w.cat.Remove(slot)
		}
		if err != nil {
			return bad("%v", err)
		}
		w.noteAdmin(u)
	case wal.KindRules:
		if err := w.replayRules(r); err != nil {
			return bad("%v", err)
		}
	case wal.KindEpoch:
	default:
		return bad("unknown record kind %d", r.Kind)
	}
	return nil
}

// noteAdmin keeps what undo needs for an admin record being applied on a
// replica; recovery never undoes, so it keeps nothing.
func (w *writerState) noteAdmin(u adminUndo) {
	if w.applying {
		w.adminUndo = append(w.adminUndo, u)
	}
}

// checkAnswer rejects a remembered answer that could not have been written:
// no draws, or a slot beyond the catalog.
func (w *writerState) checkAnswer(k snapshot.Key) error {
	if len(k.Draws) == 0 {
		return fmt.Errorf("idempotency key %q has no draws", k.Key)
	}
	for _, d := range k.Draws {
		if d.Slot < -1 || int(d.Slot) >= w.cat.Slots() {
			return fmt.Errorf("idempotency key %q names slot %d of %d", k.Key, d.Slot, w.cat.Slots())
		}
	}
	return nil
}

// resolve finds the live catalog slot a record names, by slot (binary
// codec) or by item id (text codecs), checking both when both are present.
func (w *writerState) resolve(r *wal.Record) (int32, error) {
	if r.Item >= 0 {
		if int(r.Item) >= w.cat.Slots() {
			return -1, fmt.Errorf("slot %d beyond catalog of %d", r.Item, w.cat.Slots())
		}
		it, removed := w.cat.Item(r.Item)
		if removed {
			return -1, fmt.Errorf("slot %d (%s) was removed", r.Item, it.ID)
		}
		if r.ItemID != "" && r.ItemID != it.ID {
			return -1, fmt.Errorf("slot %d holds %s, log says %s", r.Item, it.ID, r.ItemID)
		}
		r.ItemID = it.ID
		return r.Item, nil
	}
	slot, ok := w.cat.Lookup(r.ItemID)
	if !ok {
		return -1, fmt.Errorf("%w: %s", ErrUnknownItem, r.ItemID)
	}
	r.Item = slot
	return slot, nil
}

// newRand returns the selection RNG: ChaCha8, seeded from crypto/rand unless
// a test fixed the seed. ChaCha8 is fast and its output cannot be predicted
// from earlier draws, so players cannot time their pulls.
func newRand(seed *[32]byte) *rand.Rand {
	var s [32]byte
	if seed != nil {
		s = *seed
	} else if _, err := crand.Read(s[:]); err != nil {
		panic("rewardpool: crypto/rand failed: " + err.Error())
	}
	return rand.New(rand.NewChaCha8(s))
}

// Close stops accepting calls, finishes every call already queued, fsyncs
// the log, writes a final snapshot and releases the directory. It returns
// ErrClosed if the engine was already closed.
func (e *Engine) Close() error {
	e.sendMu.Lock()
	if e.closed {
		e.sendMu.Unlock()
		return ErrClosed
	}
	e.closed = true
	close(e.mailbox)
	e.sendMu.Unlock()
	<-e.stopped
	return e.stopErr
}

// Dir returns the data directory the engine was opened on.
func (e *Engine) Dir() string { return e.dir }

// engineStats are counters the writer updates and anyone may read.
type engineStats struct {
	batches   atomic.Uint64
	records   atomic.Uint64
	draws     atomic.Uint64
	syncs     atomic.Uint64
	syncNanos atomic.Uint64
	snapshots atomic.Uint64
}

// Stats is a point-in-time copy of the engine's counters.
type Stats struct {
	Batches   uint64        // group commits written
	Records   uint64        // log records written
	Draws     uint64        // draws decided (including empty-pool draws)
	Syncs     uint64        // fsyncs of the log
	SyncTime  time.Duration // total time spent in those fsyncs
	Snapshots uint64        // snapshots written
	WALBytes  uint64        // record bytes appended to the log since Open
}

// walBytes reads the log's byte counter; the log is set before the writer
// starts and never replaced, and AppendedBytes is atomic.
func (e *Engine) walBytes() uint64 { return e.w.wal.AppendedBytes() }

// Stats returns the engine's counters since Open.
func (e *Engine) Stats() Stats {
	return Stats{
		Batches:   e.stats.batches.Load(),
		Records:   e.stats.records.Load(),
		Draws:     e.stats.draws.Load(),
		Syncs:     e.stats.syncs.Load(),
		SyncTime:  time.Duration(e.stats.syncNanos.Load()),
		Snapshots: e.stats.snapshots.Load(),
		WALBytes:  e.walBytes(),
	}
}
