package server

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/internal/config"
)

// discardWriter is a reusable http.ResponseWriter: it keeps the status and
// the body's size, and its header map is cleared between requests, as
// net/http reuses a connection's.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	w.status = code
}
func (w *discardWriter) SetReadDeadline(time.Time) error { return nil }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

// rewindBody is a request body that can be read again.
type rewindBody struct{ bytes.Reader }

func (b *rewindBody) Close() error { return nil }

// httpDrawBench calls the server's HTTP handler (routing, auth, body
// limits, parse, draw, metrics, answer) directly, without a connection, so
// what is measured is the server's own code on the draw route.
type httpDrawBench struct {
	h    http.Handler
	w    discardWriter
	r    *http.Request
	body rewindBody
	raw  []byte
}

func newHTTPDrawBench(t testing.TB, srv *Server, target, body string) *httpDrawBench {
	u, err := url.Parse("http://" + srv.Addr().String() + target)
	if err != nil {
		t.Fatal(err)
	}
	b := &httpDrawBench{h: srv.routes(), w: discardWriter{h: http.Header{}}, raw: []byte(body)}
	b.r = &http.Request{Method: "POST", URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Host: u.Host, RequestURI: target,
		ContentLength: int64(len(body))}
	return b
}

func (b *httpDrawBench) do(t testing.TB) {
	b.body.Reset(b.raw)
	b.r.Body = &b.body
	clear(b.w.h)
	b.w.status, b.w.n = 0, 0
	b.h.ServeHTTP(&b.w, b.r)
	if b.w.status != http.StatusOK || b.w.n == 0 {
		t.Fatalf("draw answered %d (%d bytes)", b.w.status, b.w.n)
	}
}

func noDurability(c *config.Config) {
	c.Durability = "none"
	c.Limits.MaxDrawCount = 1000
}

// TestHTTPDrawDoesNotAllocate: the HTTP draw route's own code allocates
// nothing per request once warm (net/http's per-connection and
// per-request objects are not part of this: the handler is called
// directly). Keyed requests allocate their key (the engine keeps it), and
// an answer too big for net/http to buffer whole (over smallAnswer) its
// Content-Length header: 2 per request, not per draw (100 draws here).
func TestHTTPDrawDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race; make test runs this without it")
	}
	ts := startServer(t, serverOpts{configure: noDurability})
	for _, c := range []struct {
		target, body string
		want         float64
	}{
		{"/v1/pools/prizes/draw", ``, 0},
		{"/v1/pools/prizes/draw", `{"count": 1}`, 0},
		{"/v1/pools/prizes/draw", `{"count":"5", "compact": false}`, 0},
		{"/v1/noop/prizes", `{"count": 1}`, 0},
		{"/v1/pools/prizes/draw?compact=1", `{"count": 100}`, 0},
		{"/v1/pools/prizes/draw", `{"count": 100, "compact": true}`, 0},
		{"/v1/pools/prizes/draw", `{"count": 100}`, 2},
	} {
		b := newHTTPDrawBench(t, ts.srv, c.target, c.body)
		for range 200 {
			b.do(t)
		}
		allocs := testing.AllocsPerRun(1000, func() { b.do(t) })
		// A GC can empty a sync.Pool mid-run; allow that, not one per request.
		if allocs > c.want+0.05 {
			t.Errorf("POST %s %s: %.2f allocations per request, want %v", c.target, c.body, allocs, c.want)
		}
	}
}

// BenchmarkHTTPDrawHandler: the server's own CPU per HTTP draw request
// (see httpDrawBench), durability none so the engine's writer does not wait
// on the disk. One op is one request.
func BenchmarkHTTPDrawHandler(b *testing.B) {
	for _, c := range []struct{ name, target, body string }{
		{"count=1", "/v1/pools/prizes/draw", `{"count": 1}`},
		{"count=100", "/v1/pools/prizes/draw", `{"count": 100}`},
		{"count=100/compact", "/v1/pools/prizes/draw?compact=1", `{"count": 100}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			hb := newHTTPDrawBench(b, benchNode(b, ""), strings.Replace(c.target, "prizes", benchPool, 1), c.body)
			b.ReportAllocs()
			for b.Loop() {
				hb.do(b)
			}
		})
	}
}

var _ io.ReadCloser = (*rewindBody)(nil)
