package rewardpool

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// snapCounter counts snapshot attempts.
type snapCounter struct {
	mu   sync.Mutex
	seqs []uint64
}

func (c *snapCounter) Batch(int, int, int)       {}
func (c *snapCounter) Sync(time.Duration, error) {}
func (c *snapCounter) count() int                { c.mu.Lock(); defer c.mu.Unlock(); return len(c.seqs) }
func (c *snapCounter) Snapshot(seq uint64, _ time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.seqs = append(c.seqs, seq)
	}
}

// bigCatalogDraws opens a pool of n unlimited items with opts, makes
// draws of 100 each, and returns the snapshots taken before Close, the
// size of the snapshot Close wrote and the log bytes the draws wrote.
func bigCatalogDraws(t *testing.T, n, draws int, opts Options) (snaps int, snapSize, logBytes int64) {
	t.Helper()
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{ID: fmt.Sprintf("item%07d", i), Quantity: Unlimited, Weight: WeightUnit}
	}
	dir := t.TempDir()
	obs := &snapCounter{}
	opts.Items, opts.Durability, opts.Observer = items, DurabilityNone, obs
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	seeded := e.Stats().WALBytes
	for range draws {
		if _, err := e.Draw(context.Background(), DrawRequest{Count: 100}); err != nil {
			t.Fatal(err)
		}
	}
	logBytes = int64(e.Stats().WALBytes - seeded)
	snaps = obs.count()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	snapFiles, _ := filepath.Glob(filepath.Join(dir, snapDir, "*.snap"))
	for _, f := range snapFiles {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		snapSize = max(snapSize, st.Size())
	}
	return snaps, snapSize, logBytes
}

// TestBigCatalogSnapshotsFollowLogBytes: a snapshot rewrites the whole
// catalog, so with the default schedule snapshots cost no more than the
// log they follow: after the first, one per snapshot's size of log. (On a
// schedule of 100,000 records, count=100 draws on a big catalog wrote a
// catalog-sized snapshot every thousand requests.)
func TestBigCatalogSnapshotsFollowLogBytes(t *testing.T) {
	n, draws := 200_000, 4000
	if raceEnabled {
		n, draws = 50_000, 1000 // the same proportions, at race speed
	}
	snaps, snapSize, logBytes := bigCatalogDraws(t, n, draws, Options{})
	if snapSize == 0 {
		t.Fatal("no snapshot at Close")
	}
	if most := 1 + logBytes/snapSize; int64(snaps) > most {
		t.Fatalf("%d snapshots of %d bytes while the log grew %d bytes: want at most %d", snaps, snapSize, logBytes, most)
	}
}

// TestSnapshotsByLogBytes: with no minimum interval, snapshots do follow
// the log, and a small catalog still gets them often.
func TestSnapshotsByLogBytes(t *testing.T) {
	snaps, snapSize, logBytes := bigCatalogDraws(t, 100, 2000, Options{SnapshotMinInterval: time.Nanosecond})
	// Each snapshot waits for the one before to finish, so how many
	// there are depends on the disk; more than one shows the schedule.
	if snaps < 2 {
		t.Fatalf("%d snapshots of %d bytes while the log grew %d bytes: want at least 2", snaps, snapSize, logBytes)
	}
	if most := 1 + logBytes/snapSize; int64(snaps) > most {
		t.Fatalf("%d snapshots of %d bytes while the log grew %d bytes: want at most %d", snaps, snapSize, logBytes, most)
	}
}

// TestSnapshotMinInterval: however much log, no snapshot before the
// minimum interval has passed (Close still writes one).
func TestSnapshotMinInterval(t *testing.T) {
	snaps, snapSize, _ := bigCatalogDraws(t, 100, 2000, Options{SnapshotMinInterval: time.Hour})
	if snaps != 0 || snapSize == 0 {
		t.Fatalf("%d snapshots before Close (want 0), Close's is %d bytes", snaps, snapSize)
	}
}
