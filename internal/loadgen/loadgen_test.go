package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/drawbatch"
	"github.com/rewardpool/rewardpool/internal/resp"
)

func TestPercentile(t *testing.T) {
	seq := func(n int) []int64 {
		s := make([]int64, n)
		for i := range s {
			s[i] = int64(i + 1)
		}
		return s
	}
	cases := []struct {
		n    int
		p    float64
		want int64
	}{
		{100, 50, 50}, {100, 90, 90}, {100, 99, 99}, {100, 99.9, 100}, {100, 100, 100},
		{1000, 50, 500}, {1000, 99, 990}, {1000, 99.9, 999},
		{10000, 99.9, 9990}, {10, 50, 5}, {10, 51, 6}, {1, 50, 1}, {1, 99.9, 1},
		{3, 0.0001, 1},
	}
	for _, c := range cases {
		if got := Percentile(seq(c.n), c.p); got != c.want {
			t.Errorf("Percentile(1..%d, %v) = %d, want %d", c.n, c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("Percentile of nothing is not 0")
	}

	// Summarize sorts and converts nanoseconds to microseconds.
	lat := make([]int64, 0, 1000)
	for i := 1000; i >= 1; i-- {
		lat = append(lat, int64(i)*1000) // 1µs .. 1000µs, reversed
	}
	l := Summarize(lat)
	want := Latency{Mean: 500.5, P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000}
	if l != want {
		t.Errorf("Summarize = %+v, want %+v", l, want)
	}
	if (Summarize(nil) != Latency{}) {
		t.Error("Summarize(nil) not zero")
	}
}

// fakePool answers draws like the server: count draws with increasing
// request ids; every failEvery-th request fails (UNAVAILABLE / 503); every
// draw whose id is a multiple of 7 comes back POOL_EMPTY.
type fakePool struct {
	rpv1.UnimplementedRewardPoolServer
	failEvery int64
	token     string
	calls     atomic.Int64 // requests seen (draw and noop)
	noops     atomic.Int64
	compacts  atomic.Int64 // requests that asked for the compact answer
	pools     sync.Map     // pool name -> *atomic.Int64 requests
	lastID    atomic.Uint64
}

// compactAnswer is answer's draws as a DrawBatch.
func (f *fakePool) compactAnswer(resp *rpv1.DrawResponse) *rpv1.DrawResponse {
	f.compacts.Add(1)
	var bd drawbatch.Builder
	bd.Reset(0)
	if len(resp.Draws) > 0 {
		bd.Reset(resp.Draws[0].RequestId)
	}
	for _, d := range resp.Draws {
		bd.Add(d.ItemId, d.Error)
	}
	return &rpv1.DrawResponse{Batch: bd.Batch().Proto()}
}

func (f *fakePool) answer(count uint32, noop bool) (*rpv1.DrawResponse, error) {
	n := f.calls.Add(1)
	if noop {
		f.noops.Add(1)
	}
	if f.failEvery > 0 && n%f.failEvery == 0 {
		return nil, status.Error(codes.Unavailable, "disk on fire")
	}
	if count == 0 {
		count = 1
	}
	resp := &rpv1.DrawResponse{}
	for i := uint32(0); i < count; i++ {
		if noop {
			resp.Draws = append(resp.Draws, &rpv1.Draw{ItemId: "noop"})
			continue
		}
		id := f.lastID.Add(1)
		d := &rpv1.Draw{RequestId: id, ItemId: "gold"}
		if id%7 == 0 {
			d.ItemId, d.Error = "", "POOL_EMPTY"
		}
		resp.Draws = append(resp.Draws, d)
	}
	return resp, nil
}

func (f *fakePool) auth(ctx context.Context) error {
	if f.token == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) != 1 || v[0] != "Bearer "+f.token {
		return status.Error(codes.Unauthenticated, "no token")
	}
	return nil
}

func (f *fakePool) Draw(ctx context.Context, r *rpv1.DrawRequest) (*rpv1.DrawResponse, error) {
	if err := f.auth(ctx); err != nil {
		return nil, err
	}
	if r.Pool != "default" && r.Pool != "second" {
		return nil, status.Error(codes.NotFound, "no pool "+r.Pool)
	}
	f.seen(r.Pool)
	resp, err := f.answer(r.Count, false)
	if err == nil && r.Compact {
		resp = f.compactAnswer(resp)
	}
	return resp, err
}

func (f *fakePool) Noop(ctx context.Context, r *rpv1.DrawRequest) (*rpv1.DrawResponse, error) {
	if err := f.auth(ctx); err != nil {
		return nil, err
	}
	resp, err := f.answer(r.Count, true)
	if err == nil && r.Compact {
		resp = f.compactAnswer(resp)
	}
	return resp, err
}

func (f *fakePool) stream(s grpc.BidiStreamingServer[rpv1.DrawRequest, rpv1.DrawResponse], noop bool) error {
	if err := f.auth(s.Context()); err != nil {
		return err
	}
	for {
		r, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		f.seen(r.Pool)
		resp, err := f.answer(r.Count, noop)
		if err != nil {
			return err // ends the stream, like the real server
		}
		if r.Compact {
			resp = f.compactAnswer(resp)
		}
		if err := s.Send(resp); err != nil {
			return err
		}
	}
}

func (f *fakePool) DrawStream(s grpc.BidiStreamingServer[rpv1.DrawRequest, rpv1.DrawResponse]) error {
	return f.stream(s, false)
}

func (f *fakePool) NoopStream(s grpc.BidiStreamingServer[rpv1.DrawRequest, rpv1.DrawResponse]) error {
	return f.stream(s, true)
}

func (f *fakePool) seen(pool string) {
	n, _ := f.pools.LoadOrStore(pool, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func (f *fakePool) seenCount(pool string) int64 {
	n, ok := f.pools.Load(pool)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// --pool a,b spreads the workers over the pools, round robin.
func TestSeveralPools(t *testing.T) {
	for _, mode := range []string{ModeUnary, ModeStream} {
		f := &fakePool{}
		r, err := Run(context.Background(), Config{Mode: mode, Addr: startGRPC(t, f), Pool: "default,second",
			Concurrency: 4, Requests: 200, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		if r.Errors != 0 || f.seenCount("default") == 0 || f.seenCount("second") == 0 {
			t.Errorf("%s: %d errors (%v); requests per pool: default %d, second %d", mode, r.Errors, r.ErrorSamples,
				f.seenCount("default"), f.seenCount("second"))
		}
	}
	if _, err := Run(context.Background(), Config{Mode: ModeRedis, Addr: "127.0.0.1:1", Pool: "a,b", Concurrency: 1, Requests: 1}); err == nil {
		t.Error("redis mode accepted several pools")
	}
}

func startGRPC(t *testing.T, f *fakePool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	rpv1.RegisterRewardPoolServer(s, f)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// startHTTP serves the HTTP/JSON draw and noop routes; request ids
// alternate between JSON strings and numbers.
func startHTTP(t *testing.T, f *fakePool) string {
	t.Helper()
	serve := func(noop bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"code":"UNAUTHENTICATED","message":"no token"}`)
				return
			}
			var req struct {
				Count   uint32 `json:"count"`
				Compact bool   `json:"compact"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			resp, err := f.answer(req.Count, noop)
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"code":"UNAVAILABLE","message":"disk on fire"}`)
				return
			}
			if req.Compact {
				b := f.compactAnswer(resp).GetBatch()
				out, _ := json.Marshal(map[string]any{"batch": map[string]any{
					"first_request_id": b.FirstRequestId, "item_ids": b.ItemIds, "errors": b.Errors, "outcome_index": b.OutcomeIndex}})
				w.Header().Set("Content-Type", "application/json")
				w.Write(out)
				return
			}
			var b bytes.Buffer
			b.WriteString(`{"draws":[`)
			for i, d := range resp.Draws {
				if i > 0 {
					b.WriteByte(',')
				}
				switch {
				case noop:
					b.WriteString(`{"item_id":"noop"}`)
				case d.Error != "":
					fmt.Fprintf(&b, `{"request_id":%d,"error":%q}`, d.RequestId, d.Error)
				case d.RequestId%2 == 0:
					fmt.Fprintf(&b, `{"request_id":"%d","item_id":%q}`, d.RequestId, d.ItemId)
				default:
					fmt.Fprintf(&b, `{"request_id":%d,"item_id":%q}`, d.RequestId, d.ItemId)
				}
			}
			b.WriteString(`]}`)
			w.Header().Set("Content-Type", "application/json")
			w.Write(b.Bytes())
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/pools/default/draw", serve(false))
	mux.HandleFunc("POST /v1/noop/default", serve(true))
	srv := httptest.NewServer(mux) // listens on 127.0.0.1:0
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// checkCounts checks a requests-mode report against the fake's rules.
func checkCounts(t *testing.T, r *Report, f *fakePool, total int64, count int, noop bool) {
	t.Helper()
	if r.Requests+r.Errors != total {
		t.Errorf("requests %d + errors %d != %d", r.Requests, r.Errors, total)
	}
	if r.Errors == 0 || r.Errors != r.ErrorsByKind["grpc:Unavailable"]+r.ErrorsByKind["http:503"] {
		t.Errorf("errors %d by kind %v: want UNAVAILABLE/503 ones only (%v)", r.Errors, r.ErrorsByKind, r.ErrorSamples)
	}
	if len(r.ErrorSamples) == 0 || !strings.Contains(fmt.Sprint(r.ErrorSamples), "disk on fire") {
		t.Errorf("error samples %v", r.ErrorSamples)
	}
	if r.Draws != r.Requests*int64(count) {
		t.Errorf("draws %d, want requests %d * count %d", r.Draws, r.Requests, count)
	}
	if noop {
		if len(r.FailedDraws) != 0 || f.noops.Load() != f.calls.Load() {
			t.Errorf("noop run: failed draws %v, noops %d of %d calls", r.FailedDraws, f.noops.Load(), f.calls.Load())
		}
	} else if r.FailedDraws["POOL_EMPTY"] == 0 {
		t.Errorf("failed draws %v: want POOL_EMPTY ones", r.FailedDraws)
	}
	if r.DrawsPerSec <= 0 || r.RequestsPerSec <= 0 || r.ElapsedSec <= 0 {
		t.Errorf("rates %v %v elapsed %v", r.DrawsPerSec, r.RequestsPerSec, r.ElapsedSec)
	}
	l := r.LatencyUS
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("latency %+v not ordered", l)
	}
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		noop     bool
		pipeline int
		conns    int
		compact  bool
	}{
		{ModeUnary, false, 1, 0, false},
		{ModeUnary, true, 1, 3, false},
		{ModeStream, false, 1, 0, false},
		{ModeStream, false, 4, 2, false},
		{ModeStream, true, 3, 0, false},
		{ModeHTTP, false, 1, 0, false},
		{ModeHTTP, true, 1, 0, false},
		{ModeUnary, false, 1, 0, true},
		{ModeStream, false, 4, 0, true},
		{ModeStream, true, 2, 0, true},
		{ModeHTTP, false, 1, 0, true},
		{ModeHTTP, true, 1, 0, true},
	} {
		name := fmt.Sprintf("%s/noop=%v/pipeline=%d/compact=%v", tc.mode, tc.noop, tc.pipeline, tc.compact)
		t.Run(name, func(t *testing.T) {
			f := &fakePool{failEvery: 10, token: "s3cret"}
			var addr string
			if tc.mode == ModeHTTP {
				addr = startHTTP(t, f)
			} else {
				addr = startGRPC(t, f)
			}
			const total, count = 300, 3
			r, err := Run(context.Background(), Config{
				Mode: tc.mode, Addr: addr, Pool: "default", Concurrency: 5,
				Requests: total, Count: count, Pipeline: tc.pipeline, Noop: tc.noop,
				Token: "s3cret", GRPCConns: tc.conns, Compact: tc.compact,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkCounts(t, r, f, total, count, tc.noop)
			if compacts := f.compacts.Load(); (compacts > 0) != tc.compact || (tc.compact && compacts != r.Requests) {
				t.Errorf("%d compact answers for %d requests, compact %v", compacts, r.Requests, tc.compact)
			}
			if tc.mode != ModeStream && f.calls.Load() != total {
				t.Errorf("server saw %d calls, want %d", f.calls.Load(), total)
			}
		})
	}
}

func TestWrongTokenAndPoolAreCounted(t *testing.T) {
	f := &fakePool{token: "right"}
	addr := startGRPC(t, f)
	r, err := Run(context.Background(), Config{Mode: ModeStream, Addr: addr, Pool: "default",
		Concurrency: 2, Requests: 20, Count: 1, Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 0 || r.ErrorsByKind["grpc:Unauthenticated"] != 20 {
		t.Errorf("report %+v: want 20 Unauthenticated errors", r)
	}
	r, err = Run(context.Background(), Config{Mode: ModeUnary, Addr: addr, Pool: "nope",
		Concurrency: 2, Requests: 10, Count: 1, Token: "right"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ErrorsByKind["grpc:NotFound"] != 10 {
		t.Errorf("errors %v: want 10 NotFound", r.ErrorsByKind)
	}
	haddr := startHTTP(t, f)
	r, err = Run(context.Background(), Config{Mode: ModeHTTP, Addr: haddr, Pool: "default",
		Concurrency: 2, Requests: 10, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.ErrorsByKind["http:401"] != 10 || !strings.Contains(r.ErrorSamples["http:401"], "UNAUTHENTICATED") {
		t.Errorf("errors %v %v: want 10 http:401", r.ErrorsByKind, r.ErrorSamples)
	}
	// Nothing listening: transport errors, not a hang.
	r, err = Run(context.Background(), Config{Mode: ModeHTTP, Addr: "127.0.0.1:1", Pool: "default",
		Concurrency: 1, Requests: 3, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.ErrorsByKind["transport"] != 3 {
		t.Errorf("errors %v: want 3 transport", r.ErrorsByKind)
	}
}

func TestDurationWarmupAndProgress(t *testing.T) {
	f := &fakePool{}
	addr := startGRPC(t, f)
	var out syncBuffer
	r, err := Run(context.Background(), Config{Mode: ModeUnary, Addr: addr, Pool: "default",
		Concurrency: 3, Duration: 400 * time.Millisecond, Warmup: 200 * time.Millisecond, Count: 2,
		Progress: &out, ProgressInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.ElapsedSec < 0.35 || r.ElapsedSec > 1.5 {
		t.Errorf("elapsed %v, want about 0.4 s", r.ElapsedSec)
	}
	if r.Requests == 0 || r.Requests >= f.calls.Load() {
		t.Errorf("counted %d of %d calls: warm-up calls must not count", r.Requests, f.calls.Load())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 || !strings.Contains(out.String(), "(warm-up)") || !strings.Contains(lines[len(lines)-1], "draws/s") {
		t.Errorf("progress output:\n%s", out.String())
	}
	var text strings.Builder
	r.WriteText(&text)
	for _, w := range []string{"draws/request", "p99.9", "requests"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("text report lacks %q:\n%s", w, text.String())
		}
	}
	b, _ := json.Marshal(r)
	for _, k := range []string{`"draws_per_sec"`, `"p99_9"`, `"errors_by_kind"`, `"requests_per_sec"`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("JSON report lacks %s: %s", k, b)
		}
	}
}

func TestCancelStopsRun(t *testing.T) {
	f := &fakePool{}
	addr := startGRPC(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r, err := Run(ctx, Config{Mode: ModeStream, Addr: addr, Pool: "default", Concurrency: 2,
		Duration: time.Hour, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second || r.Requests == 0 || r.Errors != 0 {
		t.Errorf("cancelled run: %v, report %+v", time.Since(start), r)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Mode: "carrier-pigeon", Addr: "x", Pool: "p", Concurrency: 1, Count: 1, Requests: 1},
		{Mode: ModeUnary, Addr: "x", Pool: "p", Concurrency: 0, Count: 1, Requests: 1},
		{Mode: ModeUnary, Addr: "x", Pool: "p", Concurrency: 1, Count: 0, Requests: 1},
		{Mode: ModeUnary, Addr: "x", Pool: "p", Concurrency: 1, Count: 1},
		{Mode: ModeHTTP, Addr: "x", Pool: "p", Concurrency: 1, Count: 1, Requests: 1, Pipeline: 2},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// fakeRedis answers SCRIPT LOAD with a sha and EVALSHA with count
// (request id, item) pairs, every third one FAILED; EVAL (the setup) with
// the number of items.
func fakeRedis(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var rid, evals atomic.Int64
	var seeded atomic.Bool
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r, w := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					if r.Buffered() == 0 {
						if w.Flush() != nil {
							return
						}
					}
					v, err := resp.ReadValue(r)
					if err != nil {
						return
					}
					var out resp.Value
					switch a := v.Array; strings.ToUpper(a[0].Str) {
					case "SCRIPT":
						out = resp.Value{Kind: resp.BulkString, Str: "0123456789abcdef0123456789abcdef01234567"}
					case "EVAL":
						seeded.Store(true)
						out = resp.Value{Kind: resp.Integer, Int: int64(len(a)-4) / 3}
					case "EXISTS":
						out = resp.Value{Kind: resp.Integer}
						if seeded.Load() && strings.HasSuffix(a[1].Str, ":bench") {
							out.Int = 1
						}
					case "EVALSHA":
						evals.Add(1)
						var n int
						fmt.Sscan(a[4].Str, &n)
						out.Kind = resp.Array
						for i := 0; i < n; i++ {
							id := rid.Add(1)
							item := "gold"
							if id%3 == 0 {
								item = "FAILED"
							}
							out.Array = append(out.Array, resp.Value{Kind: resp.Integer, Int: id},
								resp.Value{Kind: resp.BulkString, Str: item})
						}
					default:
						out = resp.Value{Kind: resp.ErrorReply, Str: "ERR unknown command"}
					}
					w.Write(resp.AppendValue(nil, out))
				}
			}()
		}
	}()
	return ln.Addr().String(), &evals
}

func TestRedisModeAgainstFake(t *testing.T) {
	addr, evals := fakeRedis(t)
	r, err := Run(context.Background(), Config{Mode: ModeRedis, Addr: addr, Concurrency: 3,
		Requests: 100, Count: 2, Pipeline: 10, RedisSetup: GenCatalog(6), Pool: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 100 || evals.Load() != 100 || r.Draws != 200 || r.Errors != 0 {
		t.Errorf("report %+v, server saw %d EVALSHAs", r, evals.Load())
	}
	if r.FailedDraws["POOL_EMPTY"] == 0 {
		t.Errorf("failed draws %v", r.FailedDraws)
	}
}

// Without --redis-setup, bench refuses a catalog it did not seed: against
// an empty Redis every draw would be POOL_EMPTY, reported as throughput.
// A catalog an earlier run seeded is accepted.
func TestRedisModeRefusesCatalogItDidNotSetUp(t *testing.T) {
	addr, evals := fakeRedis(t)
	cfg := Config{Mode: ModeRedis, Addr: addr, Concurrency: 1, Requests: 10, Count: 1, Pool: "default"}
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "--redis-setup") {
		t.Fatalf("Run without a seeded catalog: %v, want an error naming --redis-setup", err)
	}
	if evals.Load() != 0 {
		t.Errorf("%d draws sent to a catalog bench did not set up", evals.Load())
	}
	seed := cfg
	seed.RedisSetup = GenCatalog(6)
	if _, err := Run(context.Background(), seed); err != nil {
		t.Fatalf("Run with --redis-setup: %v", err)
	}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("Run against the catalog seeded before: %v", err)
	}
}

// Report.Failure is what makes every mode fail loudly: most requests, or
// most draws, failed.
func TestReportFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Report
		want string // "" = no failure
	}{
		{"healthy", Report{Requests: 100, Draws: 100, Errors: 1}, ""},
		{"a third of draws empty", Report{Requests: 90, Draws: 90, FailedDraws: map[string]int64{"POOL_EMPTY": 30}}, ""},
		{"nothing completed", Report{}, "no request completed"},
		{"every request failed", Report{Errors: 5, ErrorsByKind: map[string]int64{"transport": 5}}, "every request failed"},
		{"most requests failed", Report{Requests: 4, Draws: 4, Errors: 6, ErrorsByKind: map[string]int64{"http:503": 6}}, "6 of 10 requests failed"},
		{"every draw empty", Report{Requests: 10, Draws: 20, FailedDraws: map[string]int64{"POOL_EMPTY": 20}}, "20 of 20 draws failed"},
	} {
		err := tc.r.Failure()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: Failure() = %v, want nil", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: Failure() = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCatalogs(t *testing.T) {
	if c := GenCatalog(6); len(c) != 6 || c[0].Quantity != 1e9 || c[2].Weight != 30 {
		t.Errorf("standard catalog %+v", c)
	}
	c, err := LoadCatalog("gen:10000")
	if err != nil || len(c) != 10000 {
		t.Fatalf("gen:10000: %d items, %v", len(c), err)
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := dir + "/" + name
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	if c, err := LoadCatalog(write("a.json", `[{"id":"a","quantity":5,"weight":2}]`)); err != nil || c[0].Weight != 2 {
		t.Errorf("list: %+v %v", c, err)
	}
	if c, err := LoadCatalog(write("b.json", `{"name":"x","items":[{"id":"a","quantity":-1,"weight":3}]}`)); err != nil || c[0].Quantity != -1 {
		t.Errorf("object: %+v %v", c, err)
	}
	for _, bad := range []string{`[{"id":"a","quantity":5,"weight":0.5}]`, `[]`, `[{"quantity":1,"weight":1}]`, `nope`} {
		if _, err := LoadCatalog(write("c.json", bad)); err == nil {
			t.Errorf("catalog %s accepted", bad)
		}
	}
	if _, err := LoadCatalog("gen:0"); err == nil {
		t.Error("gen:0 accepted")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
