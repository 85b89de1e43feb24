package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rewardpool/rewardpool/internal/loadgen"
)

// benchFakeHTTP answers the draw route with one draw per requested count
// (request ids as JSON strings) and counts the calls.
func benchFakeHTTP(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/pools/default/draw", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Count int }
		json.NewDecoder(r.Body).Decode(&req)
		var b strings.Builder
		b.WriteString(`{"draws":[`)
		for i := 0; i < req.Count; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"request_id":"` + string(rune('1'+i%9)) + `","item_id":"gold"}`)
		}
		b.WriteString(`]}`)
		calls.Add(1)
		io.WriteString(w, b.String())
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &calls
}

func TestBenchJSONReport(t *testing.T) {
	addr, calls := benchFakeHTTP(t)
	var out, errOut bytes.Buffer
	err := runBenchCtx(context.Background(), []string{"--addr", addr, "--mode", "http", "--concurrency", "4",
		"--requests", "200", "--count", "5", "--warmup", "0s", "--json"}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var rep loadgen.Report
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("report is not one JSON object: %v\n%s", err, out.String())
	}
	if dec.More() {
		t.Error("more than one JSON value on stdout")
	}
	if rep.Requests != 200 || rep.Draws != 1000 || rep.Errors != 0 || calls.Load() != 200 ||
		rep.Mode != "http" || rep.Count != 5 || rep.Concurrency != 4 || rep.DrawsPerSec <= 0 || rep.LatencyUS.P99 <= 0 {
		t.Errorf("report %+v (server saw %d)", rep, calls.Load())
	}
}

func TestBenchTextReport(t *testing.T) {
	addr, _ := benchFakeHTTP(t)
	var out bytes.Buffer
	err := runBenchCtx(context.Background(), []string{"--addr", addr, "--mode", "http", "--concurrency", "2",
		"--duration", "200ms", "--warmup", "50ms"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"draws", "p50", "p99.9", "errors         0"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, out.String())
		}
	}
}

func TestBenchEveryRequestFailed(t *testing.T) {
	var out bytes.Buffer
	err := runBenchCtx(context.Background(), []string{"--addr", "127.0.0.1:1", "--mode", "http",
		"--concurrency", "1", "--requests", "3", "--warmup", "0s", "--json"}, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "every request failed") {
		t.Fatalf("err = %v, want every request failed", err)
	}
	var rep loadgen.Report
	if json.Unmarshal(out.Bytes(), &rep) != nil || rep.ErrorsByKind["transport"] != 3 {
		t.Errorf("report still printed? %s", out.String())
	}
}

// Every mode fails loudly when most calls failed: the report is still
// printed, and bench returns an error (exit status 1) saying why.
func TestBenchFailsWhenMostCallsFailed(t *testing.T) {
	var calls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/pools/empty/draw", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"draws":[{"request_id":"1","error":"POOL_EMPTY"}]}`)
	})
	mux.HandleFunc("POST /v1/pools/flaky/draw", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%4 != 0 { // three of four fail
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"code":"UNAVAILABLE","message":"disk"}`)
			return
		}
		io.WriteString(w, `{"draws":[{"request_id":"1","item_id":"gold"}]}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	for pool, want := range map[string]string{"empty": "POOL_EMPTY", "flaky": "requests failed"} {
		var out bytes.Buffer
		err := runBenchCtx(context.Background(), []string{"--addr", addr, "--pool", pool, "--mode", "http",
			"--concurrency", "2", "--requests", "40", "--warmup", "0s", "--json"}, &out, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pool %s: err = %v, want a failure mentioning %q", pool, err, want)
		}
		var rep loadgen.Report
		if json.Unmarshal(out.Bytes(), &rep) != nil {
			t.Errorf("pool %s: report not printed: %s", pool, out.String())
		}
	}
}

func TestBenchFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--mode", "smoke-signals"},
		{"--redis-setup", "gen:6"},
		{"--mode", "http", "--pipeline", "4"},
		{"--insecure-skip-verify"},
		{"--concurrency", "0"},
		{"--count", "-1"},
		{"--mode", "redis", "--redis-setup", "gen:x"},
		{"extra"},
	} {
		if err := runBenchCtx(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("bench %q: no error", args)
		}
	}
	var help bytes.Buffer
	if err := runBenchCtx(context.Background(), []string{"--help"}, io.Discard, &help); !errors.Is(err, flag.ErrHelp) ||
		!strings.Contains(help.String(), "--concurrency") || !strings.Contains(help.String(), "nearest rank") {
		t.Errorf("--help: %v\n%s", err, help.String())
	}
}
