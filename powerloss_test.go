package rewardpool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/internal/fsys"
	"github.com/rewardpool/rewardpool/internal/fsys/sim"
	"github.com/rewardpool/rewardpool/journal"
	"github.com/rewardpool/rewardpool/snapshot"
	"github.com/rewardpool/rewardpool/wal"
)

// The power-loss test drives the real engine on the power-loss simulator
// (internal/fsys/sim) through random workloads (draws, keyed draws, bursts
// of concurrent draws that share a group commit, admin changes, snapshots,
// segment rotations, repair, close/reopen, EIO and ENOSPC) and cuts the
// power at a random file-system operation, many times from deterministic
// seeds. After every cut it restarts the engine on what survived, which
// must succeed without manual repair (only unacknowledged data can be
// lost under DurabilityAlways), and checks against the whole history in
// the logs:
//
//   - every acknowledged draw is present, with its item;
//   - request ids strictly increase through the history, and the next one
//     is above every id ever acknowledged;
//   - no limited item is over-issued: a tiny reference model replays the
//     history's ADD/SET/REMOVE/DRAW records and must agree with the state;
//   - an acknowledged idempotency key answers the same draws again.
//
// REWARDPOOL_POWERLOSS_RUNS sets the number of runs (each a fresh
// directory with 40 cycles); the default keeps `make test` short.
// A failure names its seed: REWARDPOOL_POWERLOSS_SEED=<seed> reruns it alone
// (goroutine timing varies, so a rerun may need a few tries), and
// REWARDPOOL_POWERLOSS_TRACE=1 prints every cycle and file operation.
func TestPowerLoss(t *testing.T) {
	// The race detector makes every run about five times slower: the
	// race pass of `make test` takes a few runs, and its own pass without
	// -race (make powerloss) takes the thousands of cuts.
	runs := 150
	if raceEnabled || testing.Short() {
		runs = 8
	}
	if v := os.Getenv("REWARDPOOL_POWERLOSS_RUNS"); v != "" {
		runs, _ = strconv.Atoi(v)
	}
	first := uint64(1)
	if v := os.Getenv("REWARDPOOL_POWERLOSS_SEED"); v != "" {
		first, _ = strconv.ParseUint(v, 10, 64)
		runs = 1
	}
	if os.Getenv("REWARDPOOL_POWERLOSS_TRACE") != "" {
		plTrace = func(format string, args ...any) { fmt.Printf("cycle: "+format+"\n", args...) }
		plTraceFS = func(op sim.Op, name string, err error) { fmt.Printf("fs: %s %s %v\n", op, name, err) }
	}
	var total plStats
	start := time.Now()
	for seed := first; seed < first+uint64(runs); seed++ {
		st, err := powerLossRun(seed, 40)
		total.add(st)
		if err != nil {
			t.Fatalf("seed %d (rerun: REWARDPOOL_POWERLOSS_SEED=%d go test -run TestPowerLoss .): %v", seed, seed, err)
		}
	}
	t.Logf("power loss: %d runs, %d cuts (%d during open), %d clean reopens, %d faults, %d repairs, "+
		"%d flipped bits (%d refused at start, then repaired); "+
		"%d acknowledged draws checked after %d restarts, %d unacknowledged calls; %s",
		runs, total.cuts, total.cutsInOpen, total.clean, total.faults, total.repairs, total.flips, total.refused,
		total.checked, total.restarts, total.unacked, time.Since(start).Round(time.Millisecond))
}

type plStats struct {
	cuts, cutsInOpen, clean, faults, repairs, restarts, checked, unacked, flips, refused int
}

func (s *plStats) add(o plStats) {
	s.cuts += o.cuts
	s.cutsInOpen += o.cutsInOpen
	s.clean += o.clean
	s.faults += o.faults
	s.repairs += o.repairs
	s.restarts += o.restarts
	s.checked += o.checked
	s.unacked += o.unacked
	s.flips += o.flips
	s.refused += o.refused
}

// plRun is the state of one run: the file system and what was acknowledged.
type plRun struct {
	rng     *rand.Rand
	fs      *sim.FS
	dir     string
	opts    Options
	acked   map[uint64]string       // request id -> item id ("" for empty-pool)
	keys    map[string][]DrawResult // acknowledged keyed draws
	maxID   uint64                  // highest id ever acknowledged
	items   map[string]bool         // item ids that may exist
	mu      sync.Mutex              // guards acked, keys, maxID during bursts
	faultOn bool                    // a fault is installed for this cycle
	stats   plStats
	journal bool // commit through a node journal (package journal)
}

func powerLossRun(seed uint64, cuts int) (plStats, error) {
	r := newPLRun(seed)
	for c := 0; c < cuts; c++ {
		if err := r.cycle(); err != nil {
			return r.stats, fmt.Errorf("cycle %d: %w", c, err)
		}
	}
	if seed%3 == 0 && !r.journal {
		// `wal repair` is an offline tool for a pool's own log; with a
		// journal it runs after the node has replayed the journal once.
		if err := r.flipPhase(); err != nil {
			return r.stats, fmt.Errorf("flipped bit: %w", err)
		}
	}
	return r.stats, nil
}

// newPLRun sets up a run on a fresh simulated file system: the pool's
// directory does not exist yet.
func newPLRun(seed uint64) *plRun {
	r := &plRun{
		rng:   rand.New(rand.NewPCG(seed, 7)),
		fs:    sim.New(seed),
		dir:   "/data/pool",
		acked: map[uint64]string{},
		keys:  map[string][]DrawResult{},
		items: map[string]bool{"gem": true, "coin": true, "mud": true},
	}
	seedBytes := [32]byte{byte(seed), byte(seed >> 8), 9}
	r.opts = Options{
		Items: []Item{
			{ID: "gem", Quantity: 40, Weight: 5 * WeightUnit},
			{ID: "coin", Quantity: 120, Weight: 20 * WeightUnit},
			{ID: "mud", Quantity: Unlimited, Weight: WeightUnit},
		},
		Logger:        quietLogger(),
		Seed:          &seedBytes,
		Codec:         []string{"binary", "text", "jsonl"}[seed%3],
		SegmentSize:   int64(1024 + r.rng.IntN(4)*1024),
		SnapshotEvery: uint64(20 + r.rng.IntN(60)),
		KeepSegments:  1 << 30, // keep the whole history for the checks
		fs:            r.fs,
	}
	if plTraceFS != nil {
		r.fs.SetTrace(plTraceFS)
	}
	if seed%4 == 3 {
		// Segments that outgrow their first reservation: the log reserves
		// file space a step ahead of the data, and cuts land in between.
		r.opts.SegmentSize = 256 << 10
	}
	r.journal = seed%4 == 1
	return r
}

// flipPhase damages acknowledged data: it flips a bit inside the records
// of a sealed log segment. A start that reads the damage must refuse with
// a *wal.CorruptError naming the segment; one that does not need it (a
// snapshot covers it) may start. Then `wal repair` cuts the log there and
// the next start must hand out ids above every id ever acknowledged.
func (r *plRun) flipPhase() error {
	var segs []string
	ents, err := r.fs.ReadDir(r.dir + "/" + walDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".wal") {
			segs = append(segs, e.Name())
		}
	}
	if len(segs) < 2 {
		return nil
	}
	// A sealed segment (not the last one). So that the start has to read
	// it, the snapshots go too when the log alone holds the whole history
	// (it starts at seq 1): the start then replays everything.
	if segs[0] == fmt.Sprintf("%020d.wal", 1) {
		infos, _ := snapshot.In(r.fs, r.dir+"/"+snapDir).List()
		for _, in := range infos {
			if err := r.fs.Remove(r.dir + "/" + snapDir + "/" + in.Name); err != nil {
				return err
			}
		}
	}
	seg := segs[r.rng.IntN(len(segs)-1)]
	path := r.dir + "/" + walDir + "/" + seg
	data, err := fsys.ReadFile(r.fs, path)
	if err != nil {
		return err
	}
	end := len(data)
	for end > wal.HeaderSize && data[end-1] == 0 {
		end--
	}
	if end <= wal.HeaderSize+1 {
		return nil
	}
	off := int64(wal.HeaderSize + 1 + r.rng.IntN(end-wal.HeaderSize-1))
	if err := r.fs.FlipBit(path, off, uint(r.rng.IntN(8))); err != nil {
		return err
	}
	r.stats.flips++
	e, err := Open(r.dir, r.opts)
	var ce *wal.CorruptError
	switch {
	case errors.As(err, &ce):
		if ce.Segment != seg {
			return fmt.Errorf("damage in %s reported in %s: %v", seg, ce.Segment, err)
		}
		r.stats.refused++
	case err != nil:
		return fmt.Errorf("open with a flipped bit in %s: want a *wal.CorruptError, got %w", seg, err)
	default:
		e.Close() // the damage lies before the snapshot: never read
	}
	if _, err := repairLog(r.fs, r.dir, quietLogger()); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	e, err = Open(r.dir, r.opts)
	if errors.Is(err, ErrUnprovable) {
		// The repair cut everything the snapshots (gone) did not cover:
		// the override seeds the pool again, ids above all handed out.
		if _, err := reseedLog(r.fs, r.dir, quietLogger()); err != nil {
			return fmt.Errorf("reseed: %w", err)
		}
		e, err = Open(r.dir, r.opts)
	}
	if err != nil {
		return fmt.Errorf("open after repair: %w", err)
	}
	defer e.Close()
	res, err := e.Draw(ctx, DrawRequest{})
	if err != nil {
		return err
	}
	if res[0].RequestID <= r.maxID {
		return fmt.Errorf("after repair request id %d, reusing ids up to %d", res[0].RequestID, r.maxID)
	}
	return nil
}

// cycle opens the engine, runs a random workload that ends in a power cut,
// an injected fault or a clean close, and checks the state after restart.
func (r *plRun) cycle() error {
	mode := r.rng.IntN(10)
	switch {
	case mode < 7:
		r.fs.CrashAfter(1 + r.rng.IntN(100))
	case mode < 8:
		r.installFault()
	}
	defer func() { r.faultOn = false }()
	if plTrace != nil {
		plTrace("cycle mode %d", mode)
	}
	r.opts.Journal = nil
	if r.journal {
		j, err := journal.Open("/data/.journal", journal.Options{FS: r.fs, Logger: quietLogger(), SegmentSize: int64(2048 + r.rng.IntN(4)*1024)})
		if err != nil {
			if r.dead() {
				r.stats.cutsInOpen++
				return r.restart()
			}
			if r.faulted() {
				return r.restartAfterFault()
			}
			return fmt.Errorf("open journal: %w", err)
		}
		defer j.Close()
		r.opts.Journal = j
	}
	e, err := Open(r.dir, r.opts)
	if err != nil {
		if r.dead() {
			r.stats.cutsInOpen++
			return r.restart()
		}
		if r.faulted() {
			return r.restartAfterFault()
		}
		ents, _ := r.fs.ReadDir(r.dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		wents, _ := r.fs.ReadDir(r.dir + "/wal")
		var wnames []string
		for _, e := range wents {
			info, _ := e.Info()
			wnames = append(wnames, fmt.Sprintf("%s(%d)", e.Name(), info.Size()))
		}
		return fmt.Errorf("open: %w (dir holds %v; wal holds %v)", err, names, wnames)
	}
	r.stats.restarts++
	r.fs.Hold(func() { err = r.check(e) })
	if err != nil && r.dead() {
		// A background operation (the journal preparing its next segment)
		// took the power before the check could read: the next cycle
		// checks after the restart.
		e.Close()
		return r.restart()
	}
	if err != nil {
		e.Close()
		return err
	}
	for op := 0; op < 40 && !r.dead(); op++ {
		if err := r.step(e); err != nil {
			e.Close()
			return err
		}
	}
	e.Close() // fails once the power is off or a fault hit; that is the point
	if r.dead() {
		return r.restart()
	}
	if mode < 7 {
		// The workload ended before the cut: cut now, at rest.
		r.fs = r.fs.PowerCut()
		r.opts.fs = r.fs
		r.stats.cuts++
		return nil
	}
	if r.faulted() {
		return r.restartAfterFault()
	}
	r.stats.clean++
	return nil
}

func (r *plRun) dead() bool {
	select {
	case <-r.fs.Crashed():
		return true
	default:
		return false
	}
}

// restart moves on to the file system as it came back after the cut, and
// sometimes runs `wal repair` on it first, as an operator might.
func (r *plRun) restart() error {
	if plTrace != nil {
		plTrace("power cut; acked so far %d, max id %d", len(r.acked), r.maxID)
	}
	r.fs = r.fs.AfterCrash()
	r.opts.fs = r.fs
	r.stats.cuts++
	if r.rng.IntN(8) == 0 && !r.journal {
		r.stats.repairs++
		if _, err := repairLog(r.fs, r.dir, quietLogger()); err != nil &&
			!errors.Is(err, fsErrNotExist) {
			return fmt.Errorf("repair after the cut: %w", err)
		}
	}
	return nil
}

var errInjected = errors.New("injected")

// With REWARDPOOL_POWERLOSS_TRACE set, a run prints each cycle and every
// file-system operation: rerun a failing seed with it to see the story.
var (
	plTraceFS func(op sim.Op, name string, err error)
	plTrace   func(format string, args ...any)
)

// installFault fails one random kind of operation, now and then, with EIO
// or ENOSPC (a full disk).
func (r *plRun) installFault() {
	op := []sim.Op{sim.OpWrite, sim.OpSync, sim.OpSyncDir, sim.OpRename, sim.OpOpen, sim.OpAllocate}[r.rng.IntN(6)]
	errno := []error{syscall.EIO, syscall.ENOSPC}[r.rng.IntN(2)]
	after := 1 + r.rng.IntN(40)
	r.faultOn = true
	r.fs.SetFault(func(o sim.Op, name string) error {
		if o != op {
			return nil
		}
		if after--; after == 0 {
			r.stats.faults++
			return fmt.Errorf("%w: %w", errInjected, errno)
		}
		return nil
	})
}

func (r *plRun) faulted() bool { return r.faultOn }

// restartAfterFault removes the fault: the next cycle reopens the same
// file system, as a restart after the disk recovered.
func (r *plRun) restartAfterFault() error {
	r.fs.SetFault(nil)
	return nil
}

// step runs one random operation and records what was acknowledged.
func (r *plRun) step(e *Engine) error {
	switch n := r.rng.IntN(20); {
	case n < 9:
		count := 1 + r.rng.IntN(6)
		res, err := e.Draw(ctx, DrawRequest{Count: count})
		r.note(res, err, "")
	case n < 12:
		key := fmt.Sprintf("k%d", r.rng.IntN(40))
		res, err := e.Draw(ctx, DrawRequest{Count: 1 + r.rng.IntN(3), IdempotencyKey: key})
		if err == nil {
			r.mu.Lock()
			prev, ok := r.keys[key]
			r.mu.Unlock()
			if ok && !sameDraws(prev, res) {
				return fmt.Errorf("key %s answered %v, first answer was %v", key, res, prev)
			}
			if !ok {
				r.note(res, nil, key)
			}
		} else {
			r.stats.unacked++
		}
	case n < 15:
		// A burst of concurrent draws that share one group commit.
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.Draw(ctx, DrawRequest{Count: 2})
				r.note(res, err, "")
			}()
		}
		wg.Wait()
	case n < 17:
		id := []string{"gem", "coin", "extra"}[r.rng.IntN(3)]
		q := int64(r.rng.IntN(30))
		if err := e.PutItem(ctx, Item{ID: id, Quantity: q, Weight: WeightUnit * uint64(1+r.rng.IntN(5))}); err == nil {
			r.items[id] = true
		}
	case n < 18:
		e.RemoveItem(ctx, "extra")
	default:
		e.State(ctx)
	}
	return nil
}

func (r *plRun) note(res []DrawResult, err error, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.stats.unacked++
		return
	}
	for _, d := range res {
		r.acked[d.RequestID] = d.ItemID
		r.maxID = max(r.maxID, d.RequestID)
	}
	if key != "" {
		r.keys[key] = append([]DrawResult(nil), res...)
	}
}

func sameDraws(a, b []DrawResult) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].RequestID != b[i].RequestID || a[i].ItemID != b[i].ItemID {
			return false
		}
	}
	return true
}

// check compares a freshly recovered engine with everything acknowledged.
func (r *plRun) check(e *Engine) error {
	hist, err := readHistory(r.fs, r.dir, e)
	if err != nil {
		return err
	}
	// Every acknowledged draw is in the history with its item.
	for id, item := range r.acked {
		got, ok := hist.draws[id]
		if !ok {
			return fmt.Errorf("acknowledged draw %d (%q) is missing after restart", id, item)
		}
		if got != item {
			return fmt.Errorf("acknowledged draw %d was %q, the log says %q", id, item, got)
		}
		r.stats.checked++
	}
	// No over-issue: the reference model's stock equals the engine's.
	st, err := e.State(ctx)
	if err != nil {
		return err
	}
	if hist.relabelled {
		// The state continued from a snapshot at a seq floor: compare
		// only what the history can still prove (no negative stock).
		for id, q := range hist.qty {
			if q < -1 {
				return fmt.Errorf("item %s over-issued: %d", id, q)
			}
		}
	} else {
		got := quantities(st)
		for id, q := range hist.qty {
			if got[id] != q {
				return fmt.Errorf("item %s: engine has %d left, the log's history gives %d", id, got[id], q)
			}
		}
		if len(got) != len(hist.qty) {
			return fmt.Errorf("engine items %v, history items %v", got, hist.qty)
		}
	}
	// The next id is above every acknowledged id.
	if st.LastRequestID < r.maxID {
		return fmt.Errorf("last request id %d is below the acknowledged %d", st.LastRequestID, r.maxID)
	}
	// An acknowledged key answers the same draws again.
	for key, want := range r.keys {
		got, err := e.Draw(ctx, DrawRequest{Count: len(want), IdempotencyKey: key})
		if err != nil {
			return fmt.Errorf("retry of key %s: %w", key, err)
		}
		if !sameDraws(got, want) {
			return fmt.Errorf("retry of key %s answered %v, first answer was %v", key, got, want)
		}
		break // one per restart keeps the cycle short
	}
	return nil
}

// history is what the logs of a directory say happened.
type history struct {
	draws      map[uint64]string // request id -> item id
	qty        map[string]int64  // the reference model's remaining stock
	relabelled bool              // a log was set aside below a seq floor
}

// readHistory reads every log of dir in order (logs set aside first, by
// the seq they were set aside at, then the live one), checks that request
// ids strictly increase, and replays the catalog records through a tiny
// reference model that refuses a draw of an item with no stock.
func readHistory(fs fsys.FS, dir string, e *Engine) (*history, error) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var logs []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), walDir+".behind-") {
			logs = append(logs, e.Name())
		}
	}
	sort.Slice(logs, func(i, j int) bool { return behindSeq(logs[i]) < behindSeq(logs[j]) })
	logs = append(logs, walDir)
	h := &history{draws: map[uint64]string{}, qty: map[string]int64{}}
	slots := map[int32]string{}
	var lastID, lastSeq uint64
	for _, name := range logs {
		// The live log is read through the engine that holds it.
		scan, first, closeLog := e.ScanLog, e.FirstLogSeq(), func() {}
		if name != walDir {
			h.relabelled = true
			l, err := wal.Open(filepath.Join(dir, name), wal.Options{Logger: quietLogger(), FS: fs})
			if err != nil {
				return nil, fmt.Errorf("history: open %s: %w", name, err)
			}
			scan, first, closeLog = l.Scan, l.FirstSeq(), func() { l.Close() }
		}
		if first == 0 {
			closeLog()
			continue
		}
		if first <= lastSeq {
			closeLog()
			return nil, fmt.Errorf("history: %s starts at seq %d, not after %d", name, first, lastSeq)
		}
		err := scan(first, func(rec *wal.Record) error {
			lastSeq = rec.Seq
			switch rec.Kind {
			case wal.KindAdd:
				slots[rec.Item] = rec.ItemID
				h.qty[rec.ItemID] = rec.Quantity
			case wal.KindSet:
				h.qty[nameOf(rec, slots)] = rec.Quantity
			case wal.KindRemove:
				delete(h.qty, nameOf(rec, slots))
			case wal.KindDraw, wal.KindDrawFailed:
				if rec.RequestID <= lastID {
					return fmt.Errorf("request id %d at seq %d does not increase (previous %d)", rec.RequestID, rec.Seq, lastID)
				}
				lastID = rec.RequestID
				if rec.Kind == wal.KindDrawFailed {
					h.draws[rec.RequestID] = ""
					return nil
				}
				id := nameOf(rec, slots)
				h.draws[rec.RequestID] = id
				q, ok := h.qty[id]
				switch {
				case !ok && !h.relabelled:
					return fmt.Errorf("draw %d of %q, which is not in the catalog", rec.RequestID, id)
				case q == 0:
					return fmt.Errorf("draw %d of %q, which has no stock left: over-issue", rec.RequestID, id)
				case q > 0:
					h.qty[id] = q - 1
				}
			}
			return nil
		})
		closeLog()
		if err != nil {
			return nil, fmt.Errorf("history: %s: %w", name, err)
		}
	}
	return h, nil
}

func nameOf(rec *wal.Record, slots map[int32]string) string {
	if rec.ItemID != "" {
		return rec.ItemID
	}
	return slots[rec.Item]
}

func behindSeq(name string) uint64 {
	s := strings.TrimPrefix(name, walDir+".behind-")
	s, _, _ = strings.Cut(s, ".")
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}
