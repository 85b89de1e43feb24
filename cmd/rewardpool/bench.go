package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/rewardpool/rewardpool/internal/loadgen"
)

const benchArgs = "[--mode unary|stream|http|redis] [--concurrency N] [--duration D|--requests N] [--count N]"

// benchHelp explains what bench measures; printed by --help.
const benchHelp = `
bench is a closed-loop load generator in the style of redis-benchmark.
--concurrency workers issue requests back to back; what each worker owns:
  http    its own HTTP/1.1 keep-alive connection (POST /v1/pools/{pool}/draw,
          with --noop POST /v1/noop/{pool})
  unary   a share of a gRPC ClientConn: one ClientConn per 16 workers unless
          --grpc-conns says otherwise (HTTP/2 multiplexes the calls)
  stream  its own DrawStream (NoopStream with --noop) on a shared ClientConn
  redis   its own RESP2 connection to a Redis at --addr, calling
          EVALSHA <draw.lua> 1 <--redis-keys> <--count>
--pipeline N (stream, redis) writes N requests, then reads the N replies.
Requests sent during --warmup are not counted. Every successful request's
latency is kept (8 bytes each) and sorted at the end: percentiles are exact
(nearest rank). Failed requests are counted by kind and not in latency.
A live line goes to stderr each second; the report to stdout (--json: one
JSON object). Exits 1 when most requests failed, or most draws failed
(an empty or missing pool). Redis mode draws only from a catalog bench
seeded: pass --redis-setup on the first run against a Redis.
`

func runBench(args []string, stdout io.Writer) error {
	return runBenchCtx(context.Background(), args, stdout, os.Stderr)
}

func runBenchCtx(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.Config
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:7070", "server address: host:port, http://host:port or https://host:port (redis mode: the Redis's host:port)")
	fs.StringVar(&cfg.Pool, "pool", "default", "pool to draw from; several, comma-separated, spread the workers over them round robin")
	fs.StringVar(&cfg.Mode, "mode", "unary", "unary | stream | http | redis")
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "workers (each with its own connection or stream)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to measure (after the warm-up)")
	fs.Int64Var(&cfg.Requests, "requests", 0, "total requests to measure instead of a duration (wins over --duration)")
	fs.IntVar(&cfg.Count, "count", 1, "draws per request")
	fs.IntVar(&cfg.Pipeline, "pipeline", 1, "requests in flight per worker (stream and redis modes)")
	fs.IntVar(&cfg.GRPCConns, "grpc-conns", 0, "gRPC ClientConns shared by the workers (default: one per 16 workers)")
	fs.BoolVar(&cfg.Compact, "compact", false, "ask for compact answers (a DrawBatch: first request id, outcome table, one index per draw); for large --count")
	fs.BoolVar(&cfg.Noop, "noop", false, "call Noop/NoopStream or /v1/noop/ (the transport floor) instead of drawing")
	fs.StringVar(&cfg.Token, "token", "", "bearer token (redis mode: AUTH password)")
	var tf tlsFlags
	tf.register(fs)
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "warm-up before measuring (not counted)")
	asJSON := fs.Bool("json", false, "print the final report as one JSON object")
	fs.StringVar(&cfg.RedisPrefix, "redis-keys", "", "redis mode: key prefix (default rewardpool:<pool>)")
	setup := fs.String("redis-setup", "", "redis mode: seed the catalog first from a JSON file ([{id,quantity,weight}] or {\"items\": [...]}), or gen:N (gen:6 = the standard 6-item catalog)")
	script := fs.String("redis-script", "", "redis mode: draw script file (default: the embedded copy of internal/loadgen/redis_draw.lua)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rewardpool bench %s [flags]\n%s\nflags:\n", benchArgs, benchHelp)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if cfg.Mode != loadgen.ModeRedis {
		for _, name := range []string{"redis-keys", "redis-setup", "redis-script"} {
			if explicit[name] {
				return fmt.Errorf("--%s needs --mode redis", name)
			}
		}
	}
	addrFlag := cfg.Addr
	host, https, err := parseAddr(cfg.Addr)
	if err != nil {
		return err
	}
	cfg.Addr = host
	if cfg.TLS, err = tf.config(https, addrFlag); err != nil {
		return err
	}
	if *setup != "" {
		items, err := loadgen.LoadCatalog(*setup)
		if err != nil {
			return err
		}
		cfg.RedisSetup = items
	}
	if *script != "" {
		b, err := os.ReadFile(*script)
		if err != nil {
			return err
		}
		cfg.RedisScript = string(b)
	}
	cfg.Progress = stderr
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			cfg.ProgressTTY = true
		}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.WriteText(stdout)
	}
	// Printed above either way; a run that measured mostly failures exits
	// non-zero so no script mistakes it for a result.
	return rep.Failure()
}
