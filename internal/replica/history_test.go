package replica

import (
	"context"
	"fmt"
	"testing"

	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/wal"
)

func TestJudge(t *testing.T) {
	g1a, g1b := uint64(1)<<32|7, uint64(1)<<32|9
	g2 := rewardpool.NextEpoch(g1a)
	h := func(first, last uint64, runs ...EpochRun) History {
		return History{First: first, Last: last, Runs: runs}
	}
	cases := []struct {
		name       string
		own, up    History
		want       Verdict
		wantCommon uint64
	}{
		{"upstream behind in the same epoch", h(1, 100, EpochRun{1, 1}), h(1, 80, EpochRun{1, 1}), Behind, 0},
		{"upstream newer epoch parted at 81", h(1, 100, EpochRun{1, 1}), h(1, 120, EpochRun{1, 1}, EpochRun{g1a, 81}), Cut, 80},
		{"upstream newer, shorter than us", h(1, 100, EpochRun{1, 1}), h(1, 85, EpochRun{1, 1}, EpochRun{g1a, 81}), Cut, 80},
		{"stale upstream", h(1, 120, EpochRun{1, 1}, EpochRun{g1a, 81}), h(1, 100, EpochRun{1, 1}), UpstreamOlder, 80},
		{"stale upstream that stops before our epoch", h(1, 120, EpochRun{1, 1}, EpochRun{g1a, 81}), h(1, 70, EpochRun{1, 1}), UpstreamOlder, 70},
		{"split brain", h(1, 90, EpochRun{1, 1}, EpochRun{g1a, 81}), h(1, 95, EpochRun{1, 1}, EpochRun{g1b, 81}), SplitBrain, 80},
		{"split brain, resolved by a later generation", h(1, 90, EpochRun{1, 1}, EpochRun{g1a, 81}),
			h(1, 200, EpochRun{1, 1}, EpochRun{g1b, 81}, EpochRun{g2, 150}), SplitBrain, 80},
		{"newer generation after ours", h(1, 90, EpochRun{1, 1}, EpochRun{g1a, 81}),
			h(1, 200, EpochRun{1, 1}, EpochRun{g1a, 81}, EpochRun{g2, 86}), Cut, 85},
		{"legacy counters", h(1, 50, EpochRun{1, 1}), h(1, 60, EpochRun{1, 1}, EpochRun{2, 41}), Cut, 40},
		{"no seq in common", h(50, 60, EpochRun{1, 50}), h(1, 40, EpochRun{2, 1}), Unknown, 0},
		{"parting point before the upstream's oldest record", h(1, 100, EpochRun{1, 1}), h(60, 150, EpochRun{g1a, 60}), Unknown, 0},
		{"parting point before our oldest record", h(60, 100, EpochRun{1, 60}), h(1, 150, EpochRun{1, 1}, EpochRun{g1a, 50}), Unknown, 0},
		{"both start at seq 1 in different epochs", h(1, 10, EpochRun{1, 1}), h(1, 10, EpochRun{2, 1}), Cut, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, common := Judge(c.own, c.up)
			if v != c.want || (v != Behind && v != Unknown && common != c.wantCommon) {
				t.Fatalf("Judge = %v at %d, want %v at %d", v, common, c.want, c.wantCommon)
			}
		})
	}
}

func TestHistoryString(t *testing.T) {
	for _, h := range []History{{}, {First: 1, Last: 9, Runs: []EpochRun{{1, 1}, {1<<32 | 5, 4}}}, {First: 7, Last: 7, Runs: []EpochRun{{3, 7}}}} {
		got, err := ParseHistory(h.String())
		if err != nil || got.String() != h.String() {
			t.Fatalf("round trip of %q: %q, %v", h.String(), got.String(), err)
		}
	}
	for _, bad := range []string{"", "1-2", "2-1:1@2", "1-9:1@2", "1-9:2@1,1@4", "1-9:1@1,2@1", "x-9:1@1"} {
		if _, err := ParseHistory(bad); err == nil {
			t.Errorf("ParseHistory(%q) accepted", bad)
		}
	}
}

// The cache reads only what was written since its last call and agrees
// with a full read, across a promotion (a new epoch run).
func TestHistoryCache(t *testing.T) {
	ctx := context.Background()
	items := []rewardpool.Item{{ID: "a", Quantity: -1, Weight: rewardpool.WeightUnit}}
	p, err := rewardpool.Open(t.TempDir(), rewardpool.Options{Items: items, Durability: rewardpool.DurabilityNone})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := rewardpool.Open(t.TempDir(), rewardpool.Options{Replica: true, Durability: rewardpool.DurabilityNone})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var c HistoryCache
	check := func(when string) {
		t.Helper()
		got, err := c.Get(r)
		if err != nil {
			t.Fatal(err)
		}
		want, err := LogHistory(r)
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("%s: cached %s, full read %s", when, got, want)
		}
	}
	check("empty")
	ship := func() {
		t.Helper()
		var recs []wal.Record
		if err := p.ScanLog(r.LastSeq()+1, func(rec *wal.Record) error { recs = append(recs, *rec); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, err := p.Draw(ctx, rewardpool.DrawRequest{Count: 2}); err != nil {
			t.Fatal(err)
		}
		ship()
		check(fmt.Sprintf("after batch %d", i))
	}
	if _, err := r.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	check("after the promotion")
	if _, err := r.Draw(ctx, rewardpool.DrawRequest{Count: 3}); err != nil {
		t.Fatal(err)
	}
	check("after draws in the new epoch")
	if h, _ := c.Get(r); len(h.Runs) != 2 || h.Runs[1].Epoch != r.Epoch() {
		t.Fatalf("history %s, want two runs ending in epoch %d", h, r.Epoch())
	}
}
