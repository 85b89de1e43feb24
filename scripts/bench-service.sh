#!/usr/bin/env bash
# bench-service.sh: the service benchmarks of BENCHMARKS.md ("Service"):
# `rewardpool bench` against a `rewardpool serve` with durability always,
# next to Redis (scripts/redis-bench.sh, appendfsync always), in alternating
# rounds, then the medians.
#
#   scripts/bench-service.sh [OUT_DIR]        (default bench-out/service)
#
# Environment: ROUNDS (3), DURATION (5s), WARMUP (1s), BIN (built here to
# bench-out/rewardpool), SKIP_REDIS=1 to leave Redis out, PARTS (default
# "c1 c16 c64 count100 items": the parts of a round to run, in that order).
#
# What it does:
#   1. builds cmd/rewardpool once;
#   2. writes a config: durability always, 127.0.0.1 on a free port, a temp
#      data dir, pool "std" = the 6-item catalog (weights 10,20,30,15,5,20)
#      and pool "big" = 10,000 items (weights 1..100, as bench's gen:10000),
#      every item limited to 1e9 units so that every draw writes;
#   3. starts `serve` and waits for /readyz;
#   4. each round, one run at a time:
#        for C in 1 16 64: for M in unary stream http:
#            draw (pool std), then --noop (same client, no draw)
#          then Redis at C (count 1)
#        count 100 at 16 clients: unary, stream, http; then Redis with
#          --pipeline 100 and Redis with --count 100 (one EVALSHA, 100 draws)
#        10,000 items vs 6 items at 16 clients: http big, http std,
#          unary big, unary std; then Redis with 10,000 items
#      every rewardpool run reads /metrics before and after, and keeps the
#      delta of rewardpool_wal_fsync_duration_seconds (sum, count, buckets)
#      and rewardpool_batch_draws for its pool (warm-up included);
#   5. stops the server by pid (SIGTERM) and prints the median tables.
# Raw results: OUT_DIR/runs.jsonl (one line per run), OUT_DIR/*.json.
set -euo pipefail

say() { echo "bench-service: $*" >&2; }

cd "$(dirname "$0")/.."
root="$PWD"
out="${1:-bench-out/service}"
rounds="${ROUNDS:-3}"
duration="${DURATION:-5s}"
warmup="${WARMUP:-1s}"
bin="${BIN:-bench-out/rewardpool}"
mkdir -p "$out"
: >"$out/runs.jsonl"

if [ -z "${BIN:-}" ]; then
	mkdir -p "$(dirname "$bin")"
	say "building $bin"
	go build -o "$bin" ./cmd/rewardpool
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/rpserve.XXXXXX")"
pid=""
cleanup() {
	status=$?
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		say "stopping rewardpool serve (pid $pid, SIGTERM)"
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			say "serve (pid $pid) did not stop in 20 s; SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
	cp "$tmp/serve.log" "$out/serve.log" 2>/dev/null || true
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
addr="127.0.0.1:$port"
python3 - "$tmp/config.yaml" "$addr" "$tmp/data" <<'EOF'
import sys
path, addr, data = sys.argv[1:]
lines = [f"listen: {addr}", f"data_dir: {data}", "durability: always", "log:", "  level: warn", "pools:"]
lines += ["  - name: std", "    items:"]
for i, w in zip(["diamond", "ruby", "gold", "silver", "emerald", "bronze"], [10, 20, 30, 15, 5, 20]):
    lines.append(f"      - {{id: {i}, quantity: 1000000000, weight: {w}}}")
lines += ["  - name: big", "    items:"]
for i in range(10000):  # the same catalog as `rewardpool bench --redis-setup gen:10000`
    lines.append(f"      - {{id: item{i+1:05d}, quantity: 1000000000, weight: {i*37%100+1}}}")
open(path, "w").write("\n".join(lines) + "\n")
EOF
cp "$tmp/config.yaml" "$out/config.yaml"

say "starting $bin serve --config $tmp/config.yaml on $addr"
"$bin" serve --config "$tmp/config.yaml" >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; exit 1; }
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/readyz")" = 200 ] && break
	sleep 0.1
done
say "serve pid $pid ready"

metrics() { curl -s "http://$addr/metrics" >"$1"; }

# record LABEL POOL BENCH_JSON [BEFORE AFTER]: one line of runs.jsonl
record() {
	python3 - "$@" >>"$out/runs.jsonl" <<'EOF'
import json, sys
label, pool, bj = sys.argv[1:4]
rep = json.load(open(bj))
rec = {"label": label, "pool": pool, "load": open("/proc/loadavg").read().split()[0]}
rec["draws_per_sec"] = rep.get("draws_per_sec")
rec["requests_per_sec"] = rep.get("requests_per_sec")
rec["p50_us"] = rep["latency_us"]["p50"]
rec["p99_us"] = rep["latency_us"]["p99"]
rec["errors"] = rep.get("errors")
if len(sys.argv) > 5:
    def parse(path):
        m = {}
        for line in open(path):
            if line.startswith("#") or f'pool="{pool}"' not in line:
                continue
            name, val = line.rsplit(" ", 1)
            m[name] = float(val)
        return m
    a, b = parse(sys.argv[4]), parse(sys.argv[5])
    d = {k: b[k] - a.get(k, 0.0) for k in b}
    fs = "rewardpool_wal_fsync_duration_seconds"
    n = sum(v for k, v in d.items() if k.startswith(fs + "_count"))
    s = sum(v for k, v in d.items() if k.startswith(fs + "_sum"))
    rec["fsyncs"] = n
    if n > 0:
        rec["fsync_mean_us"] = s / n * 1e6
        buckets = []
        for k, v in d.items():
            if k.startswith(fs + "_bucket"):
                le = k.split('le="')[1].split('"')[0]
                buckets.append((float("inf") if le == "+Inf" else float(le), v))
        buckets.sort()
        # histogram_quantile(0.99): linear inside the bucket that holds rank 0.99*n
        rank, prev_le, prev_c = 0.99 * n, 0.0, 0.0
        for le, c in buckets:
            if c >= rank:
                rec["fsync_p99_us"] = (prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1)) * 1e6 if le != float("inf") else prev_le * 1e6
                rec["fsync_p99_bucket_us"] = [prev_le * 1e6, le * 1e6]
                break
            prev_le, prev_c = le, c
    bn = d.get(f'rewardpool_batch_draws_count{{pool="{pool}"}}', 0)
    bs = d.get(f'rewardpool_batch_draws_sum{{pool="{pool}"}}', 0)
    if bn > 0:
        rec["draws_per_batch"] = bs / bn
print(json.dumps(rec))
EOF
	tail -1 "$out/runs.jsonl" >&2
}

n=0
# rp LABEL POOL bench-flags...
rp() {
	local label="$1" pool="$2"; shift 2
	n=$((n + 1))
	local f="$out/$n-$label.json"
	metrics "$tmp/m.before"
	"$bin" bench --addr "$addr" --pool "$pool" --duration "$duration" --warmup "$warmup" --json "$@" >"$f" 2>"$tmp/bench.err" ||
		{ cat "$tmp/bench.err" >&2; exit 1; }
	metrics "$tmp/m.after"
	record "$label" "$pool" "$f" "$tmp/m.before" "$tmp/m.after"
}
# redis LABEL redis-bench-flags...
redis() {
	[ -n "${SKIP_REDIS:-}" ] && return 0
	local label="$1"; shift
	n=$((n + 1))
	local f="$out/$n-$label.json"
	REWARDPOOL="$bin" scripts/redis-bench.sh --duration "$duration" --warmup "$warmup" --json "$@" >"$f" 2>"$tmp/redis.err" ||
		{ cat "$tmp/redis.err" >&2; exit 1; }
	record "$label" redis "$f"
}

parts=" ${PARTS:-c1 c16 c64 count100 items} "
on() { case "$parts" in *" $1 "*) return 0 ;; esac; return 1; }

for r in $(seq 1 "$rounds"); do
	say "round $r of $rounds"
	for c in 1 16 64; do
		on "c$c" || continue
		for m in unary stream http; do
			rp "$m-c$c-draw" std --mode "$m" --concurrency "$c"
			rp "$m-c$c-noop" std --mode "$m" --concurrency "$c" --noop
		done
		redis "redis-c$c" --concurrency "$c"
	done
	if on count100; then
		for m in unary stream http; do
			rp "$m-c16-count100" std --mode "$m" --concurrency 16 --count 100
		done
		redis "redis-c16-pipeline100" --concurrency 16 --pipeline 100
		redis "redis-c16-count100" --concurrency 16 --count 100
	fi
	if on items; then
		for m in http unary; do
			rp "$m-c16-items10000" big --mode "$m" --concurrency 16
			rp "$m-c16-items6" std --mode "$m" --concurrency 16
		done
		redis "redis-c16-items10000" --items 10000 --concurrency 16
	fi
done

# Medians per label.
python3 - "$out/runs.jsonl" <<'EOF'
import json, sys, statistics as st
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["label"], []).append(r)
keys = ["draws_per_sec", "p50_us", "p99_us", "fsync_mean_us", "fsync_p99_us", "draws_per_batch", "fsyncs", "load"]
print("label | n | " + " | ".join(keys) + " | draws/s per round")
for label, rs in runs.items():
    cols = []
    for k in keys:
        v = [float(r[k]) for r in rs if r.get(k) is not None]
        cols.append(f"{st.median(v):.1f}" if v else "-")
    per = ", ".join(f"{r['draws_per_sec']:.0f}" for r in rs)
    print(f"{label} | {len(rs)} | " + " | ".join(cols) + f" | {per}")

# Target ratios, paired within a round (adjacent runs), then the median.
def pair(a, b, f):
    if a not in runs or b not in runs:
        return None
    v = [f(x, y) for x, y in zip(runs[a], runs[b])]
    return f"median {st.median(v):.3f} (rounds: {', '.join(f'{x:.3f}' for x in v)})"
dps = lambda x, y: x["draws_per_sec"] / y["draws_per_sec"]
print()
for m in ["unary", "stream", "http"]:
    for name, a, b, f in [
        ("draw/noop at 16", f"{m}-c16-draw", f"{m}-c16-noop", dps),
        ("draws/s vs Redis at 16", f"{m}-c16-draw", "redis-c16", dps),
        ("count 100 vs Redis pipeline 100", f"{m}-c16-count100", "redis-c16-pipeline100", dps),
        ("1 client vs 1/fsync", f"{m}-c1-draw", f"{m}-c1-draw", lambda x, y: x["draws_per_sec"] * x.get("fsync_mean_us", 0) / 1e6),
        ("10,000 items / 6 items at 16", f"{m}-c16-items10000", f"{m}-c16-items6", dps),
        ("p99 at 16 / fsync p99", f"{m}-c16-draw", f"{m}-c16-draw", lambda x, y: x["p99_us"] / x.get("fsync_p99_us", float("nan"))),
    ]:
        r = pair(a, b, f)
        if r:
            print(f"{m}: {name}: {r}")
EOF
