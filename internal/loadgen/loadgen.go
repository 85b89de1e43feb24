// Package loadgen is the engine of `rewardpool bench`: a closed-loop load
// generator in the style of redis-benchmark.
//
// Concurrency workers each own a Client (an HTTP keep-alive connection, a
// gRPC stream, a Redis connection, or a share of a gRPC ClientConn for
// unary calls) and issue requests back to back: one outstanding request per
// worker, or Pipeline requests at a time in stream and redis modes (the
// batch is written, then every reply is read, like redis-benchmark -P).
//
// Measurement: requests issued during the warm-up are not counted. A
// request counts when it starts at or after the end of the warm-up and, in
// duration mode, before the deadline; the measured window runs from the
// end of the warm-up to the last counted completion. Every successful
// request's latency (for a pipelined batch: from the batch's write to that
// reply) is kept exactly, as int64 nanoseconds in a per-worker slice (8
// bytes per request: 10 s at 100k requests/s is 8 MB), and the slices are
// merged and sorted at the end; percentiles use the nearest-rank method.
// Failed requests are counted by kind and excluded from latency.
package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Modes.
const (
	ModeUnary  = "unary"
	ModeStream = "stream"
	ModeHTTP   = "http"
	ModeRedis  = "redis"
)

// Config describes one benchmark run.
type Config struct {
	Mode        string        // unary | stream | http | redis
	Addr        string        // host:port
	Pool        string        // one pool, or several separated by commas: worker w draws from the (w mod n)-th
	Concurrency int           // workers
	Duration    time.Duration // measured duration, when Requests is 0
	Requests    int64         // total counted requests; wins over Duration when > 0
	Count       int           // draws per request
	Pipeline    int           // requests in flight per worker (stream and redis modes)
	Noop        bool          // call the transport floor instead of drawing
	Compact     bool          // ask for the compact answer (DrawBatch); unary, stream, http
	Token       string        // bearer token
	TLS         *tls.Config   // nil: plaintext (h2c, http, redis)
	Warmup      time.Duration // not counted
	GRPCConns   int           // gRPC ClientConns shared by the workers; 0: one per 16 workers

	RedisPrefix string // redis mode: key prefix passed as KEYS[1]
	RedisScript string // redis mode: the draw script's source; "" uses the embedded draw.lua
	// RedisSetup, when not nil, seeds the catalog under RedisPrefix before
	// the run (replacing what was there).
	RedisSetup []CatalogItem

	// Progress receives a line per ProgressInterval (default 1 s) while
	// the run lasts; nil disables it. With ProgressTTY the line is
	// rewritten in place with \r.
	Progress         io.Writer
	ProgressTTY      bool
	ProgressInterval time.Duration
}

// Result is the outcome of one request, filled in by a Client.
type Result struct {
	Latency    time.Duration
	Draws      int    // draw outcomes in the reply (successful or not)
	FailedDraw int    // of which failed (pool empty)
	FailKind   string // reason of the failed draws ("POOL_EMPTY")
	Err        error  // request failed; Draws is then ignored
}

// Client issues requests for one worker. It is used by one goroutine.
type Client interface {
	// Do performs len(res) requests (more than one only when pipelining)
	// and fills res. A broken connection or stream is re-established by
	// the next call.
	Do(ctx context.Context, res []Result)
	Close() error
}

// target creates the clients of one mode.
type target interface {
	NewClient(ctx context.Context, worker int) (Client, error)
	Close() error
}

// KindError is an error with a short, stable kind used to count errors.
type KindError struct {
	Kind string
	Msg  string
}

func (e *KindError) Error() string { return e.Kind + ": " + e.Msg }

// ErrorKind classifies err for the report: the Kind of a *KindError (gRPC
// status codes become "grpc:Code" through the gRPC client), else
// "transport".
func ErrorKind(err error) string {
	var ke *KindError
	if errors.As(err, &ke) {
		return ke.Kind
	}
	if k := grpcKind(err); k != "" {
		return k
	}
	return "transport"
}

// Latency holds per-request latency figures in microseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// Report is the final result of a run.
type Report struct {
	Mode        string  `json:"mode"`
	Noop        bool    `json:"noop"`
	Compact     bool    `json:"compact,omitempty"`
	Addr        string  `json:"addr"`
	Pool        string  `json:"pool,omitempty"`
	Concurrency int     `json:"concurrency"`
	Count       int     `json:"count"`
	Pipeline    int     `json:"pipeline"`
	GRPCConns   int     `json:"grpc_conns,omitempty"`
	WarmupSec   float64 `json:"warmup_s"`
	ElapsedSec  float64 `json:"elapsed_s"` // measured window

	Requests     int64             `json:"requests"` // successful requests
	Draws        int64             `json:"draws"`    // draw outcomes in successful replies
	FailedDraws  map[string]int64  `json:"failed_draws"`
	Errors       int64             `json:"errors"` // failed requests
	ErrorsByKind map[string]int64  `json:"errors_by_kind"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"` // first message of each kind

	DrawsPerSec    float64 `json:"draws_per_sec"`
	RequestsPerSec float64 `json:"requests_per_sec"`
	LatencyUS      Latency `json:"latency_us"`
}

// Failure reports why the run measured mostly failures, or nil: nothing
// completed, more than half of the requests failed, or more than half of
// the draws in successful replies failed (an empty pool). Such a run's
// rates describe errors, not draws, so bench exits non-zero on it.
func (r *Report) Failure() error {
	total := r.Requests + r.Errors
	switch {
	case total == 0:
		return errors.New("no request completed")
	case r.Requests == 0:
		return fmt.Errorf("every request failed (%d errors: %s)", r.Errors, kinds(r.ErrorsByKind))
	case 2*r.Errors > total:
		return fmt.Errorf("%d of %d requests failed (%s): the rates above are not draws", r.Errors, total, kinds(r.ErrorsByKind))
	}
	var failed int64
	for _, n := range r.FailedDraws {
		failed += n
	}
	if 2*failed > r.Draws {
		return fmt.Errorf("%d of %d draws failed (%s): the pool is empty or missing, so the rates above are not draws",
			failed, r.Draws, kinds(r.FailedDraws))
	}
	return nil
}

// workerStats is what one worker gathers; merged at the end.
type workerStats struct {
	lat      []int64
	requests int64
	draws    int64
	failed   map[string]int64
	errors   map[string]int64
	samples  map[string]string
	lastDone time.Time
}

func (s *workerStats) add(r *Result) {
	if r.Err != nil {
		k := ErrorKind(r.Err)
		if s.errors == nil {
			s.errors, s.samples = map[string]int64{}, map[string]string{}
		}
		s.errors[k]++
		if _, ok := s.samples[k]; !ok {
			s.samples[k] = r.Err.Error()
		}
		return
	}
	s.requests++
	s.draws += int64(r.Draws)
	if r.FailedDraw > 0 {
		if s.failed == nil {
			s.failed = map[string]int64{}
		}
		s.failed[r.FailKind] += int64(r.FailedDraw)
	}
	s.lat = append(s.lat, int64(r.Latency))
}

// live counters for the progress line: requests, draws and errors count
// measured requests only; allDraws also counts the warm-up, so that the
// rate shows during it.
type live struct {
	requests, draws, errors, allDraws atomic.Int64
}

func (c *Config) normalize() error {
	switch c.Mode {
	case ModeUnary, ModeStream, ModeHTTP, ModeRedis:
	case "":
		c.Mode = ModeUnary
	default:
		return fmt.Errorf("--mode %q: want unary, stream, http or redis", c.Mode)
	}
	if c.Addr == "" {
		return errors.New("--addr is empty")
	}
	if c.Concurrency <= 0 {
		return fmt.Errorf("--concurrency %d: must be at least 1", c.Concurrency)
	}
	if c.Count <= 0 {
		return fmt.Errorf("--count %d: must be at least 1", c.Count)
	}
	if c.Pipeline <= 0 {
		c.Pipeline = 1
	}
	if c.Compact && c.Mode == ModeRedis {
		return errors.New("--compact: only the unary, stream and http modes have compact answers")
	}
	if c.Pipeline > 1 && c.Mode != ModeStream && c.Mode != ModeRedis {
		return fmt.Errorf("--pipeline %d: only stream and redis modes pipeline", c.Pipeline)
	}
	if c.Requests < 0 {
		return fmt.Errorf("--requests %d: must not be negative", c.Requests)
	}
	if c.Requests == 0 && c.Duration <= 0 {
		return errors.New("give --duration > 0 or --requests > 0")
	}
	if c.Warmup < 0 {
		return fmt.Errorf("--warmup %v: must not be negative", c.Warmup)
	}
	if c.Mode != ModeRedis && c.Pool == "" {
		return errors.New("--pool is empty")
	}
	if strings.Contains(c.Pool, ",") {
		if c.Mode == ModeRedis {
			return errors.New("--pool: several pools are for the rewardpool modes, not redis")
		}
		if slices.Contains(strings.Split(c.Pool, ","), "") {
			return fmt.Errorf("--pool %q: an empty pool name in the list", c.Pool)
		}
	}
	if c.GRPCConns <= 0 {
		c.GRPCConns = (c.Concurrency + 15) / 16
	}
	if c.GRPCConns > c.Concurrency {
		c.GRPCConns = c.Concurrency
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Second
	}
	if c.Mode == ModeRedis && c.RedisPrefix == "" {
		c.RedisPrefix = "rewardpool:" + c.Pool
	}
	return nil
}

// poolFor is the pool worker w draws from.
func (c *Config) poolFor(w int) string {
	pools := strings.Split(c.Pool, ",")
	return pools[w%len(pools)]
}

func newTarget(ctx context.Context, c *Config) (target, error) {
	switch c.Mode {
	case ModeHTTP:
		return newHTTPTarget(c)
	case ModeRedis:
		return newRedisTarget(ctx, c)
	default:
		return newGRPCTarget(c)
	}
}

// Run performs the benchmark described by cfg. Cancelling ctx stops it
// early; what was measured so far is reported.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	tg, err := newTarget(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer tg.Close()

	clients := make([]Client, cfg.Concurrency)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range clients {
		if clients[i], err = tg.NewClient(ctx, i); err != nil {
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
	}

	var (
		lv        live
		remaining atomic.Int64 // requests mode: counted requests left to issue
		stats     = make([]workerStats, cfg.Concurrency)
		wg        sync.WaitGroup
	)
	remaining.Store(cfg.Requests)
	start := time.Now()
	t0 := start.Add(cfg.Warmup)
	var deadline time.Time
	if cfg.Requests == 0 {
		deadline = t0.Add(cfg.Duration)
	}
	perWorker := 1 << 12
	if cfg.Requests > 0 {
		perWorker = int(min(cfg.Requests/int64(cfg.Concurrency)+int64(cfg.Pipeline), 1<<20))
	}

	done := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		progress(&cfg, &lv, start, t0, done)
	}()

	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			st := &stats[w]
			st.lat = make([]int64, 0, perWorker)
			res := make([]Result, cfg.Pipeline)
			cl := clients[w]
			for ctx.Err() == nil {
				now := time.Now()
				n, counted := cfg.Pipeline, now.Compare(t0) >= 0
				if cfg.Requests == 0 {
					if now.Compare(deadline) >= 0 {
						return
					}
				} else if counted {
					left := remaining.Add(-int64(n))
					if left <= -int64(n) {
						return
					}
					if left < 0 {
						n += int(left)
					}
				}
				batch := res[:n]
				clear(batch)
				cl.Do(ctx, batch)
				if interrupted(ctx) {
					return // interrupted: the batch's outcome is unknown
				}
				if !counted {
					var draws int64
					for i := range batch {
						if batch[i].Err == nil {
							draws += int64(batch[i].Draws)
						}
					}
					lv.allDraws.Add(draws)
					continue
				}
				var draws, errs int64
				for i := range batch {
					st.add(&batch[i])
					if batch[i].Err != nil {
						errs++
					} else {
						draws += int64(batch[i].Draws)
					}
				}
				lv.requests.Add(int64(n) - errs)
				lv.draws.Add(draws)
				lv.allDraws.Add(draws)
				if errs > 0 {
					lv.errors.Add(errs)
				}
				st.lastDone = time.Now()
			}
		}(w)
	}
	wg.Wait()
	close(done)
	<-progressDone

	return buildReport(&cfg, stats, t0), nil
}

// interrupted reports whether ctx is done or past its deadline. gRPC runs
// its own timer for a deadline and can fail a call with DeadlineExceeded a
// moment before ctx.Err() turns non-nil; such a failure is the run ending,
// not an error of the server.
func interrupted(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

func buildReport(cfg *Config, stats []workerStats, t0 time.Time) *Report {
	r := &Report{
		Mode: cfg.Mode, Noop: cfg.Noop, Compact: cfg.Compact, Addr: cfg.Addr, Pool: cfg.Pool,
		Concurrency: cfg.Concurrency, Count: cfg.Count, Pipeline: cfg.Pipeline,
		WarmupSec:    cfg.Warmup.Seconds(),
		FailedDraws:  map[string]int64{},
		ErrorsByKind: map[string]int64{},
	}
	if cfg.Mode == ModeUnary || cfg.Mode == ModeStream {
		r.GRPCConns = cfg.GRPCConns
	}
	if cfg.Mode == ModeRedis {
		r.Pool = ""
	}
	var end time.Time
	total := 0
	for i := range stats {
		s := &stats[i]
		r.Requests += s.requests
		r.Draws += s.draws
		for k, v := range s.failed {
			r.FailedDraws[k] += v
		}
		for k, v := range s.errors {
			r.ErrorsByKind[k] += v
			r.Errors += v
			if _, ok := r.ErrorSamples[k]; !ok {
				if r.ErrorSamples == nil {
					r.ErrorSamples = map[string]string{}
				}
				r.ErrorSamples[k] = s.samples[k]
			}
		}
		if s.lastDone.After(end) {
			end = s.lastDone
		}
		total += len(s.lat)
	}
	if end.After(t0) {
		r.ElapsedSec = end.Sub(t0).Seconds()
		r.DrawsPerSec = float64(r.Draws) / r.ElapsedSec
		r.RequestsPerSec = float64(r.Requests) / r.ElapsedSec
	}
	all := make([]int64, 0, total)
	for i := range stats {
		all = append(all, stats[i].lat...)
		stats[i].lat = nil
	}
	r.LatencyUS = Summarize(all)
	return r
}

// Summarize sorts lat (nanoseconds) in place and returns its mean and
// percentiles in microseconds.
func Summarize(lat []int64) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	var sum float64
	for _, v := range lat {
		sum += float64(v)
	}
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	return Latency{
		Mean: sum / float64(len(lat)) / 1e3,
		P50:  us(Percentile(lat, 50)),
		P90:  us(Percentile(lat, 90)),
		P99:  us(Percentile(lat, 99)),
		P999: us(Percentile(lat, 99.9)),
		Max:  us(lat[len(lat)-1]),
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p % of the
// values are less than or equal to it.
func Percentile(sorted []int64, p float64) int64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps 99.9 % of 1000 at rank 999 despite 99.9 not being
	// exact in binary.
	rank := int(math.Ceil(p*float64(n)/100 - 1e-9))
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

// progress prints the live line until done is closed.
func progress(cfg *Config, lv *live, start, t0 time.Time, done <-chan struct{}) {
	if cfg.Progress == nil {
		return
	}
	tick := time.NewTicker(cfg.ProgressInterval)
	defer tick.Stop()
	var lastDraws int64
	last := start
	printed := false
	for {
		select {
		case <-done:
			if printed && cfg.ProgressTTY {
				fmt.Fprintln(cfg.Progress)
			}
			return
		case now := <-tick.C:
			draws := lv.allDraws.Load()
			rate := float64(draws-lastDraws) / now.Sub(last).Seconds()
			lastDraws, last = draws, now
			phase := ""
			// A tick due at the end of the warm-up still reports it.
			if now.Before(t0.Add(cfg.ProgressInterval / 4)) {
				phase = " (warm-up)"
			}
			line := fmt.Sprintf("%6.1fs%s  requests %d  draws/s %.0f  errors %d",
				now.Sub(start).Seconds(), phase, lv.requests.Load(), rate, lv.errors.Load())
			if cfg.ProgressTTY {
				fmt.Fprint(cfg.Progress, "\r"+line+"\x1b[K")
			} else {
				fmt.Fprintln(cfg.Progress, line)
			}
			printed = true
		}
	}
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) {
	what := r.Mode
	if r.Noop {
		what += " (noop: transport floor)"
	}
	if r.Compact {
		what += ", compact answers"
	}
	fmt.Fprintf(w, "mode           %s\n", what)
	fmt.Fprintf(w, "target         %s", r.Addr)
	if r.Pool != "" {
		fmt.Fprintf(w, "  pool %s", r.Pool)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "load           %d workers, %d draws/request, pipeline %d", r.Concurrency, r.Count, r.Pipeline)
	if r.GRPCConns > 0 {
		fmt.Fprintf(w, ", %d grpc conns", r.GRPCConns)
	}
	fmt.Fprintf(w, "\nmeasured       %.2fs (after %.1fs warm-up)\n", r.ElapsedSec, r.WarmupSec)
	fmt.Fprintf(w, "requests       %d  (%.0f/s)\n", r.Requests, r.RequestsPerSec)
	fmt.Fprintf(w, "draws          %d  (%.0f/s)\n", r.Draws, r.DrawsPerSec)
	if len(r.FailedDraws) > 0 {
		fmt.Fprintf(w, "failed draws   %s\n", kinds(r.FailedDraws))
	}
	fmt.Fprintf(w, "errors         %d", r.Errors)
	if r.Errors > 0 {
		fmt.Fprintf(w, "  %s", kinds(r.ErrorsByKind))
	}
	fmt.Fprintln(w)
	for _, k := range sortedKeys(r.ErrorSamples) {
		fmt.Fprintf(w, "  %s: %s\n", k, r.ErrorSamples[k])
	}
	l := r.LatencyUS
	fmt.Fprintf(w, "latency        p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
		fmtUS(l.P50), fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.Max), fmtUS(l.Mean))
}

func fmtUS(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.2fms", us/1000)
	}
	return fmt.Sprintf("%.0fµs", us)
}

func kinds(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
