package server

import (
	"strings"
	"testing"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
)

// drawsTotal sums rewardpool_draws_total for pool by result.
func drawsTotal(m map[string]float64, pool string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if !strings.HasPrefix(k, "rewardpool_draws_total{") || !strings.Contains(k, `pool="`+pool+`"`) {
			continue
		}
		i := strings.Index(k, `result="`)
		if i < 0 {
			continue
		}
		res := k[i+len(`result="`):]
		out[res[:strings.IndexByte(res, '"')]] += v
	}
	return out
}

// An idempotent replay draws nothing: rewardpool_draws_total counts it
// apart, with result="replayed", so ok + pool_empty is what was drawn.
func TestReplaysCountedApart(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)
	first := ts.draw("prizes", "", `{"count": 3, "idempotency_key": "k1"}`)
	again := ts.draw("prizes", "", `{"count": 3, "idempotency_key": "k1"}`)
	if len(again) != 3 || again[0] != first[0] {
		t.Fatalf("replay answered %+v, want %+v", again, first)
	}
	resp, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: 3, IdempotencyKey: "k1"})
	if err != nil || len(resp.Draws) != 3 || resp.Draws[0].RequestId != first[0].RequestID {
		t.Fatalf("gRPC replay: %v, %v", resp, err)
	}
	ts.draw("prizes", "", `{"count": 2}`) // two real draws without a key

	got := drawsTotal(ts.scrape(), "prizes")
	if drawn := got["ok"] + got["pool_empty"]; drawn != 5 {
		t.Errorf("draws counted as drawn = %v (%v), want 5 (3 + 2 real draws)", drawn, got)
	}
	if got["replayed"] != 6 {
		t.Errorf(`result="replayed" = %v, want 6 (two replays of 3)`, got["replayed"])
	}
	if st := ts.getPool("prizes", ""); st.LastRequestID != 5 {
		t.Errorf("last request id %d, want 5: replays must not draw", st.LastRequestID)
	}
}

// count 0 means the same on every transport: one draw (gRPC cannot tell 0
// from absent, so 0 is the default everywhere); a negative count is 400.
func TestCountZeroMeansOne(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)
	for _, body := range []string{`{"count": 0}`, `{"count": "0"}`, `{}`, ``} {
		if got := ts.draw("prizes", "", body); len(got) != 1 {
			t.Errorf("HTTP draw %q: %d draws, want 1", body, len(got))
		}
		code, b := ts.do("POST", "/v1/noop/prizes", "", body)
		if code != 200 || strings.Count(string(b), "noop") != 1 {
			t.Errorf("HTTP noop %q: %d %s, want one placeholder", body, code, b)
		}
	}
	resp, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: 0})
	if err != nil || len(resp.Draws) != 1 {
		t.Errorf("gRPC draw count 0: %v, %v; want one draw", resp, err)
	}
	if st := ts.getPool("prizes", ""); st.LastRequestID != 5 {
		t.Errorf("last request id %d, want 5", st.LastRequestID)
	}
	for _, body := range []string{`{"count": -1}`, `{"count": "-1"}`} {
		code, b := ts.do("POST", "/v1/pools/prizes/draw", "", body)
		if code != 400 || decodeError(t, b).Code != "INVALID_ARGUMENT" {
			t.Errorf("HTTP draw %q: %d %s, want 400 INVALID_ARGUMENT", body, code, b)
		}
	}
}
