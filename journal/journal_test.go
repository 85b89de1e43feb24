package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rewardpool/rewardpool/wal"
)

// batch returns a one-draw-per-record batch of n records from seq.
func batch(seq uint64, n int) []wal.Record {
	recs := make([]wal.Record, n)
	for i := range recs {
		recs[i] = wal.Record{Seq: seq + uint64(i), Epoch: 1, Kind: wal.KindDraw, RequestID: seq + uint64(i), Item: 0, ItemID: "gold"}
	}
	recs[n-1].Commit = true
	return recs
}

func open(t *testing.T, dir string, opts Options) *Journal {
	t.Helper()
	j, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// logSeqs reads a pool log's seqs.
func logSeqs(t *testing.T, dir string) []uint64 {
	t.Helper()
	l, err := wal.Open(dir, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var seqs []uint64
	if err := l.Scan(1, func(r *wal.Record) error { seqs = append(seqs, r.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	return seqs
}

func wantSeqs(t *testing.T, got []uint64, last uint64) {
	t.Helper()
	if uint64(len(got)) != last {
		t.Fatalf("log holds %d records, want 1..%d", len(got), last)
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, s)
		}
	}
}

// Batches committed by many pools at once share rounds, and a journal
// reopened without any pool log written gives every batch back, in order.
func TestConcurrentPoolsShareRoundsAndComeBack(t *testing.T) {
	dir := t.TempDir()
	j := open(t, filepath.Join(dir, "j"), Options{})
	const pools, batches = 16, 50
	var wg sync.WaitGroup
	for p := 0; p < pools; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				if err := j.Commit(fmt.Sprintf("p%d", p), batch(uint64(b*2+1), 2)); err != nil {
					t.Error(err)
					return
				}
			}
		}(p)
	}
	wg.Wait()
	rounds := j.round
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if rounds >= pools*batches {
		t.Errorf("%d rounds for %d batches: no round was shared", rounds, pools*batches)
	}
	t.Logf("%d batches in %d rounds", pools*batches, rounds)

	j = open(t, filepath.Join(dir, "j"), Options{})
	defer j.Close()
	for p := 0; p < pools; p++ {
		logDir := filepath.Join(dir, fmt.Sprintf("p%d", p))
		n, err := j.Redo(fmt.Sprintf("p%d", p), logDir, wal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if n != 2*batches {
			t.Fatalf("pool %d: redo appended %d records, want %d", p, n, 2*batches)
		}
		wantSeqs(t, logSeqs(t, logDir), 2*batches)
	}
}

// Redo cuts what the pool's log holds beyond the journal's first batch
// (written, never acknowledged, or the same batch again) and appends the
// journal's batches; a checkpoint makes the journal forget older batches.
func TestRedoCutsTheLogAndAppends(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "pool")
	l, err := wal.Open(logDir, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]wal.Record{batch(1, 3), batch(4, 3), batch(7, 3)} {
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	l.Sync()
	l.Close()

	j := open(t, filepath.Join(dir, "j"), Options{})
	j.Commit("pool", batch(1, 3)) // before the checkpoint: forgotten
	j.Checkpoint("pool", 3)
	j.Commit("pool", batch(4, 3))
	j.Commit("pool", batch(7, 3))
	j.Commit("pool", batch(10, 2)) // acknowledged, never reached the log
	j.Close()

	j = open(t, filepath.Join(dir, "j"), Options{})
	defer j.Close()
	if !j.Pending("pool") {
		t.Fatal("journal has nothing pending for the pool")
	}
	n, err := j.Redo("pool", logDir, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 {
		t.Fatalf("redo appended %d records, want 8 (seqs 4..11)", n)
	}
	wantSeqs(t, logSeqs(t, logDir), 11)
}

// A journal whose pools all detached (their logs hold everything) leaves
// no segment behind at Close: the next start replays nothing.
func TestCloseAfterDetachLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	if err := j.Attach("a", 0, nil); err != nil {
		t.Fatal(err)
	}
	j.Commit("a", batch(1, 2))
	if err := j.Detach("a", 2); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if segs := Segments(dir); len(segs) != 0 {
		t.Fatalf("segments left after a clean close: %v", segs)
	}
	// Without the detach the segment stays.
	j = open(t, dir, Options{})
	j.Commit("a", batch(3, 2))
	j.Close()
	if segs := Segments(dir); len(segs) == 0 {
		t.Fatal("a batch no log covers was deleted at Close")
	}
}

// A reset (a pool attached with its log at some seq, or forgotten before
// its directory is replaced) drops older batches even above the seq.
func TestResetForgetsEarlierBatches(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	j.Commit("a", batch(1, 5))
	j.Forget("a")
	j.Commit("a", batch(1, 2))
	j.Close()
	j = open(t, dir, Options{})
	defer j.Close()
	n, err := j.Redo("a", filepath.Join(t.TempDir(), "a"), wal.Options{})
	if err != nil || n != 2 {
		t.Fatalf("redo after a reset appended %d records (err %v), want 2", n, err)
	}
}

// The last round torn by a power cut (a prefix of its frame, the rest of
// its sectors lost) is cut at Open; the rounds before it stay.
func TestTornLastRoundIsCut(t *testing.T) {
	for _, keep := range []int{1, frameHeader, sectorSize + 7} {
		t.Run(fmt.Sprint(keep), func(t *testing.T) {
			dir := t.TempDir()
			j := open(t, dir, Options{SegmentSize: 1 << 16})
			j.Commit("a", batch(1, 2))
			j.Commit("a", batch(3, 200)) // spans several sectors
			j.Close()
			seg := filepath.Join(dir, Segments(dir)[0])
			data, _ := os.ReadFile(seg)
			first := 512 // the first round fits one sector
			// Keep only a prefix of the second round, zero the rest.
			for i := first + keep; i < len(data); i++ {
				data[i] = 0
			}
			os.WriteFile(seg, data, 0o644)

			j = open(t, dir, Options{SegmentSize: 1 << 16})
			defer j.Close()
			n, err := j.Redo("a", filepath.Join(t.TempDir(), "a"), wal.Options{})
			if err != nil || n != 2 {
				t.Fatalf("redo after a torn round appended %d records (err %v), want the first batch's 2", n, err)
			}
		})
	}
}

// Damage to a round that a later round follows is not a torn write (rounds
// are written one at a time, each after the one before is durable): Open
// refuses instead of dropping acknowledged batches.
func TestDamagedRoundBeforeALaterOneIsCorrupt(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 1 << 16})
	for i := 0; i < 3; i++ {
		j.Commit("a", batch(uint64(2*i+1), 2))
	}
	j.Close()
	seg := filepath.Join(dir, Segments(dir)[0])
	data, _ := os.ReadFile(seg)
	data[512+frameHeader+10] ^= 0x40 // inside the second round's body
	os.WriteFile(seg, data, 0o644)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a journal with a damaged middle round: %v, want ErrCorrupt", err)
	}
}

// Segments whose batches every pool has checkpointed are deleted as the
// journal rotates, and pools holding one back are asked to checkpoint.
func TestOldSegmentsGoOnceCheckpointed(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{SegmentSize: 4096})
	var mu sync.Mutex
	last := map[string]uint64{}
	asked := 0
	for _, p := range []string{"a", "b"} {
		p := p
		j.Attach(p, 0, func() {
			mu.Lock()
			asked++
			seq := last[p]
			mu.Unlock()
			j.Checkpoint(p, seq)
		})
	}
	for i := 0; i < 400; i++ {
		for _, p := range []string{"a", "b"} {
			if err := j.Commit(p, batch(uint64(i*3+1), 3)); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			last[p] = uint64(i*3 + 3)
			mu.Unlock()
		}
	}
	n := len(Segments(dir))
	j.Close()
	if asked == 0 {
		t.Error("no pool was asked to checkpoint")
	}
	if n > 8 {
		t.Errorf("%d segments on disk after 800 batches: old ones are not deleted", n)
	}
}

// A failed fsync fails the round's callers and every later commit.
func TestFailedSyncFailsTheJournal(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	fail := false
	j := open(t, dir, Options{syncHook: func() error {
		if fail {
			return boom
		}
		return nil
	}})
	defer j.Close()
	if err := j.Commit("a", batch(1, 1)); err != nil {
		t.Fatal(err)
	}
	fail = true
	if err := j.Commit("a", batch(2, 1)); !errors.Is(err, ErrFailed) || !errors.Is(err, boom) {
		t.Fatalf("commit with a failing fsync: %v", err)
	}
	fail = false
	if err := j.Commit("a", batch(3, 1)); !errors.Is(err, ErrFailed) {
		t.Fatalf("commit after a failed round: %v, want ErrFailed", err)
	}
}

func FuzzDecodeBody(f *testing.F) {
	f.Add(append(make([]byte, 8), appendBatch(nil, "a", batch(1, 3))...))
	f.Add(append(make([]byte, 8), appendMark(nil, entryCheckpoint, "a", 5)...))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, entries, err := decodeBody(body)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same entries.
		var again []byte
		for _, e := range entries {
			if e.typ == entryBatch {
				again = appendBatch(again, e.pool, e.recs)
			} else {
				again = appendMark(again, e.typ, e.pool, e.seq)
			}
		}
		if _, back, err := decodeBody(append(make([]byte, 8), again...)); err != nil || len(back) != len(entries) {
			t.Fatalf("re-encoded entries do not decode: %v", err)
		}
	})
}

// Batches of a pool nobody opens keep their segments; forgetting the pool
// (its directory is gone) lets them go.
func TestForgottenPoolReleasesSegments(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	j.Commit("gone", batch(1, 2))
	j.Close()
	j = open(t, dir, Options{})
	if got := j.Unclaimed(); len(got) != 1 || got[0] != "gone" {
		t.Fatalf("Unclaimed() = %v, want [gone]", got)
	}
	if err := j.Forget("gone"); err != nil {
		t.Fatal(err)
	}
	if got := j.Unclaimed(); len(got) != 0 {
		t.Fatalf("Unclaimed() after Forget = %v", got)
	}
	j.Close()
	if segs := Segments(dir); len(segs) != 0 {
		t.Fatalf("segments left after the only pool was forgotten: %v", segs)
	}
}
