#!/usr/bin/env bash
# redis-bench.sh: run `rewardpool bench --mode redis` against a throwaway
# Redis on loopback, configured to be as durable as rewardpool's default
# (appendonly, appendfsync always, no RDB snapshots), then stop it.
#
#   scripts/redis-bench.sh [--items N | --catalog FILE] [bench flags...]
#
#   --items N       catalog of N items (default 6: the standard comparison
#                   catalog, weights 10,20,30,15,5,20); N > 6 generates N
#                   items with weights 1..100. Every item is limited with
#                   1e9 units, so every draw writes (and is fsync'ed).
#   --catalog FILE  JSON catalog instead: [{"id","quantity","weight"}, ...]
#                   or {"items": [...]}; Redis needs integer weights.
#   bench flags     passed through: --concurrency, --count, --duration,
#                   --requests, --pipeline, --warmup, --json, --noop, ...
#
# Examples:
#   scripts/redis-bench.sh --concurrency 16 --count 1 --duration 10s
#   scripts/redis-bench.sh --items 10000 --concurrency 16 --json
#   scripts/redis-bench.sh --concurrency 16 --pipeline 100 --duration 10s
#
# What it does, in order (each step is printed):
#   1. installs redis-server with apt-get if it is missing (needs root);
#   2. starts redis-server on 127.0.0.1 on a free port in a temp dir with
#      --appendonly yes --appendfsync always --save '' and records its pid;
#   3. runs `go run ./cmd/rewardpool bench --mode redis --addr ...
#      --redis-setup <catalog> <your flags>` from the repository root (set
#      REWARDPOOL=/path/to/binary to use a built binary instead); bench
#      seeds the catalog (replacing it) and SCRIPT LOADs internal/loadgen/redis_draw.lua;
#   4. stops redis-server by its pid and removes the temp dir, also on
#      error or Ctrl-C (trap EXIT).
set -euo pipefail

say() { echo "redis-bench: $*" >&2; }

items=6
catalog=""
pass=()
while [ $# -gt 0 ]; do
	case "$1" in
	--items) items="$2"; shift 2 ;;
	--items=*) items="${1#*=}"; shift ;;
	--catalog) catalog="$2"; shift 2 ;;
	--catalog=*) catalog="${1#*=}"; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) pass+=("$1"); shift ;;
	esac
done
if [ -n "$catalog" ]; then
	setup="$(cd "$(dirname "$catalog")" && pwd)/$(basename "$catalog")"
else
	setup="gen:$items"
fi

cd "$(dirname "$0")/.."

# 1. Install redis-server when missing.
if ! command -v redis-server >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		say "redis-server is not installed; run as root or: sudo apt-get install -y redis-server"
		exit 1
	fi
	say "redis-server not found: running apt-get update && apt-get install -y redis-server"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
fi
for tool in redis-cli; do
	command -v "$tool" >/dev/null 2>&1 || { say "$tool not found (package redis-tools)"; exit 1; }
done
say "using $(command -v redis-server): $(redis-server --version)"

# 2. Start it on a free loopback port in a temp dir.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/redis-bench.XXXXXX")"
pid=""
cleanup() {
	status=$?
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		say "stopping redis-server (pid $pid)"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			say "redis-server (pid $pid) did not stop in 10 s; sending SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for attempt in 1 2 3 4 5; do
	port=$((20000 + RANDOM % 30000))
	port_in_use "$port" && continue
	say "starting redis-server on 127.0.0.1:$port in $tmp (appendonly yes, appendfsync always, save '')"
	redis-server --bind 127.0.0.1 --port "$port" --dir "$tmp" \
		--appendonly yes --appendfsync always --save '' \
		--daemonize no --protected-mode yes --logfile "$tmp/redis.log" &
	pid=$!
	echo "$pid" >"$tmp/redis.pid"
	ready=""
	for _ in $(seq 1 100); do
		if ! kill -0 "$pid" 2>/dev/null; then break; fi
		if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]; then ready=1; break; fi
		sleep 0.1
	done
	if [ -n "$ready" ]; then break; fi
	say "redis-server did not come up on port $port (attempt $attempt):"
	tail -5 "$tmp/redis.log" >&2 || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
done
if [ -z "$pid" ]; then
	say "could not start redis-server"
	exit 1
fi
say "redis-server pid $pid, version $(redis-cli -p "$port" info server | tr -d '\r' | sed -n 's/^redis_version://p')," \
	"appendfsync $(redis-cli -p "$port" config get appendfsync | tail -1)"

# 3. Seed and run the benchmark.
if [ -n "${REWARDPOOL:-}" ]; then
	cmd=("$REWARDPOOL")
else
	cmd=(go run ./cmd/rewardpool)
fi
say "running: ${cmd[*]} bench --mode redis --addr 127.0.0.1:$port --redis-setup $setup ${pass[*]:-}"
"${cmd[@]}" bench --mode redis --addr "127.0.0.1:$port" --redis-setup "$setup" "${pass[@]}"
