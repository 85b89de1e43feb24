#!/usr/bin/env bash
# bench-idle-pools.sh: what idle pools cost the service (BENCHMARKS.md,
# "Idle pools"): start `rewardpool serve` with POOLS pools of 2 items each,
# first on an empty data directory (every pool is created), then again on
# the same directory (every pool is recovered), and print per start:
# seconds until /readyz answers 200, RSS once ready (VmRSS) and its peak
# (VmHWM), and the disk the data directory holds (du).
#
#   scripts/bench-idle-pools.sh [OUT_DIR]      (default bench-out/idle)
#
# Environment: POOLS (500), ROUNDS (3), BIN (built here to
# bench-out/rewardpool), PPROF=1 to save a heap profile of each ready
# server to OUT_DIR (served with --pprof on a loopback port).
set -euo pipefail

say() { echo "bench-idle-pools: $*" >&2; }

cd "$(dirname "$0")/.."
out="${1:-bench-out/idle}"
pools="${POOLS:-500}"
rounds="${ROUNDS:-3}"
bin="${BIN:-bench-out/rewardpool}"
mkdir -p "$out"
if [ -z "${BIN:-}" ]; then
	mkdir -p "$(dirname "$bin")"
	say "building $bin"
	go build -o "$bin" ./cmd/rewardpool
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/rpidle.XXXXXX")"
pid=""
stop() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			say "serve (pid $pid) did not stop in 60 s; SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
	pid=""
}
cleanup() {
	status=$?
	stop
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start LABEL ROUND: one start of serve on $tmp/data; appends a line to runs.tsv
start() {
	local label=$1 round=$2 addr pprof t0 t1 code
	addr="127.0.0.1:$(freeport)"
	pprof="127.0.0.1:$(freeport)"
	python3 - "$tmp/config.yaml" "$addr" "$tmp/data" "$pools" <<'PY'
import sys
path, addr, data, n = sys.argv[1:]
lines = [f"listen: {addr}", f"data_dir: {data}", "durability: always", "log:", "  level: warn", "pools:"]
for i in range(int(n)):
    lines += [f"  - name: p{i:04d}", "    items:",
              "      - {id: gold, quantity: 1000000, weight: 1}",
              "      - {id: silver, quantity: -1, weight: 9}"]
open(path, "w").write("\n".join(lines) + "\n")
PY
	t0=$(date +%s.%N)
	"$bin" serve --config "$tmp/config.yaml" --pprof "$pprof" >>"$tmp/serve.log" 2>&1 &
	pid=$!
	code=0
	for _ in $(seq 1 6000); do # 10 minutes at most
		kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; exit 1; }
		code="$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/readyz" || true)"
		[ "$code" = 200 ] && break
		sleep 0.02
	done
	[ "$code" = 200 ] || { say "serve never became ready"; exit 1; }
	t1=$(date +%s.%N)
	local rss hwm du
	rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
	du=$(du -sk "$tmp/data" | cut -f1)
	if [ "${PPROF:-}" = 1 ]; then
		curl -s -o "$out/heap-$label-$round.pb.gz" "http://$pprof/debug/pprof/heap"
	fi
	printf '%s\t%s\t%.3f\t%d\t%d\t%d\n' "$label" "$round" "$(echo "$t1 - $t0" | bc)" \
		"$((rss / 1024))" "$((hwm / 1024))" "$((du / 1024))" | tee -a "$out/runs.tsv" >&2
	stop
}

printf 'start\tround\tready_s\trss_mib\tpeak_rss_mib\tdisk_mib\n' >"$out/runs.tsv"
for r in $(seq 1 "$rounds"); do
	rm -rf "$tmp/data"
	start create "$r"
	start reopen "$r"
done
cp "$tmp/serve.log" "$out/serve.log"

python3 - "$out/runs.tsv" "$pools" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
n = int(sys.argv[2])
print(f"{n} pools of 2 items; medians of {len(rows)//2} rounds")
print("| start | ready (s) | RSS (MiB) | peak RSS (MiB) | RSS per pool (KiB) | disk (MiB) |")
print("|---|---|---|---|---|---|")
for label in ("create", "reopen"):
    rs = [r for r in rows if r["start"] == label]
    med = lambda k: statistics.median(float(r[k]) for r in rs)
    print(f"| {label} | {med('ready_s'):.2f} | {med('rss_mib'):.0f} | {med('peak_rss_mib'):.0f} | "
          f"{med('rss_mib')*1024/n:.0f} | {med('disk_mib'):.0f} |")
PY
