package replica

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/wal"
)

// Continuity between two logs is judged by (epoch, seq): an epoch is
// started by one promotion on one node (epochs are unique across nodes,
// see rewardpool.NextEpoch), so two records with the same seq and epoch are
// the same record, and two logs agree up to the first seq where their
// epochs differ. A History is the part of a log's epoch sequence that is
// still on disk, which is all that is needed to find that seq.

// EpochRun is a stretch of a log written in one epoch, from seq First on.
type EpochRun struct {
	Epoch, First uint64
}

// History is a log's epochs over the seqs [First, Last] it still holds:
// runs in seq order, the first starting at First. Empty (Last 0) for an
// empty data directory.
type History struct {
	First, Last uint64
	Runs        []EpochRun
}

// At returns the epoch of the record at seq, which must lie in [First, Last].
func (h History) At(seq uint64) uint64 {
	var e uint64
	for _, r := range h.Runs {
		if r.First > seq {
			break
		}
		e = r.Epoch
	}
	return e
}

var errStopHistory = errors.New("stop")

// LogHistory reads the epochs of an engine's log. A node whose log is
// empty (it recovered or bootstrapped from a snapshot) knows only the
// epoch of its last seq.
func LogHistory(e *rewardpool.Engine) (History, error) {
	last := e.LastSeq()
	if last == 0 {
		return History{}, nil
	}
	first := e.FirstLogSeq()
	if first == 0 || first > last {
		return History{First: last, Last: last, Runs: []EpochRun{{Epoch: e.Epoch(), First: last}}}, nil
	}
	h := History{First: first}
	err := e.ScanLog(first, func(r *wal.Record) error {
		if len(h.Runs) == 0 || h.Runs[len(h.Runs)-1].Epoch != r.Epoch {
			h.Runs = append(h.Runs, EpochRun{Epoch: r.Epoch, First: r.Seq})
		}
		h.Last = r.Seq
		if r.Seq >= last {
			return errStopHistory
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopHistory) {
		return History{}, fmt.Errorf("read the epochs of the log: %w", err)
	}
	if h.Last == 0 {
		return History{First: last, Last: last, Runs: []EpochRun{{Epoch: e.Epoch(), First: last}}}, nil
	}
	return h, nil
}

// HistoryCache keeps one engine's History between calls and reads only the
// records written since the last call, so a follower that keeps asking
// (say, every 2 s while refused) does not make either side read its whole
// log each time. The zero value is ready; it is safe for concurrent use.
type HistoryCache struct {
	mu  sync.Mutex
	eng *rewardpool.Engine
	h   History
}

// Get returns the engine's current History.
func (c *HistoryCache) Get(e *rewardpool.Engine) (History, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := e.FirstLogSeq()
	if c.eng != e || first == 0 || c.h.Last == 0 || first > c.h.Last+1 || first < c.h.First {
		h, err := LogHistory(e)
		if err != nil {
			return History{}, err
		}
		c.eng, c.h = e, h
		return h, nil
	}
	// Segments before first were removed: forget their runs.
	if first > c.h.First {
		i := 0
		for i+1 < len(c.h.Runs) && c.h.Runs[i+1].First <= first {
			i++
		}
		c.h.Runs = append([]EpochRun(nil), c.h.Runs[i:]...)
		c.h.Runs[0].First, c.h.First = first, first
	}
	if e.LastSeq() > c.h.Last {
		runs := append([]EpochRun(nil), c.h.Runs...)
		last := c.h.Last
		err := e.ScanLog(last+1, func(r *wal.Record) error {
			if runs[len(runs)-1].Epoch != r.Epoch {
				runs = append(runs, EpochRun{Epoch: r.Epoch, First: r.Seq})
			}
			last = r.Seq
			return nil
		})
		if err != nil {
			return History{}, fmt.Errorf("read the epochs of the log: %w", err)
		}
		c.h.Runs, c.h.Last = runs, last
	}
	return c.h, nil
}

// FirstDifference returns the first seq that both histories hold where
// their epochs differ. ok is false when they agree on every seq both hold
// (or hold no seq in common).
func FirstDifference(a, b History) (seq uint64, ok bool) {
	lo, hi := max(a.First, b.First), min(a.Last, b.Last)
	if lo == 0 || lo > hi {
		return 0, false
	}
	// Epochs only change at the start of a run, so the first difference
	// is at lo or at some run's start.
	cands := []uint64{lo}
	for _, h := range []History{a, b} {
		for _, r := range h.Runs {
			if r.First > lo && r.First <= hi {
				cands = append(cands, r.First)
			}
		}
	}
	slices.Sort(cands)
	for _, s := range cands {
		if a.At(s) != b.At(s) {
			return s, true
		}
	}
	return 0, false
}

// String encodes the history for a gRPC trailer: "first-last:epoch@seq,...".
func (h History) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d-%d:", h.First, h.Last)
	for i, r := range h.Runs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d@%d", r.Epoch, r.First)
	}
	return b.String()
}

// ParseHistory decodes History.String.
func ParseHistory(s string) (History, error) {
	bad := func() (History, error) { return History{}, fmt.Errorf("replica: bad epoch history %q", s) }
	rng, runs, ok := strings.Cut(s, ":")
	if !ok {
		return bad()
	}
	fs, ls, ok := strings.Cut(rng, "-")
	if !ok {
		return bad()
	}
	var h History
	var err1, err2 error
	h.First, err1 = strconv.ParseUint(fs, 10, 64)
	h.Last, err2 = strconv.ParseUint(ls, 10, 64)
	if err1 != nil || err2 != nil || h.First > h.Last {
		return bad()
	}
	if runs == "" {
		return h, nil
	}
	for _, part := range strings.Split(runs, ",") {
		es, ss, ok := strings.Cut(part, "@")
		if !ok {
			return bad()
		}
		e, err1 := strconv.ParseUint(es, 10, 64)
		f, err2 := strconv.ParseUint(ss, 10, 64)
		if err1 != nil || err2 != nil || f < h.First || f > h.Last ||
			(len(h.Runs) > 0 && (f <= h.Runs[len(h.Runs)-1].First || e <= h.Runs[len(h.Runs)-1].Epoch)) {
			return bad()
		}
		h.Runs = append(h.Runs, EpochRun{Epoch: e, First: f})
	}
	if h.Last > 0 && (len(h.Runs) == 0 || h.Runs[0].First != h.First) {
		return bad()
	}
	return h, nil
}

// Verdict is what a follower makes of an upstream whose log differs from
// its own.
type Verdict int

const (
	// Behind: the upstream holds a prefix of this log; following it would
	// need it to catch up first. Nothing is cut.
	Behind Verdict = iota
	// Cut: the upstream is in a newer epoch that parted from this log at
	// a known seq (Common + 1): this node saves and cuts its records after
	// Common, then follows.
	Cut
	// UpstreamOlder: this log is the newer history (the upstream is, say,
	// a stale former primary). Nothing is cut; it must not be followed.
	UpstreamOlder
	// SplitBrain: both logs continue from a common point in two different
	// epochs of the same generation (two promotions of replicas of one
	// primary). Neither is newer; nothing is cut.
	SplitBrain
	// Unknown: the logs differ where neither can show it any more (before
	// the oldest seq both still hold). Nothing is cut.
	Unknown
)

// Judge compares this node's history (own) with its upstream's (up).
// common is meaningful for Cut only.
func Judge(own, up History) (v Verdict, common uint64) {
	d, ok := FirstDifference(own, up)
	if !ok {
		if own.Last > up.Last && up.Last >= own.First {
			if own.At(own.Last) > up.At(up.Last) {
				// We hold a newer epoch after the upstream's end: it is
				// a stale node that can never catch up with us.
				return UpstreamOlder, up.Last
			}
			return Behind, 0
		}
		return Unknown, 0
	}
	if d > 1 && d == max(own.First, up.First) {
		// The first seq both hold already differs: where the logs part
		// is somewhere before it, not known.
		return Unknown, 0
	}
	eo, eu := own.At(d), up.At(d)
	switch g := rewardpool.EpochGeneration(eu); {
	case g > 0 && g == rewardpool.EpochGeneration(eo):
		return SplitBrain, d - 1
	case eu > eo:
		return Cut, d - 1
	default:
		return UpstreamOlder, d - 1
	}
}

func (v Verdict) String() string {
	switch v {
	case Behind:
		return "upstream behind"
	case Cut:
		return "cut to a newer epoch"
	case UpstreamOlder:
		return "upstream older"
	case SplitBrain:
		return "split brain"
	}
	return "unknown"
}
