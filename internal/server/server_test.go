package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/rewardpool/rewardpool/internal/failpoint"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/config"
	rpool "github.com/rewardpool/rewardpool/pool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ---------------------------------------------------------------------------
// Harness

// lockedBuffer is an io.Writer safe for the concurrent writes of a logger.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const (
	testMaxDrawCount = 5
	testMaxBodyBytes = 1024
)

// testPools is the catalog most tests run on: "prizes" with two limited
// items and an unlimited one, and a small second pool "other".
func testPools() []config.Pool {
	return []config.Pool{
		{Name: "prizes", Items: []config.Item{
			{ID: "gold", Quantity: 50, Weight: 20 * rpool.WeightUnit},
			{ID: "silver", Quantity: 100, Weight: 30 * rpool.WeightUnit},
			{ID: "mud", Quantity: rpool.Unlimited, Weight: 50 * rpool.WeightUnit},
		}},
		{Name: "other", Items: []config.Item{
			{ID: "x", Quantity: 5, Weight: 1 * rpool.WeightUnit},
		}},
	}
}

type serverOpts struct {
	dataDir    string                                // default: t.TempDir()
	configure  func(*config.Config)                  // adjusts the config before New
	engineHook func(string, *rewardpool.Options)     // installed as Server.engineHook
	noRecover  bool                                  // Listen only; the test calls Recover
	closeErrOK bool                                  // Shutdown may fail (a poisoned engine)
	tlsConfig  *tls.Config                           // client TLS config, when the server uses TLS
	logs       *lockedBuffer                         // default: a fresh buffer
	onShutdown func(t *testing.T, shutdownErr error) // extra checks after Shutdown
}

// testServer is one in-process server with an HTTP and a gRPC client.
type testServer struct {
	t    *testing.T
	srv  *Server
	cfg  *config.Config
	logs *lockedBuffer
	base string // http://127.0.0.1:port or https://...
	hc   *http.Client
	conn *grpc.ClientConn
	rp   rpv1.RewardPoolClient
}

func newTestConfig(t *testing.T, dataDir string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dataDir
	cfg.Pools = testPools()
	cfg.Limits.MaxDrawCount = testMaxDrawCount
	cfg.Limits.MaxBodyBytes = testMaxBodyBytes
	cfg.ShutdownTimeout = config.Duration(10 * time.Second)
	return cfg
}

func startServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	if o.logs == nil {
		o.logs = &lockedBuffer{}
	}
	cfg := newTestConfig(t, o.dataDir)
	if o.configure != nil {
		o.configure(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	log := slog.New(slog.NewTextHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := New(cfg, log, "test-version")
	srv.engineHook = o.engineHook
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ts := &testServer{t: t, srv: srv, cfg: cfg, logs: o.logs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		if err != nil && !o.closeErrOK {
			t.Errorf("Shutdown: %v", err)
		}
		if o.onShutdown != nil {
			o.onShutdown(t, err)
		}
	})
	addr := srv.Addr().String()
	tr := &http.Transport{TLSClientConfig: o.tlsConfig, ForceAttemptHTTP2: o.tlsConfig != nil}
	ts.hc = &http.Client{Timeout: 10 * time.Second, Transport: tr}
	t.Cleanup(tr.CloseIdleConnections) // runs before Shutdown (cleanups are LIFO)
	creds := insecure.NewCredentials()
	ts.base = "http://" + addr
	if o.tlsConfig != nil {
		creds = credentials.NewTLS(o.tlsConfig)
		ts.base = "https://" + addr
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ts.conn = conn
	ts.rp = rpv1.NewRewardPoolClient(conn)
	if !o.noRecover {
		if err := srv.Recover(); err != nil {
			t.Fatalf("Recover: %v", err)
		}
	}
	return ts
}

// do sends one HTTP request and returns the status and body.
func (ts *testServer) do(method, path, token, body string) (int, []byte) {
	ts.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.hc.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// mustDo is do that requires want as the status.
func (ts *testServer) mustDo(method, path, token, body string, want int) []byte {
	ts.t.Helper()
	code, b := ts.do(method, path, token, body)
	if code != want {
		ts.t.Fatalf("%s %s %s: status %d, want %d; body %s", method, path, body, code, want, b)
	}
	return b
}

// poolJSON is the raw GET /v1/pools/{pool} answer, for before/after
// comparisons.
func (ts *testServer) poolJSON(pool, token string) string {
	ts.t.Helper()
	return string(ts.mustDo("GET", "/v1/pools/"+pool, token, "", http.StatusOK))
}

type httpItem struct {
	ID       string          `json:"id"`
	Quantity int64           `json:"quantity"`
	Weight   json.RawMessage `json:"weight"`
}

type httpPool struct {
	Name          string     `json:"name"`
	LastRequestID uint64     `json:"last_request_id"`
	Seq           uint64     `json:"seq"`
	Epoch         uint64     `json:"epoch"`
	StateDigest   string     `json:"state_digest"`
	Items         []httpItem `json:"items"`
}

func (p httpPool) item(id string) (httpItem, bool) {
	for _, it := range p.Items {
		if it.ID == id {
			return it, true
		}
	}
	return httpItem{}, false
}

func (ts *testServer) getPool(pool, token string) httpPool {
	ts.t.Helper()
	var p httpPool
	decodeStrict(ts.t, []byte(ts.poolJSON(pool, token)), &p)
	return p
}

type httpDraw struct {
	RequestID uint64 `json:"request_id"`
	ItemID    string `json:"item_id"`
	Error     string `json:"error"`
}

func (ts *testServer) draw(pool, token, body string) []httpDraw {
	ts.t.Helper()
	var out struct {
		Draws []httpDraw `json:"draws"`
	}
	decodeStrict(ts.t, ts.mustDo("POST", "/v1/pools/"+pool+"/draw", token, body, http.StatusOK), &out)
	return out.Draws
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func decodeStrict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("trailing data in %s", b)
	}
}

// decodeError checks that b is exactly {"code": ..., "message": ...}.
func decodeError(t *testing.T, b []byte) apiError {
	t.Helper()
	var e apiError
	decodeStrict(t, b, &e)
	if e.Code == "" || e.Message == "" {
		t.Fatalf("error body %s: want a code and a message", b)
	}
	return e
}

func withToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (ts *testServer) grpcPool(ctx context.Context, pool string) *rpv1.Pool {
	ts.t.Helper()
	p, err := ts.rp.GetPool(ctx, &rpv1.GetPoolRequest{Pool: pool})
	if err != nil {
		ts.t.Fatalf("GetPool(%s): %v", pool, err)
	}
	return p
}

// ---------------------------------------------------------------------------
// Errors (issue point 4)

func TestHTTPDrawErrors(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ts.draw("prizes", "", `{"count": 2}`) // some state to keep

	longKey := strings.Repeat("k", 257)
	for _, tc := range []struct {
		name, pool, body string
		status           int
		code             string
		mention          string // the message names this (the field)
	}{
		{"unknown pool", "nope", `{}`, 404, "NOT_FOUND", `"nope"`},
		{"malformed JSON", "prizes", `{"count":`, 400, "INVALID_ARGUMENT", "body"},
		{"malformed JSON object key", "prizes", `{count: 1}`, 400, "INVALID_ARGUMENT", "body"},
		{"not an object", "prizes", `[1, 2]`, 400, "INVALID_ARGUMENT", "body"},
		{"trailing data", "prizes", `{"count": 1} {}`, 400, "INVALID_ARGUMENT", "body"},
		{"count is a string of letters", "prizes", `{"count": "x"}`, 400, "INVALID_ARGUMENT", "count"},
		{"count is a boolean", "prizes", `{"count": true}`, 400, "INVALID_ARGUMENT", "count"},
		{"count is a fraction", "prizes", `{"count": 1.5}`, 400, "INVALID_ARGUMENT", "count"},
		{"count is null", "prizes", `{"count": null}`, 400, "INVALID_ARGUMENT", "count"},
		{"count is an object", "prizes", `{"count": {"n": 1}}`, 400, "INVALID_ARGUMENT", "count"},
		{"idempotency_key is a number", "prizes", `{"idempotency_key": 5}`, 400, "INVALID_ARGUMENT", "idempotency_key"},
		{"idempotency_key too long", "prizes", `{"idempotency_key": "` + longKey + `"}`, 400, "INVALID_ARGUMENT", "idempotency_key"},
		{"unknown field", "prizes", `{"cuont": 1}`, 400, "INVALID_ARGUMENT", "cuont"},
		{"duplicate field", "prizes", `{"count": 1, "count": 2}`, 400, "INVALID_ARGUMENT", "count"},
		// "count": 0 is one draw, as over gRPC: TestCountZeroMeansOne.
		{"count negative", "prizes", `{"count": -3}`, 400, "INVALID_ARGUMENT", "count"},
		{"count above max", "prizes", `{"count": 6}`, 400, "INVALID_ARGUMENT", "count"},
		{"count above max as string", "prizes", `{"count": "6"}`, 400, "INVALID_ARGUMENT", "count"},
		{"count overflows int64", "prizes", `{"count": 99999999999999999999}`, 400, "INVALID_ARGUMENT", "count"},
		{"body over the limit", "prizes", `{"idempotency_key": "` + strings.Repeat("a", testMaxBodyBytes) + `"}`, 413, "RESOURCE_EXHAUSTED", "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.poolJSON("prizes", "")
			code, body := ts.do("POST", "/v1/pools/"+tc.pool+"/draw", "", tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d; body %s", code, tc.status, body)
			}
			e := decodeError(t, body)
			if e.Code != tc.code {
				t.Errorf("code %q, want %q (message %q)", e.Code, tc.code, e.Message)
			}
			if !strings.Contains(e.Message, tc.mention) {
				t.Errorf("message %q does not mention %q", e.Message, tc.mention)
			}
			if after := ts.poolJSON("prizes", ""); after != before {
				t.Errorf("state changed by a failed request:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	// The boundaries that are allowed: no body, an empty object, count as
	// a string, the configured maximum.
	for _, body := range []string{"", "{}", `{"count": "2"}`, `{"count": 5, "idempotency_key": "edge"}`} {
		want := 1
		switch {
		case strings.Contains(body, `"2"`):
			want = 2
		case strings.Contains(body, "5"):
			want = 5
		}
		if got := ts.draw("prizes", "", body); len(got) != want {
			t.Errorf("body %q: %d draws, want %d", body, len(got), want)
		}
	}
}

func TestHTTPOtherErrors(t *testing.T) {
	ts := startServer(t, serverOpts{})
	before := ts.poolJSON("prizes", "")
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, mention            string
	}{
		{"get unknown pool", "GET", "/v1/pools/nope", "", 404, "NOT_FOUND", `"nope"`},
		{"no route", "GET", "/v2/whatever", "", 404, "NOT_FOUND", "/v2/whatever"},
		{"put unknown pool", "PUT", "/v1/pools/nope/items/gold", `{"quantity": 1}`, 404, "NOT_FOUND", `"nope"`},
		{"delete unknown pool", "DELETE", "/v1/pools/nope/items/gold", "", 404, "NOT_FOUND", `"nope"`},
		{"put malformed", "PUT", "/v1/pools/prizes/items/gold", `{"quantity":`, 400, "INVALID_ARGUMENT", "body"},
		{"put quantity wrong type", "PUT", "/v1/pools/prizes/items/gold", `{"quantity": "lots"}`, 400, "INVALID_ARGUMENT", "quantity"},
		{"put weight wrong type", "PUT", "/v1/pools/prizes/items/gold", `{"weight": true}`, 400, "INVALID_ARGUMENT", "weight"},
		{"put weight zero", "PUT", "/v1/pools/prizes/items/gold", `{"weight": 0}`, 400, "INVALID_ARGUMENT", "weight"},
		{"put weight too precise", "PUT", "/v1/pools/prizes/items/gold", `{"weight": 0.0000001}`, 400, "INVALID_ARGUMENT", "weight"},
		{"put unknown field", "PUT", "/v1/pools/prizes/items/gold", `{"qty": 1}`, 400, "INVALID_ARGUMENT", "qty"},
		{"put new item without weight", "PUT", "/v1/pools/prizes/items/ruby", `{"quantity": 1}`, 400, "INVALID_ARGUMENT", "weight"},
		{"put new item without quantity", "PUT", "/v1/pools/prizes/items/ruby", `{"weight": 1}`, 400, "INVALID_ARGUMENT", "quantity"},
		{"put body over the limit", "PUT", "/v1/pools/prizes/items/gold", `{"quantity": 1` + strings.Repeat(" ", testMaxBodyBytes) + `}`, 413, "RESOURCE_EXHAUSTED", "larger than"},
		{"delete unknown item", "DELETE", "/v1/pools/prizes/items/ruby", "", 404, "NOT_FOUND", "ruby"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := ts.do(tc.method, tc.path, "", tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d; body %s", code, tc.status, body)
			}
			e := decodeError(t, body)
			if e.Code != tc.code || !strings.Contains(e.Message, tc.mention) {
				t.Errorf("got %+v, want code %s and a message mentioning %q", e, tc.code, tc.mention)
			}
			if after := ts.poolJSON("prizes", ""); after != before {
				t.Errorf("state changed by a failed request:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestGRPCErrors(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)
	if _, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: 2}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		call    func() error
		code    codes.Code
		mention string
	}{
		{"draw unknown pool", func() error {
			_, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "nope"})
			return err
		}, codes.NotFound, `"nope"`},
		{"draw count above max", func() error {
			_, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: testMaxDrawCount + 1})
			return err
		}, codes.InvalidArgument, "count"},
		{"draw count huge", func() error {
			_, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: 1<<32 - 1})
			return err
		}, codes.InvalidArgument, "count"},
		{"draw idempotency_key too long", func() error {
			_, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", IdempotencyKey: strings.Repeat("k", 257)})
			return err
		}, codes.InvalidArgument, "idempotency_key"},
		{"draw message over the limit", func() error {
			_, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", IdempotencyKey: strings.Repeat("k", testMaxBodyBytes)})
			return err
		}, codes.ResourceExhausted, ""},
		{"noop unknown pool", func() error {
			_, err := ts.rp.Noop(ctx, &rpv1.DrawRequest{Pool: "nope"})
			return err
		}, codes.NotFound, `"nope"`},
		{"noop count above max", func() error {
			_, err := ts.rp.Noop(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: testMaxDrawCount + 1})
			return err
		}, codes.InvalidArgument, "count"},
		{"get pool unknown", func() error {
			_, err := ts.rp.GetPool(ctx, &rpv1.GetPoolRequest{Pool: "nope"})
			return err
		}, codes.NotFound, `"nope"`},
		{"get pool empty name", func() error {
			_, err := ts.rp.GetPool(ctx, &rpv1.GetPoolRequest{})
			return err
		}, codes.InvalidArgument, "pool"},
		{"put item unknown pool", func() error {
			_, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "nope", ItemId: "gold", Quantity: proto.Int64(1)})
			return err
		}, codes.NotFound, `"nope"`},
		{"put item weight zero", func() error {
			_, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "prizes", ItemId: "gold", Weight: proto.Float64(0)})
			return err
		}, codes.InvalidArgument, "weight"},
		{"put item weight negative", func() error {
			_, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "prizes", ItemId: "gold", Weight: proto.Float64(-1)})
			return err
		}, codes.InvalidArgument, "weight"},
		{"put item weight too precise", func() error {
			_, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "prizes", ItemId: "gold", Weight: proto.Float64(1e-7)})
			return err
		}, codes.InvalidArgument, "weight"},
		{"put item empty id", func() error {
			_, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "prizes", Quantity: proto.Int64(1), Weight: proto.Float64(1)})
			return err
		}, codes.InvalidArgument, "item_id"},
		{"put new item without weight", func() error {
			_, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "prizes", ItemId: "ruby", Quantity: proto.Int64(1)})
			return err
		}, codes.InvalidArgument, "weight"},
		{"delete unknown item", func() error {
			_, err := ts.rp.DeleteItem(ctx, &rpv1.DeleteItemRequest{Pool: "prizes", ItemId: "ruby"})
			return err
		}, codes.NotFound, "ruby"},
		{"delete empty id", func() error {
			_, err := ts.rp.DeleteItem(ctx, &rpv1.DeleteItemRequest{Pool: "prizes"})
			return err
		}, codes.InvalidArgument, "item_id"},
		{"stream unknown pool", func() error {
			st, err := ts.rp.DrawStream(ctx)
			if err != nil {
				return err
			}
			if err := st.Send(&rpv1.DrawRequest{Pool: "nope"}); err != nil {
				return err
			}
			st.CloseSend()
			_, err = st.Recv()
			return err
		}, codes.NotFound, `"nope"`},
		{"stream count above max", func() error {
			st, err := ts.rp.DrawStream(ctx)
			if err != nil {
				return err
			}
			if err := st.Send(&rpv1.DrawRequest{Pool: "prizes", Count: testMaxDrawCount + 1}); err != nil {
				return err
			}
			st.CloseSend()
			_, err = st.Recv()
			return err
		}, codes.InvalidArgument, "count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.grpcPool(ctx, "prizes")
			err := tc.call()
			st, _ := status.FromError(err)
			if st.Code() != tc.code {
				t.Fatalf("err = %v, want code %v", err, tc.code)
			}
			if !strings.Contains(st.Message(), tc.mention) {
				t.Errorf("message %q does not mention %q", st.Message(), tc.mention)
			}
			if after := ts.grpcPool(ctx, "prizes"); !proto.Equal(before, after) {
				t.Errorf("state changed by a failed call:\nbefore %v\nafter  %v", before, after)
			}
		})
	}

	// A proto3 count of 0 is "absent" and means one draw (a uint32 cannot
	// be negative, so count <= 0 has no other gRPC spelling).
	resp, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes"})
	if err != nil || len(resp.Draws) != 1 {
		t.Fatalf("Draw with count 0: %v, %v; want one draw", resp, err)
	}
}

// TestFailingDisk makes fsync fail: the first draw's outcome is unknown
// (503 OUTCOME_UNKNOWN: its batch may be in the log), later draws and admin
// changes answer 503 / UNAVAILABLE, and the served state stays as it was.
func TestFailingDisk(t *testing.T) {
	var failSync atomic.Bool
	boom := errors.New("injected fsync failure")
	ts := startServer(t, serverOpts{
		closeErrOK: true, // the poisoned engine reports the failure at Close
		engineHook: func(pool string, o *rewardpool.Options) {
			if pool != "prizes" {
				return
			}
			failpoint.OnSync(o, func() error {
				if failSync.Load() {
					return boom
				}
				return nil
			})
		},
	})
	ctx := testCtx(t)
	ts.draw("prizes", "", `{"count": 2}`)
	before := ts.poolJSON("prizes", "")
	failSync.Store(true)

	for _, tc := range []struct{ name, method, path, body, code string }{
		{"draw", "POST", "/v1/pools/prizes/draw", `{"count": 3}`, "OUTCOME_UNKNOWN"},
		{"draw again (poisoned)", "POST", "/v1/pools/prizes/draw", ``, "UNAVAILABLE"},
		{"put item", "PUT", "/v1/pools/prizes/items/gold", `{"quantity": 1}`, "UNAVAILABLE"},
		{"delete item", "DELETE", "/v1/pools/prizes/items/gold", ``, "UNAVAILABLE"},
	} {
		t.Run("http "+tc.name, func(t *testing.T) {
			code, body := ts.do(tc.method, tc.path, "", tc.body)
			if code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503; body %s", code, body)
			}
			if e := decodeError(t, body); e.Code != tc.code {
				t.Errorf("code %q, want %s", e.Code, tc.code)
			}
			if after := ts.poolJSON("prizes", ""); after != before {
				t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	t.Run("grpc draw", func(t *testing.T) {
		_, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: 2})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want UNAVAILABLE", err)
		}
		if after := ts.poolJSON("prizes", ""); after != before {
			t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
		}
	})
	t.Run("grpc put item", func(t *testing.T) {
		_, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "prizes", ItemId: "gold", Quantity: proto.Int64(3)})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want UNAVAILABLE", err)
		}
	})
	// The other pool has its own log and is unaffected.
	if d := ts.draw("other", "", ""); len(d) != 1 || d[0].ItemID != "x" {
		t.Errorf("draw from the healthy pool: %+v", d)
	}
}

// ---------------------------------------------------------------------------
// Auth (issue point 5)

func TestAuthHTTP(t *testing.T) {
	const admin, client = "admin-secret", "client-secret"
	ts := startServer(t, serverOpts{configure: func(c *config.Config) {
		c.AdminToken, c.ClientToken = admin, client
	}})
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"draw without token", "POST", "/v1/pools/prizes/draw", "", "", 401},
		{"draw with wrong token", "POST", "/v1/pools/prizes/draw", "nope", "", 401},
		{"draw with client token", "POST", "/v1/pools/prizes/draw", client, "", 200},
		{"draw with admin token", "POST", "/v1/pools/prizes/draw", admin, "", 200},
		{"noop without token", "POST", "/v1/noop/prizes", "", "", 401},
		{"noop with client token", "POST", "/v1/noop/prizes", client, "", 200},
		{"list without token", "GET", "/v1/pools", "", "", 401},
		{"list with client token", "GET", "/v1/pools", client, "", 200},
		{"list with admin token", "GET", "/v1/pools", admin, "", 200},
		{"get without token", "GET", "/v1/pools/prizes", "", "", 401},
		{"get with client token", "GET", "/v1/pools/prizes", client, "", 200},
		{"get with admin token", "GET", "/v1/pools/prizes", admin, "", 200},
		{"put without token", "PUT", "/v1/pools/prizes/items/ruby", "", `{"quantity": 3, "weight": 1}`, 401},
		{"put with client token", "PUT", "/v1/pools/prizes/items/ruby", client, `{"quantity": 3, "weight": 1}`, 401},
		{"put with admin token", "PUT", "/v1/pools/prizes/items/ruby", admin, `{"quantity": 3, "weight": 1}`, 200},
		{"delete without token", "DELETE", "/v1/pools/prizes/items/ruby", "", "", 401},
		{"delete with client token", "DELETE", "/v1/pools/prizes/items/ruby", client, "", 401},
		{"delete with admin token", "DELETE", "/v1/pools/prizes/items/ruby", admin, "", 200},
		{"metrics without token", "GET", "/metrics", "", "", 200},
		{"healthz without token", "GET", "/healthz", "", "", 200},
		{"readyz without token", "GET", "/readyz", "", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.poolJSON("prizes", admin)
			code, body := ts.do(tc.method, tc.path, tc.token, tc.body)
			if code != tc.want {
				t.Fatalf("status %d, want %d; body %s", code, tc.want, body)
			}
			if code == 401 {
				if e := decodeError(t, body); e.Code != "UNAUTHENTICATED" {
					t.Errorf("code %q, want UNAUTHENTICATED", e.Code)
				}
				if after := ts.poolJSON("prizes", admin); after != before {
					t.Errorf("a refused call changed state:\nbefore %s\nafter  %s", before, after)
				}
			}
		})
	}

	// Header spellings: the scheme is case-insensitive; anything but
	// Bearer is refused; the WWW-Authenticate challenge is sent.
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"bearer " + client, 200},
		{"BEARER " + admin, 200},
		{"Bearer  " + client + " ", 200},
		{"Basic " + client, 401},
		{client, 401},
		{"Bearer", 401},
		{"Bearer " + client + "x", 401},
		{"Bearer " + client[:len(client)-1], 401},
	} {
		req, _ := http.NewRequest("GET", ts.base+"/v1/pools/prizes", nil)
		req.Header.Set("Authorization", tc.header)
		resp, err := ts.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: status %d, want %d", tc.header, resp.StatusCode, tc.want)
		}
		if resp.StatusCode == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("Authorization %q: WWW-Authenticate %q", tc.header, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestAuthAdminTokenOnly(t *testing.T) {
	// Without a client_token, draws and reads are open and admin calls
	// still need the admin token.
	ts := startServer(t, serverOpts{configure: func(c *config.Config) { c.AdminToken = "adm" }})
	ts.mustDo("POST", "/v1/pools/prizes/draw", "", "", 200)
	ts.mustDo("GET", "/v1/pools", "", "", 200)
	ts.mustDo("PUT", "/v1/pools/prizes/items/gold", "", `{"quantity": 1}`, 401)
	ts.mustDo("PUT", "/v1/pools/prizes/items/gold", "wrong", `{"quantity": 1}`, 401)
	ts.mustDo("PUT", "/v1/pools/prizes/items/gold", "adm", `{"quantity": 1}`, 200)

	// With no tokens at all everything is open.
	open := startServer(t, serverOpts{})
	open.mustDo("PUT", "/v1/pools/prizes/items/gold", "", `{"quantity": 1}`, 200)
	open.mustDo("DELETE", "/v1/pools/prizes/items/gold", "", "", 200)
}

func TestAuthGRPC(t *testing.T) {
	const admin, client = "admin-secret", "client-secret"
	ts := startServer(t, serverOpts{configure: func(c *config.Config) {
		c.AdminToken, c.ClientToken = admin, client
	}})
	ctx := testCtx(t)
	stream := func(ctx context.Context) error {
		st, err := ts.rp.DrawStream(ctx)
		if err != nil {
			return err
		}
		if err := st.Send(&rpv1.DrawRequest{Pool: "prizes"}); err != nil && err != io.EOF {
			return err
		}
		st.CloseSend()
		if _, err := st.Recv(); err != nil {
			return err
		}
		_, err = st.Recv()
		if err == io.EOF {
			err = nil
		}
		return err
	}
	calls := []struct {
		name  string
		admin bool
		call  func(context.Context) error
	}{
		{"Draw", false, func(ctx context.Context) error {
			_, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes"})
			return err
		}},
		{"Noop", false, func(ctx context.Context) error {
			_, err := ts.rp.Noop(ctx, &rpv1.DrawRequest{Pool: "prizes"})
			return err
		}},
		{"DrawStream", false, stream},
		{"ListPools", false, func(ctx context.Context) error {
			_, err := ts.rp.ListPools(ctx, &rpv1.ListPoolsRequest{})
			return err
		}},
		{"GetPool", false, func(ctx context.Context) error {
			_, err := ts.rp.GetPool(ctx, &rpv1.GetPoolRequest{Pool: "prizes"})
			return err
		}},
		{"PutItem", true, func(ctx context.Context) error {
			_, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "prizes", ItemId: "ruby", Quantity: proto.Int64(2), Weight: proto.Float64(1)})
			return err
		}},
		{"DeleteItem", true, func(ctx context.Context) error {
			_, err := ts.rp.DeleteItem(ctx, &rpv1.DeleteItemRequest{Pool: "prizes", ItemId: "ruby"})
			return err
		}},
	}
	for _, c := range calls {
		for _, tok := range []struct {
			name, token string
			ok          bool
		}{
			{"no token", "", false},
			{"wrong token", "wrong", false},
			{"client token", client, !c.admin},
			{"admin token", admin, true},
		} {
			t.Run(c.name+" "+tok.name, func(t *testing.T) {
				before := ts.poolJSON("prizes", admin)
				err := c.call(withToken(ctx, tok.token))
				if tok.ok && err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				if !tok.ok {
					if status.Code(err) != codes.Unauthenticated {
						t.Fatalf("err = %v, want UNAUTHENTICATED", err)
					}
					if after := ts.poolJSON("prizes", admin); after != before {
						t.Errorf("a refused call changed state:\nbefore %s\nafter  %s", before, after)
					}
				}
			})
		}
	}
	// The health service is public.
	h, err := healthpb.NewHealthClient(ts.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check without token: %v, %v", h, err)
	}
}

// ---------------------------------------------------------------------------
// Admin, streams, pools

func TestAdminHTTP(t *testing.T) {
	ts := startServer(t, serverOpts{})
	// Create: the weight's decimal text is kept exactly.
	ts.mustDo("PUT", "/v1/pools/prizes/items/ruby", "", `{"quantity": 7, "weight": 0.1}`, 200)
	raw := ts.poolJSON("prizes", "")
	if !strings.Contains(raw, `{"id":"ruby","quantity":7,"weight":0.1}`) {
		t.Fatalf("after PUT ruby: %s", raw)
	}
	// Partial updates keep the other field.
	ts.mustDo("PUT", "/v1/pools/prizes/items/ruby", "", `{"quantity": "3"}`, 200)
	if it, _ := ts.getPool("prizes", "").item("ruby"); it.Quantity != 3 || string(it.Weight) != "0.1" {
		t.Fatalf("after quantity-only PUT: %+v", it)
	}
	ts.mustDo("PUT", "/v1/pools/prizes/items/ruby", "", `{"weight": "2.5"}`, 200)
	if it, _ := ts.getPool("prizes", "").item("ruby"); it.Quantity != 3 || string(it.Weight) != "2.5" {
		t.Fatalf("after weight-only PUT: %+v", it)
	}
	// Unlimited.
	ts.mustDo("PUT", "/v1/pools/prizes/items/gold", "", `{"quantity": -1}`, 200)
	if it, _ := ts.getPool("prizes", "").item("gold"); it.Quantity != -1 || string(it.Weight) != "20" {
		t.Fatalf("after gold unlimited: %+v", it)
	}
	// The PUT answer is the pool.
	var p httpPool
	decodeStrict(t, ts.mustDo("PUT", "/v1/pools/prizes/items/ruby", "", `{"quantity": 4}`, 200), &p)
	if it, ok := p.item("ruby"); !ok || it.Quantity != 4 {
		t.Fatalf("PUT answer: %+v", p)
	}
	// DELETE removes; a second DELETE is 404.
	decodeStrict(t, ts.mustDo("DELETE", "/v1/pools/prizes/items/ruby", "", "", 200), &p)
	if _, ok := p.item("ruby"); ok {
		t.Fatalf("DELETE answer still has ruby: %+v", p)
	}
	if _, ok := ts.getPool("prizes", "").item("ruby"); ok {
		t.Fatal("ruby still there after DELETE")
	}
	_, body := ts.do("DELETE", "/v1/pools/prizes/items/ruby", "", "")
	if e := decodeError(t, body); e.Code != "NOT_FOUND" {
		t.Fatalf("second DELETE: %+v", e)
	}
	// Draws only hit live items.
	for _, d := range ts.draw("prizes", "", `{"count": 5}`) {
		if d.ItemID == "ruby" {
			t.Fatalf("drew removed item: %+v", d)
		}
	}
}

func TestAdminGRPC(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)
	p, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "prizes", ItemId: "ruby", Quantity: proto.Int64(7), Weight: proto.Float64(0.1)})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, it := range p.Items {
		if it.Id == "ruby" {
			found = it.Quantity == 7 && it.Weight == 0.1
		}
	}
	if !found {
		t.Fatalf("PutItem answer: %v", p)
	}
	if raw := ts.poolJSON("prizes", ""); !strings.Contains(raw, `{"id":"ruby","quantity":7,"weight":0.1}`) {
		t.Fatalf("HTTP view after gRPC PutItem: %s", raw)
	}
	if _, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "prizes", ItemId: "ruby", Quantity: proto.Int64(2)}); err != nil {
		t.Fatal(err)
	}
	if it, _ := ts.getPool("prizes", "").item("ruby"); it.Quantity != 2 || string(it.Weight) != "0.1" {
		t.Fatalf("after quantity-only PutItem: %+v", it)
	}
	if _, err := ts.rp.PutItem(ctx, &rpv1.PutItemRequest{Pool: "prizes", ItemId: "ruby", Weight: proto.Float64(0.333333)}); err != nil {
		t.Fatal(err)
	}
	if it, _ := ts.getPool("prizes", "").item("ruby"); it.Quantity != 2 || string(it.Weight) != "0.333333" {
		t.Fatalf("after weight-only PutItem: %+v", it)
	}
	if _, err := ts.rp.DeleteItem(ctx, &rpv1.DeleteItemRequest{Pool: "prizes", ItemId: "ruby"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.rp.DeleteItem(ctx, &rpv1.DeleteItemRequest{Pool: "prizes", ItemId: "ruby"}); status.Code(err) != codes.NotFound {
		t.Fatalf("second DeleteItem: %v, want NOT_FOUND", err)
	}
}

func TestDrawStream(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)
	st, err := ts.rp.DrawStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	// Send everything before reading anything: pipelining is the point.
	for i := range n {
		if err := st.Send(&rpv1.DrawRequest{Pool: "prizes", Count: uint32(i%3 + 1)}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	// Request ids are unique and, together, exactly the ids handed out.
	// They are not necessarily increasing in stream order: the server
	// starts pipelined requests concurrently, and the engine has no API to
	// submit them in order without waiting for each answer.
	seen := map[uint64]bool{}
	var maxID uint64
	total := 0
	for i := range n {
		resp, err := st.Recv()
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		// Answers come back in request order: request i asked for i%3+1.
		if len(resp.Draws) != i%3+1 {
			t.Fatalf("response %d has %d draws, want %d (out of order?)", i, len(resp.Draws), i%3+1)
		}
		for _, d := range resp.Draws {
			if d.Error != "" || d.ItemId == "" || seen[d.RequestId] {
				t.Fatalf("response %d: bad draw %v", i, d)
			}
			seen[d.RequestId] = true
			maxID = max(maxID, d.RequestId)
			total++
		}
		for j := 1; j < len(resp.Draws); j++ {
			if resp.Draws[j].RequestId <= resp.Draws[j-1].RequestId {
				t.Errorf("response %d: ids not increasing within the response: %v", i, resp.Draws)
			}
		}
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("after %d responses: %v, want io.EOF", n, err)
	}
	if maxID != uint64(total) {
		t.Errorf("%d draws with highest id %d: ids are not 1..%d", total, maxID, total)
	}
	if got := ts.getPool("prizes", "").LastRequestID; got != maxID {
		t.Errorf("last_request_id %d, want %d", got, maxID)
	}
}

// TestDrawStreamStopsAtError: a request-level error ends the stream after
// the answers before it, and the requests after it are not performed (the
// contract in rewardpool.proto).
func TestDrawStreamStopsAtError(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)
	st, err := ts.rp.DrawStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reqs := []*rpv1.DrawRequest{{Pool: "prizes"}, {Pool: "nope"}}
	for range 20 {
		reqs = append(reqs, &rpv1.DrawRequest{Pool: "prizes", Count: 2})
	}
	for _, r := range reqs {
		if err := st.Send(r); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	st.CloseSend()
	first, err := st.Recv()
	if err != nil {
		t.Fatalf("first response: %v", err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.NotFound {
		t.Fatalf("second response: %v, want NOT_FOUND", err)
	}
	if got := ts.getPool("prizes", "").LastRequestID; got != first.Draws[0].RequestId {
		t.Fatalf("last_request_id %d after the stream failed at request 2; want %d (requests after the failed one must not be performed)",
			got, first.Draws[0].RequestId)
	}
}

func TestNoop(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)
	before := ts.poolJSON("prizes", "")
	st, err := ts.rp.NoopStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := st.Send(&rpv1.DrawRequest{Pool: "prizes", Count: uint32(i%2 + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseSend()
	for i := range 10 {
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Draws) != i%2+1 || resp.Draws[0].ItemId != "noop" || resp.Draws[0].RequestId != 0 {
			t.Fatalf("noop response %d: %v", i, resp)
		}
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("end of noop stream: %v", err)
	}
	resp, err := ts.rp.Noop(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: 3})
	if err != nil || len(resp.Draws) != 3 {
		t.Fatalf("Noop: %v, %v", resp, err)
	}
	var out struct {
		Draws []httpDraw `json:"draws"`
	}
	decodeStrict(t, ts.mustDo("POST", "/v1/noop/prizes", "", `{"count": 2}`, 200), &out)
	if len(out.Draws) != 2 || out.Draws[0].ItemID != "noop" {
		t.Fatalf("HTTP noop: %+v", out)
	}
	// Noop validates like a draw over the same transport.
	for body, want := range map[string]int{`{"count": 0}`: 200, `{"count": -1}`: 400, `{"count": 6}`: 400, `{"count": "x"}`: 400, `{}`: 200} {
		ts.mustDo("POST", "/v1/noop/prizes", "", body, want)
	}
	ts.mustDo("POST", "/v1/noop/nope", "", "", 404)
	if after := ts.poolJSON("prizes", ""); after != before {
		t.Errorf("noop changed state:\nbefore %s\nafter  %s", before, after)
	}
}

// TestShutdownFinishesInFlight: a draw in flight when Shutdown starts (held
// inside its fsync) is answered and durable; new connections are refused.
func TestShutdownFinishesInFlight(t *testing.T) {
	dir := t.TempDir()
	var hold atomic.Bool
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	ts := startServer(t, serverOpts{dataDir: dir, engineHook: func(pool string, o *rewardpool.Options) {
		failpoint.OnSync(o, func() error {
			if hold.Load() {
				once.Do(func() {
					close(entered)
					<-release
				})
			}
			return nil
		})
	}})
	addr := ts.srv.Addr().String()
	hold.Store(true)
	type result struct {
		code int
		body []byte
		err  error
	}
	drawDone := make(chan result, 1)
	go func() {
		resp, err := ts.hc.Post(ts.base+"/v1/pools/prizes/draw", "application/json", strings.NewReader(`{"count": 2}`))
		if err != nil {
			drawDone <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		drawDone <- result{resp.StatusCode, b, err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("draw never reached fsync")
	}
	shutDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutDone <- ts.srv.Shutdown(ctx)
	}()
	// Wait (bounded) until the listener is closed: Shutdown has begun.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still open 10s after Shutdown started")
		}
		time.Sleep(5 * time.Millisecond) // polling for the close, not synchronising
	}
	select {
	case err := <-shutDone:
		t.Fatalf("Shutdown returned (%v) while a draw was in flight", err)
	default:
	}
	close(release)
	r := <-drawDone
	if r.err != nil || r.code != 200 {
		t.Fatalf("in-flight draw: %d %s %v", r.code, r.body, r.err)
	}
	select {
	case err := <-shutDone:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	// The answered draw is durable.
	ts2 := startServer(t, serverOpts{dataDir: dir})
	if got := ts2.getPool("prizes", "").LastRequestID; got != 2 {
		t.Fatalf("after restart last_request_id %d, want 2", got)
	}
}

func TestDrawsHTTPAndGRPCShareIDs(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)
	var last uint64
	for i := range 6 {
		var ids []uint64
		if i%2 == 0 {
			for _, d := range ts.draw("prizes", "", `{"count": 2, "idempotency_key": "k`+strconv.Itoa(i)+`"}`) {
				ids = append(ids, d.RequestID)
			}
		} else {
			resp, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: 2})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range resp.Draws {
				ids = append(ids, d.RequestId)
			}
		}
		for _, id := range ids {
			if id <= last {
				t.Fatalf("round %d: id %d not above %d", i, id, last)
			}
			last = id
		}
	}
	// An idempotent retry answers the first result again, over either
	// transport, and draws nothing new.
	first := ts.draw("prizes", "", `{"count": 2, "idempotency_key": "k0"}`)
	if first[0].RequestID >= last {
		t.Fatalf("retry of k0 got new ids %+v", first)
	}
	if got := ts.getPool("prizes", "").LastRequestID; got != last {
		t.Fatalf("last_request_id %d, want %d", got, last)
	}
}

func TestListPools(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)
	var list struct {
		Pools []httpPool `json:"pools"`
	}
	decodeStrict(t, ts.mustDo("GET", "/v1/pools", "", "", 200), &list)
	if len(list.Pools) != 2 || list.Pools[0].Name != "other" || list.Pools[1].Name != "prizes" {
		t.Fatalf("GET /v1/pools: %+v", list)
	}
	if len(list.Pools[1].Items) != 3 || list.Pools[1].Items[0].ID != "gold" || string(list.Pools[1].Items[0].Weight) != "20" {
		t.Fatalf("prizes: %+v", list.Pools[1])
	}
	resp, err := ts.rp.ListPools(ctx, &rpv1.ListPoolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Pools) != 2 || resp.Pools[0].Name != "other" || resp.Pools[1].Name != "prizes" {
		t.Fatalf("ListPools: %v", resp)
	}
	if it := resp.Pools[0].Items; len(it) != 1 || it[0].Id != "x" || it[0].Quantity != 5 || it[0].Weight != 1 {
		t.Fatalf("ListPools other: %v", resp.Pools[0])
	}
}

func TestReadyOnlyAfterRecover(t *testing.T) {
	ts := startServer(t, serverOpts{noRecover: true})
	ctx := testCtx(t)
	ts.mustDo("GET", "/healthz", "", "", 200)
	ts.mustDo("GET", "/readyz", "", "", 503)
	_, body := ts.do("POST", "/v1/pools/prizes/draw", "", "")
	if e := decodeError(t, body); e.Code != "UNAVAILABLE" {
		t.Fatalf("draw before recovery: %s", body)
	}
	ts.mustDo("GET", "/v1/pools", "", "", 503)
	if _, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("gRPC draw before recovery: %v", err)
	}
	hc := healthpb.NewHealthClient(ts.conn)
	if h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health before recovery: %v, %v", h, err)
	}
	ts.mustDo("GET", "/metrics", "", "", 200) // scrapeable while recovering

	if err := ts.srv.Recover(); err != nil {
		t.Fatal(err)
	}
	ts.mustDo("GET", "/readyz", "", "", 200)
	ts.draw("prizes", "", "")
	for _, svc := range []string{"", rpv1.RewardPool_ServiceDesc.ServiceName} {
		if h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc}); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q after recovery: %v, %v", svc, h, err)
		}
	}
}

func TestShutdownStopsServing(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ts.draw("prizes", "", "")
	addr := ts.srv.Addr().String()
	ts.hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.Shutdown(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Fatal("still accepting connections after Shutdown")
	}
	if !strings.Contains(ts.logs.String(), "rewardpool: stopped") {
		t.Errorf("no stop line in the log:\n%s", ts.logs.String())
	}
}

// ---------------------------------------------------------------------------
// Metrics (issue point 6)

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

// scrape returns the samples of /metrics as name{labels} -> value.
func (ts *testServer) scrape() map[string]float64 {
	ts.t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(string(ts.mustDo("GET", "/metrics", "", "", 200)), "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			ts.t.Fatalf("bad sample %q", line)
		}
		out[m[1]+m[2]] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	ts := startServer(t, serverOpts{configure: func(c *config.Config) { c.SnapshotEvery = 4 }})
	ctx := testCtx(t)
	for range 5 {
		ts.draw("prizes", "", `{"count": 3}`)
	}
	if _, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: 2}); err != nil {
		t.Fatal(err)
	}
	// Snapshots are written in the background: wait (bounded) for one.
	var m map[string]float64
	deadline := time.Now().Add(15 * time.Second)
	for {
		m = ts.scrape()
		if m[`rewardpool_snapshot_duration_seconds_count{pool="prizes"}`] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot observed; metrics:\n%v", m)
		}
		time.Sleep(20 * time.Millisecond) // polling a background writer, not synchronising
	}

	var drawsOK float64
	for k, v := range m {
		if strings.HasPrefix(k, "rewardpool_draws_total{") && strings.Contains(k, `pool="prizes"`) && strings.Contains(k, `result="ok"`) {
			drawsOK += v
		}
	}
	if drawsOK != 17 {
		t.Errorf("rewardpool_draws_total ok for prizes = %v, want 17", drawsOK)
	}
	for _, want := range []string{
		`rewardpool_draw_duration_seconds_count{pool="prizes",transport="http"}`,
		`rewardpool_draw_duration_seconds_count{pool="prizes",transport="grpc"}`,
		`rewardpool_batch_draws_count{pool="prizes"}`,
		`rewardpool_wal_fsync_duration_seconds_count{pool="prizes"}`,
		`rewardpool_wal_bytes_total{pool="prizes"}`,
		`rewardpool_snapshot_duration_seconds_count{pool="prizes"}`,
		`rewardpool_build_info{goversion="` + runtime.Version() + `",version="test-version"}`,
	} {
		if m[want] <= 0 {
			t.Errorf("%s = %v, want > 0", want, m[want])
		}
	}
	if m[`rewardpool_draw_duration_seconds_count{pool="prizes",transport="http"}`] != 5 {
		t.Errorf("http draw latency count = %v, want 5", m[`rewardpool_draw_duration_seconds_count{pool="prizes",transport="http"}`])
	}
	if m[`rewardpool_batch_draws_sum{pool="prizes"}`] != 17 {
		t.Errorf("rewardpool_batch_draws_sum = %v, want 17", m[`rewardpool_batch_draws_sum{pool="prizes"}`])
	}
	// Remaining quantity per item matches the state.
	st := ts.getPool("prizes", "")
	if m[`rewardpool_last_request_id{pool="prizes"}`] != float64(st.LastRequestID) {
		t.Errorf("rewardpool_last_request_id = %v, state says %d", m[`rewardpool_last_request_id{pool="prizes"}`], st.LastRequestID)
	}
	for _, it := range st.Items {
		key := `rewardpool_item_remaining{item="` + it.ID + `",pool="prizes"}`
		got, ok := m[key]
		if !ok || got != float64(it.Quantity) {
			t.Errorf("%s = %v (present %v), state says %d", key, got, ok, it.Quantity)
		}
	}
	if v, ok := m[`rewardpool_item_remaining{item="x",pool="other"}`]; !ok || v != 5 {
		t.Errorf("other/x remaining = %v (present %v), want 5", v, ok)
	}
}

// ---------------------------------------------------------------------------
// TLS

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its
// key as PEM files in dir, and returns their paths and a pool trusting it.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rewardpool test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

func TestTLS(t *testing.T) {
	certFile, keyFile, roots := writeSelfSigned(t, t.TempDir())
	ts := startServer(t, serverOpts{
		configure: func(c *config.Config) {
			c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile
			c.ClientToken = "tok"
		},
		tlsConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	})
	ctx := testCtx(t)
	if d := ts.draw("prizes", "tok", `{"count": 2}`); len(d) != 2 {
		t.Fatalf("HTTPS draw: %+v", d)
	}
	ts.mustDo("POST", "/v1/pools/prizes/draw", "", "", 401)
	resp, err := ts.rp.Draw(withToken(ctx, "tok"), &rpv1.DrawRequest{Pool: "prizes", Count: 3})
	if err != nil || len(resp.Draws) != 3 {
		t.Fatalf("gRPC over TLS: %v, %v", resp, err)
	}
	if _, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC over TLS without token: %v", err)
	}
	st, err := ts.rp.DrawStream(withToken(ctx, "tok"))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := st.Send(&rpv1.DrawRequest{Pool: "prizes"}); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseSend()
	for range 5 {
		if _, err := st.Recv(); err != nil {
			t.Fatalf("stream over TLS: %v", err)
		}
	}
	if got := ts.getPool("prizes", "tok").LastRequestID; got != 10 {
		t.Fatalf("last_request_id %d, want 10", got)
	}
	if h, err := healthpb.NewHealthClient(ts.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health over TLS: %v, %v", h, err)
	}

	// A plaintext client gets nowhere.
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer plain.CloseIdleConnections()
	if resp, err := plain.Get("http://" + ts.srv.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plaintext request served on a TLS port")
		}
	}
}

func TestTLSBadFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := newTestConfig(t, dir)
	cfg.TLS.CertFile, cfg.TLS.KeyFile = filepath.Join(dir, "missing.pem"), filepath.Join(dir, "missing-key.pem")
	srv := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	if err := srv.Listen(); err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("Listen with missing certificate files succeeded")
	}
}

// ---------------------------------------------------------------------------
// Config seeding

func TestConfigSeedsOnlyTheFirstTime(t *testing.T) {
	dir := t.TempDir()
	logs1 := &lockedBuffer{}
	var stateAfterFirst string
	func() {
		ts := startServer(t, serverOpts{dataDir: dir, logs: logs1})
		p := ts.getPool("prizes", "")
		if len(p.Items) != 3 || p.Items[0].ID != "gold" || p.Items[0].Quantity != 50 || p.LastRequestID != 0 {
			t.Fatalf("seeded pool: %+v", p)
		}
		ts.draw("prizes", "", `{"count": 4}`)
		ts.mustDo("PUT", "/v1/pools/prizes/items/silver", "", `{"weight": 0.5}`, 200)
		stateAfterFirst = ts.poolJSON("prizes", "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}()
	if strings.Contains(logs1.String(), "differ") {
		t.Errorf("first start warned about differences:\n%s", logs1.String())
	}

	// The second start names a different catalog: the stored state wins
	// and the difference is logged.
	logs2 := &lockedBuffer{}
	ts := startServer(t, serverOpts{dataDir: dir, logs: logs2, configure: func(c *config.Config) {
		c.Pools[0].Items = []config.Item{
			{ID: "gold", Quantity: 999, Weight: 25 * rpool.WeightUnit},
			{ID: "silver", Quantity: 100, Weight: 30 * rpool.WeightUnit},
			{ID: "bronze", Quantity: 10, Weight: 1 * rpool.WeightUnit},
		}
	}})
	// seq may move (the engine records nothing at open) but nothing else.
	if got := ts.poolJSON("prizes", ""); got != stateAfterFirst {
		t.Fatalf("state after restart with another catalog:\n got %s\nwant %s", got, stateAfterFirst)
	}
	logText := logs2.String()
	var warn string
	for _, line := range strings.Split(logText, "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "config and stored state differ") {
			warn = line
		}
	}
	if warn == "" {
		t.Fatalf("no warning about the differing config:\n%s", logText)
	}
	for _, want := range []string{"pool=prizes", "gold: weight differs", "bronze: in config, not in state", "mud: in state, not in config", "silver: weight differs"} {
		if !strings.Contains(warn, want) {
			t.Errorf("warning %q does not mention %q", warn, want)
		}
	}
	if strings.Contains(warn, "pool=other") {
		t.Errorf("warning about the unchanged pool: %s", warn)
	}
	// Recovery figures are logged.
	for _, want := range []string{"rewardpool: listening", "rewardpool: recovered", "last_request_id=4", "rewardpool: ready"} {
		if !strings.Contains(logText, want) {
			t.Errorf("start-up log lacks %q:\n%s", want, logText)
		}
	}
}

func TestRecoverFailsOnBadPoolDir(t *testing.T) {
	dir := t.TempDir()
	// A file where the pool's directory should be.
	if err := os.WriteFile(filepath.Join(dir, "prizes"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := newTestConfig(t, dir)
	srv := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	err := srv.Recover()
	if err == nil || !strings.Contains(err.Error(), `"prizes"`) {
		t.Fatalf("Recover = %v, want an error naming the pool", err)
	}
}

func TestGRPCServicesRegistered(t *testing.T) {
	ts := startServer(t, serverOpts{})
	info := ts.srv.grpc.GetServiceInfo()
	for _, name := range []string{
		rpv1.RewardPool_ServiceDesc.ServiceName,
		healthpb.Health_ServiceDesc.ServiceName,
		"grpc.reflection.v1.ServerReflection",
	} {
		if _, ok := info[name]; !ok {
			t.Errorf("gRPC service %s not registered (have %v)", name, info)
		}
	}
}

// Pools are opened several at a time at start-up. One that fails still
// stops the start, naming it, and every pool opened beside it is closed
// again: its lock is free for the next start.
func TestRecoverManyPoolsOneFails(t *testing.T) {
	dir := t.TempDir()
	cfg := newTestConfig(t, dir)
	cfg.Pools = nil
	for i := range 3 * startupOpeners {
		cfg.Pools = append(cfg.Pools, config.Pool{Name: fmt.Sprintf("p%03d", i), Items: []config.Item{
			{ID: "x", Quantity: 5, Weight: 1 * rpool.WeightUnit},
		}})
	}
	bad := cfg.Pools[startupOpeners+3].Name
	if err := os.WriteFile(filepath.Join(dir, bad), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	err := srv.Recover()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
		t.Fatalf("Recover = %v, want an error naming pool %q", err, bad)
	}
	if srv.ready.Load() {
		t.Fatal("server is ready after a pool failed to open")
	}
	for _, p := range cfg.Pools {
		if p.Name == bad {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, p.Name)); err != nil {
			continue // never opened
		}
		unlock, err := rewardpool.LockDir(filepath.Join(dir, p.Name))
		if err != nil {
			t.Fatalf("pool %s is still open after the failed start: %v", p.Name, err)
		}
		unlock()
	}
}
