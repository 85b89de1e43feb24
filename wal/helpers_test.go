package wal

import (
	"github.com/rewardpool/rewardpool/internal/fsys"

	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

type combo struct{ codec, storage string }

func (c combo) String() string { return c.codec + "/" + c.storage }

var combos = []combo{
	{"binary", "file"}, {"binary", "mmap"},
	{"text", "file"}, {"text", "mmap"},
	{"jsonl", "file"}, {"jsonl", "mmap"},
}

// logBuf collects log output so tests can look for the torn-tail warning.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *logBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *logBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func testOptions(c combo, segSize int64, w io.Writer) Options {
	if w == nil {
		w = io.Discard
	}
	return Options{Codec: c.codec, Storage: c.storage, SegmentSize: segSize,
		Logger: slog.New(slog.NewTextHandler(w, nil))}
}

// gen makes batches of mixed kinds with consecutive seqs.
type gen struct {
	seq, req, epoch uint64
	items           int
}

func newGen() *gen { return &gen{seq: 1, req: 1000, epoch: 1} }

func (g *gen) batch(n int) []Record {
	recs := make([]Record, 0, n)
	for i := 0; i < n; i++ {
		r := Record{Seq: g.seq, Epoch: g.epoch, Item: -1}
		switch g.seq % 11 {
		case 0:
			r.Kind, r.RequestID = KindDrawFailed, g.req
			g.req++
		case 1:
			r.Kind, r.Key, r.Count = KindKey, fmt.Sprintf("key \"%d\"\x01é", g.seq), 2
		case 2:
			r.Kind, r.Item, r.ItemID, r.Quantity, r.Weight = KindAdd, int32(g.items), fmt.Sprintf("item-%d", g.items), 100, 2_500_000
			g.items++
		case 3:
			r.Kind, r.Item, r.ItemID, r.Quantity, r.Weight = KindSet, 70000, "item-70000", -1, 12
		case 4:
			r.Kind, r.Item, r.ItemID = KindRemove, 3, "item-3"
		case 5:
			if g.seq%3 == 0 {
				g.epoch++
				r.Epoch = g.epoch
				r.Kind = KindEpoch
				break
			}
			fallthrough
		default:
			slot := int32(65536 + g.seq*7919%1_000_000)
			r.Kind, r.RequestID, r.Item, r.ItemID = KindDraw, g.req, slot, fmt.Sprintf("item-%d", slot)
			g.req++
		}
		if (r.Kind == KindDraw || r.Kind == KindDrawFailed) && g.seq%4 == 0 {
			// A player's draw: the user (quotes, a space, non-ASCII) and the
			// writer's clock.
			r.User, r.Time = fmt.Sprintf("player \"%d\" é", g.seq%5), 1_764_547_200_000+int64(g.seq)
		}
		recs = append(recs, r)
		g.seq++
	}
	recs[n-1].Commit = true
	return recs
}

// expect is what codec c gives back for r.
func expect(c string, r Record) Record {
	if c == "binary" {
		if r.Kind == KindDraw {
			r.ItemID = ""
		}
		if r.Kind != KindDraw && r.Kind != KindAdd && r.Kind != KindSet && r.Kind != KindRemove {
			r.Item = -1
		}
		return r
	}
	r.Item = -1
	if !hasItemID(r.Kind) {
		r.ItemID = ""
	}
	return r
}

func scanAll(t *testing.T, l *Log, from uint64) []Record {
	t.Helper()
	var out []Record
	if err := l.Scan(from, func(r *Record) error { out = append(out, *r); return nil }); err != nil {
		t.Fatalf("Scan(%d): %v", from, err)
	}
	return out
}

func checkRecords(t *testing.T, codec string, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if w := expect(codec, want[i]); got[i] != w {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got[i], w)
		}
	}
}

func mustOpen(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, recs []Record) {
	t.Helper()
	if err := l.Append(recs); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// copyDir copies the segment files of src into a new temp dir.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// recordOffsets lists the offsets of the records in dir/name.
func recordOffsets(t *testing.T, dir, name string) []int64 {
	t.Helper()
	seg, err := readSegmentHeader(fsys.OS, dir, name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	r := newSegReader(f, seg, fi.Size())
	var offs []int64
	var rec Record
	for {
		off, err := r.read(&rec)
		if err != nil {
			offs = append(offs, off) // end of data
			return offs
		}
		offs = append(offs, off)
	}
}
