package server

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/config"
	"github.com/rewardpool/rewardpool/internal/drawbatch"
)

// compactTestConfig: counts up to 300, and pool "other" (5 units of x)
// runs dry within one request, so answers mix items and POOL_EMPTY.
func compactTestConfig(c *config.Config) {
	c.Limits.MaxDrawCount = 300
	c.Limits.MaxBodyBytes = 1 << 20
}

// httpDraws draws over HTTP and decodes the answer, plain or compact,
// checking which form came back.
func (ts *testServer) httpDraws(path, body string, wantCompact bool) []drawbatch.Draw {
	ts.t.Helper()
	b := ts.mustDo("POST", path, "", body, http.StatusOK)
	if got := strings.HasPrefix(string(b), `{"batch":`); got != wantCompact {
		ts.t.Fatalf("POST %s %s: answer %.80s…: compact %v, want %v", path, body, b, got, wantCompact)
	}
	draws, err := drawbatch.DecodeJSON(b, nil)
	if err != nil {
		ts.t.Fatalf("POST %s %s: %v in %s", path, body, err, b)
	}
	return draws
}

// grpcDraws draws over gRPC unary and decodes the answer, checking its form.
func (ts *testServer) grpcDraws(req *rpv1.DrawRequest) []drawbatch.Draw {
	ts.t.Helper()
	resp, err := ts.rp.Draw(testCtx(ts.t), req)
	if err != nil {
		ts.t.Fatalf("Draw %v: %v", req, err)
	}
	if got := resp.GetBatch() != nil; got != req.GetCompact() {
		ts.t.Fatalf("Draw %v: compact answer %v, want %v", req, got, req.GetCompact())
	}
	draws, err := drawbatch.Draws(resp)
	if err != nil {
		ts.t.Fatalf("Draw %v: %v", req, err)
	}
	return draws
}

// The compact answer decodes to exactly the same draws as the plain one:
// the same request (same idempotency key) is answered once plainly and once
// compactly, over each transport and in both orders, and the two answers
// must be equal draw for draw. Counts cover one draw, a few, more than the
// builder's scan table, and a pool that runs dry mid-request.
func TestCompactAnswerIsThePlainAnswer(t *testing.T) {
	ts := startServer(t, serverOpts{configure: compactTestConfig})
	cases := []struct {
		pool  string
		count int
	}{
		{"prizes", 1}, {"prizes", 3}, {"prizes", 40}, {"prizes", 250}, {"other", 9},
	}
	key := 0
	for _, c := range cases {
		for _, compactFirst := range []bool{false, true} {
			key++
			name := fmt.Sprintf("%s/count=%d/compactFirst=%v", c.pool, c.count, compactFirst)
			k := fmt.Sprintf("k%d", key)
			body := func(compact bool) string {
				return fmt.Sprintf(`{"count": %d, "idempotency_key": %q, "compact": %v}`, c.count, k, compact)
			}
			path := "/v1/pools/" + c.pool + "/draw"
			first := ts.httpDraws(path, body(compactFirst), compactFirst)
			forms := map[string][]drawbatch.Draw{
				"http body":    ts.httpDraws(path, body(!compactFirst), !compactFirst),
				"http query":   ts.httpDraws(path+"?compact=1", fmt.Sprintf(`{"count": %d, "idempotency_key": %q}`, c.count, k), true),
				"grpc plain":   ts.grpcDraws(&rpv1.DrawRequest{Pool: c.pool, Count: uint32(c.count), IdempotencyKey: k}),
				"grpc compact": ts.grpcDraws(&rpv1.DrawRequest{Pool: c.pool, Count: uint32(c.count), IdempotencyKey: k, Compact: true}),
			}
			if len(first) != c.count {
				t.Fatalf("%s: %d draws, want %d", name, len(first), c.count)
			}
			for form, got := range forms {
				if !slices.Equal(got, first) {
					t.Errorf("%s: %s answer differs from the first:\n got %v\nwant %v", name, form, got, first)
				}
			}
			if c.pool == "other" && !slices.ContainsFunc(first, func(d drawbatch.Draw) bool { return d.Error == "POOL_EMPTY" }) {
				t.Errorf("%s: want POOL_EMPTY draws in %v", name, first)
			}
		}
	}
}

// The stream answers compactly per request when asked, and the same
// requests' plain answers (replayed by key) are equal.
func TestCompactStream(t *testing.T) {
	ts := startServer(t, serverOpts{configure: compactTestConfig})
	ctx := testCtx(t)
	run := func(compact bool) [][]drawbatch.Draw {
		st, err := ts.rp.DrawStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			req := &rpv1.DrawRequest{Pool: "prizes", Count: uint32(10 * (i + 1)), IdempotencyKey: fmt.Sprintf("s%d", i), Compact: compact}
			if err := st.Send(req); err != nil {
				t.Fatal(err)
			}
		}
		st.CloseSend()
		var out [][]drawbatch.Draw
		for i := range 8 {
			resp, err := st.Recv()
			if err != nil {
				t.Fatalf("Recv %d: %v", i, err)
			}
			if (resp.GetBatch() != nil) != compact {
				t.Fatalf("response %d: compact %v, want %v", i, resp.GetBatch() != nil, compact)
			}
			d, err := drawbatch.Draws(resp)
			if err != nil || len(d) != 10*(i+1) {
				t.Fatalf("response %d: %d draws, %v", i, len(d), err)
			}
			out = append(out, d)
		}
		return out
	}
	compact := run(true)
	plain := run(false)
	for i := range compact {
		if !slices.Equal(compact[i], plain[i]) {
			t.Errorf("request %d: compact %v, plain %v", i, compact[i], plain[i])
		}
	}
}

// Small requests keep today's JSON shape unless they ask; noop answers
// compactly too; a bad compact value or query is INVALID_ARGUMENT.
func TestCompactOptIn(t *testing.T) {
	ts := startServer(t, serverOpts{configure: compactTestConfig})
	b := ts.mustDo("POST", "/v1/pools/prizes/draw", "", `{"count": 2}`, http.StatusOK)
	if !strings.HasPrefix(string(b), `{"draws":[{"request_id":`) {
		t.Errorf("plain answer changed shape: %s", b)
	}
	b = ts.mustDo("POST", "/v1/noop/prizes?compact=true", "", `{"count": 3}`, http.StatusOK)
	if want := `{"batch":{"first_request_id":0,"item_ids":["noop"],"errors":[],"outcome_index":[0,0,0]}}` + "\n"; string(b) != want {
		t.Errorf("compact noop = %s, want %s", b, want)
	}
	resp, err := ts.rp.Noop(testCtx(t), &rpv1.DrawRequest{Pool: "prizes", Count: 2, Compact: true})
	if err != nil || resp.GetBatch() == nil || len(resp.GetBatch().GetOutcomeIndex()) != 2 || len(resp.GetDraws()) != 0 {
		t.Errorf("compact gRPC noop: %v, %v", resp, err)
	}
	for _, c := range []struct{ path, body, field string }{
		{"/v1/pools/prizes/draw", `{"compact": 1}`, "compact"},
		{"/v1/pools/prizes/draw", `{"compact": "true"}`, "compact"},
		{"/v1/pools/prizes/draw?compact=yes", ``, "compact"},
		{"/v1/pools/prizes/draw?compact=1&compact=1", ``, "compact"},
		{"/v1/pools/prizes/draw?compact=1;x", ``, "query"},
	} {
		code, b := ts.do("POST", c.path, "", c.body)
		if e := decodeError(t, b); code != 400 || e.Code != "INVALID_ARGUMENT" || !strings.Contains(e.Message, c.field) {
			t.Errorf("POST %s %s: %d %s, want 400 INVALID_ARGUMENT naming %s", c.path, c.body, code, b, c.field)
		}
	}
	// Other query parameters are ignored, as before compact existed.
	for path, compact := range map[string]bool{
		"/v1/pools/prizes/draw?x=1":              false,
		"/v1/noop/prizes?compcat=1":              false,
		"/v1/pools/prizes/draw?x=1&compact=true": true,
		"/v1/pools/prizes/draw?compact=0":        false,
	} {
		b := ts.mustDo("POST", path, "", ``, http.StatusOK)
		if got := strings.HasPrefix(string(b), `{"batch":`); got != compact {
			t.Errorf("POST %s: %s, compact %v, want %v", path, b, got, compact)
		}
	}
}

// Answers carry an exact Content-Length and are not chunked, small ones
// (whose length net/http computes) and big ones (set by writeJSON) alike.
func TestDrawAnswerContentLength(t *testing.T) {
	ts := startServer(t, serverOpts{configure: compactTestConfig})
	for _, c := range []struct{ path, body string }{
		{"/v1/pools/prizes/draw", `{"count": 1}`},
		{"/v1/pools/prizes/draw", `{"count": 200}`},
		{"/v1/pools/prizes/draw?compact=1", `{"count": 200}`},
		{"/v1/noop/prizes", `{"count": 200}`},
		{"/v1/pools/nope/draw", `{"count": 1}`},
	} {
		resp, err := ts.hc.Post(ts.base+c.path, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.ContentLength != int64(len(b)) || len(resp.TransferEncoding) > 0 || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("POST %s %s: Content-Length %d, Transfer-Encoding %v, Content-Type %q, body of %d bytes",
				c.path, c.body, resp.ContentLength, resp.TransferEncoding, resp.Header.Get("Content-Type"), len(b))
		}
	}
}

// The compact form does not carry pity: an answer with a pity draw comes
// plain even when compact was asked for, over both transports, so no pity
// is lost.
func TestCompactKeepsPity(t *testing.T) {
	ts := startServer(t, serverOpts{configure: rulesPools})
	b := ts.mustDo("POST", "/v1/pools/banner/draw?compact=1", "", `{"count": 1, "user_id": "alice"}`, http.StatusOK)
	if !strings.HasPrefix(string(b), `{"draws":[`) || !strings.Contains(string(b), `"pity":"ssr hard pity`) {
		t.Errorf("HTTP compact draw with pity: %s, want the plain answer with its pity", b)
	}
	resp, err := ts.rp.Draw(testCtx(t), &rpv1.DrawRequest{Pool: "banner", Count: 1, UserId: "bob", Compact: true})
	if err != nil || resp.GetBatch() != nil || len(resp.GetDraws()) != 1 || !strings.HasPrefix(resp.GetDraws()[0].GetPity(), "ssr hard pity") {
		t.Errorf("gRPC compact draw with pity: %v, %v; want the plain answer with its pity", resp, err)
	}
}
