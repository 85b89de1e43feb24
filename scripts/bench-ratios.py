#!/usr/bin/env python3
"""bench-ratios.py: the ratio table of issue 9 ("What it must show"), as a
tool users can run.

    scripts/bench-ratios.py [--rounds 3] [--duration 5s] [--warmup 1s]
                            [--out bench-out/ratios] [--no-redis] [--quick]

It starts, on loopback, each on a free port:
  - `rewardpool serve` (durability always; pool `big` = the 10,000-item
    catalog of `bench --redis-setup gen:10000`, 16 more pools `m00`..`m15`
    with the same catalog, and pool `std` = the 6-item catalog of gen:6;
    every item holds 1e9 units, so every draw writes);
  - `scripts/noopserver`: a bare net/http handler and a bare gRPC service
    that answer draws with placeholders (the transport's own floor);
  - Redis 7 with appendonly yes, appendfsync always, save '' (the Lua draw
    script of `bench --mode redis`, seeded with the same catalog). When
    redis-server is missing it is installed with apt-get when running as
    root (`make redis-server` does the same); otherwise the Redis rows are
    skipped with a message.
Each round runs every workload once, one at a time (16 clients; `rewardpool
bench` is the client for all three servers), alternating which system of
a compared pair goes first. Each ratio is computed inside its round, and the
table shows the median of the per-round ratios, with the rounds' values.
Around every rewardpool run it reads /metrics (fsync latency histogram of
the pool) and every server's CPU time (/proc/PID/stat), for the server CPU
per request. Not part of `make test`: it takes about 2 minutes a round.
Raw results: OUT/runs.jsonl, one line per run.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
MANY = [f"m{i:02d}" for i in range(16)]


def say(*a):
    print("bench-ratios:", *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def write_config(path, addr, data):
    items = [f"      - {{id: item{i+1:05d}, quantity: 1000000000, weight: {i*37%100+1}}}" for i in range(10000)]
    lines = [f"listen: {addr}", f"data_dir: {data}", "durability: always", "log:", "  level: warn", "pools:"]
    lines += ["  - name: std", "    items:"]  # the 6-item catalog of bench --redis-setup gen:6
    for i, w in zip(["diamond", "ruby", "gold", "silver", "emerald", "bronze"], [10, 20, 30, 15, 5, 20]):
        lines.append(f"      - {{id: {i}, quantity: 1000000000, weight: {w}}}")
    for name in ["big"] + MANY:
        lines += [f"  - name: {name}", "    items:"] + items
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def metrics(addr):
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line.startswith("rewardpool_wal_fsync_duration_seconds") or line.startswith("rewardpool_batch_draws"):
                name, val = line.rsplit(" ", 1)
                out[name] = float(val)
        return out


def fsync_stats(before, after, pools):
    """fsync count, mean and p50 (interpolated inside its histogram bucket,
    as histogram_quantile does) of the pools between two scrapes."""
    fs = "rewardpool_wal_fsync_duration_seconds"
    d = {k: v - before.get(k, 0.0) for k, v in after.items()}
    sel = lambda k: any(f'pool="{p}"' in k for p in pools)
    n = sum(v for k, v in d.items() if k.startswith(fs + "_count") and sel(k))
    s = sum(v for k, v in d.items() if k.startswith(fs + "_sum") and sel(k))
    out = {"fsyncs": n}
    if n <= 0:
        return out
    out["fsync_mean_us"] = s / n * 1e6
    buckets = {}
    for k, v in d.items():
        if k.startswith(fs + "_bucket") and sel(k):
            le = k.split('le="')[1].split('"')[0]
            le = float("inf") if le == "+Inf" else float(le)
            buckets[le] = buckets.get(le, 0.0) + v
    rank, prev_le, prev_c = 0.5 * n, 0.0, 0.0
    for le in sorted(buckets):
        c = buckets[le]
        if c >= rank:
            out["fsync_p50_us"] = (prev_le if le == float("inf") else prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)) * 1e6
            break
        prev_le, prev_c = le, c
    bn = sum(v for k, v in d.items() if k.startswith("rewardpool_batch_draws_count") and sel(k))
    bs = sum(v for k, v in d.items() if k.startswith("rewardpool_batch_draws_sum") and sel(k))
    if bn > 0:
        out["draws_per_batch"] = bs / bn
    return out


class Proc:
    """A server this script started; stopped by its pid."""

    def __init__(self, name, argv, log):
        self.name = name
        self.log = open(log, "w")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE if name == "noopserver" else self.log,
                                  stderr=self.log, text=True)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                say(f"{self.name} (pid {self.p.pid}) did not stop in 20 s: SIGKILL")
                self.p.kill()
                self.p.wait()
        self.log.close()


def wait_until(what, ok, proc, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.p.poll() is not None:
            raise SystemExit(f"bench-ratios: {proc.name} exited while {what}; see its log")
        try:
            if ok():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench-ratios: timed out while {what}")


def ensure_redis():
    """Path of redis-server, installing it with apt-get as root if missing;
    None (and a message) when it cannot be had."""
    path = shutil.which("redis-server")
    if path:
        return path
    if os.geteuid() != 0:
        say("redis-server is not installed and this is not root: the Redis rows are skipped"
            " (install it with: sudo make redis-server)")
        return None
    say("redis-server not found: apt-get install -y redis-server (output in the run's apt.log)")
    return None if subprocess.call(["make", "-s", "redis-server"], cwd=ROOT) != 0 else shutil.which("redis-server")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--warmup", default="1s")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-out", "ratios"))
    ap.add_argument("--bin", help="rewardpool binary (default: built into OUT)")
    ap.add_argument("--no-redis", action="store_true", help="leave Redis out")
    ap.add_argument("--quick", action="store_true", help="1 round of 2 s runs: checks the script, measures nothing")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.duration, a.warmup = 1, "2s", "0.5s"
    os.makedirs(a.out, exist_ok=True)
    runs_path = os.path.join(a.out, "runs.jsonl")
    open(runs_path, "w").close()

    binary = a.bin or os.path.join(a.out, "rewardpool")
    noopbin = os.path.join(a.out, "noopserver")
    if not a.bin:
        say("building", binary)
        subprocess.check_call(["go", "build", "-o", binary, "./cmd/rewardpool"], cwd=ROOT)
    subprocess.check_call(["go", "build", "-o", noopbin, "./scripts/noopserver"], cwd=ROOT)

    tmp = tempfile.mkdtemp(prefix="bench-ratios.")
    procs = []
    try:
        # rewardpool
        rp_addr = f"127.0.0.1:{free_port()}"
        write_config(os.path.join(tmp, "config.yaml"), rp_addr, os.path.join(tmp, "data"))
        say("starting rewardpool serve on", rp_addr)
        t0 = time.time()
        rp = Proc("rewardpool", [binary, "serve", "--config", os.path.join(tmp, "config.yaml")], os.path.join(a.out, "serve.log"))
        procs.append(rp)

        def ready():
            with urllib.request.urlopen(f"http://{rp_addr}/readyz", timeout=2) as r:
                return r.status == 200
        wait_until("waiting for /readyz", ready, rp)
        say(f"rewardpool ready in {time.time()-t0:.1f} s (pid {rp.p.pid})")

        # the bare transports
        noop = Proc("noopserver", [noopbin, "--http", f"127.0.0.1:{free_port()}", "--grpc", f"127.0.0.1:{free_port()}"],
                    os.path.join(a.out, "noopserver.log"))
        procs.append(noop)
        addrs = dict(noop.p.stdout.readline().split() for _ in range(2))
        say("noop server: http", addrs["http"], "grpc", addrs["grpc"])

        # Redis
        redis = None
        if a.no_redis:
            say("--no-redis: the Redis rows are skipped")
        else:
            path = ensure_redis()
            if path:
                rport = free_port()
                rdir = os.path.join(tmp, "redis")
                os.makedirs(rdir)
                redis = Proc("redis-server", [path, "--bind", "127.0.0.1", "--port", str(rport), "--dir", rdir,
                                              "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                                              "--daemonize", "no", "--protected-mode", "yes"],
                             os.path.join(a.out, "redis.log"))
                procs.append(redis)

                def pong():
                    with socket.create_connection(("127.0.0.1", rport), timeout=1) as s:
                        s.sendall(b"PING\r\n")
                        return s.recv(16).startswith(b"+PONG")
                wait_until("waiting for redis-server", pong, redis, 30)
                redis.addr = f"127.0.0.1:{rport}"
                ver = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
                say(f"redis-server on {redis.addr} (pid {redis.p.pid}): {ver}")

        def bench(label, system, args, pools=None):
            """One run; returns its record (also appended to runs.jsonl)."""
            if system == "redis" and redis is None:
                return None
            server = {"rewardpool": rp, "noop": noop, "redis": redis}[system]
            addr = {"rewardpool": rp_addr, "noop": addrs["http"] if "http" in args else addrs["grpc"],
                    "redis": redis.addr if redis else ""}[system]
            argv = [binary, "bench", "--addr", addr, "--concurrency", "16", "--duration", a.duration,
                    "--warmup", a.warmup, "--json"] + args
            if system == "redis":
                argv += ["--redis-setup", "gen:10000"]
            before = metrics(rp_addr) if system == "rewardpool" else {}
            c0 = cpu_seconds(server.p.pid)
            res = subprocess.run(argv, capture_output=True, text=True)
            c1 = cpu_seconds(server.p.pid)
            if res.returncode != 0 or not res.stdout.strip():
                raise SystemExit(f"bench-ratios: {label}: exit {res.returncode}\n{res.stderr[-2000:]}")
            rep = json.loads(res.stdout)
            rec = {"label": label, "system": system, "draws_per_sec": rep["draws_per_sec"],
                   "requests_per_sec": rep["requests_per_sec"], "p50_us": rep["latency_us"]["p50"],
                   "p99_us": rep["latency_us"]["p99"], "errors": rep["errors"],
                   "load": float(open("/proc/loadavg").read().split()[0])}
            # CPU over the whole run (warm-up included) per request measured
            # and warmed up: the warm-up's requests are estimated at the
            # measured rate.
            total = rep["requests"] * (1 + rep["warmup_s"] / max(rep["elapsed_s"], 1e-9))
            rec["server_cpu_us_per_request"] = (c1 - c0) * 1e6 / max(total, 1)
            if system == "rewardpool":
                rec.update(fsync_stats(before, metrics(rp_addr), pools or ["big"]))
            with open(runs_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            say(f"{label:28s} {rec['draws_per_sec']:12,.0f} draws/s  p50 {rec['p50_us']:8.0f} µs"
                f"  server CPU {rec['server_cpu_us_per_request']:7.1f} µs/req  load {rec['load']}")
            return rec

        def pair(r, first, second):
            """Runs two workloads, swapping their order every other round."""
            x, y = (first, second) if r % 2 == 0 else (second, first)
            out = {x[0]: bench(*x), y[0]: bench(*y)}
            return out[first[0]], out[second[0]]

        rows = {}

        def add(name, value):
            if value is not None:
                rows.setdefault(name, []).append(value)

        def ratio(x, y):
            return None if x is None or y is None or not y["draws_per_sec"] else x["draws_per_sec"] / y["draws_per_sec"]

        many = ",".join(MANY)
        for r in range(a.rounds):
            say(f"round {r+1} of {a.rounds}")
            m16, m1 = pair(r, ("http 16 pools x 1 client", "rewardpool", ["--mode", "http", "--pool", many], MANY),
                           ("http 1 pool x 16 clients", "rewardpool", ["--mode", "http", "--pool", "m00"], ["m00"]))
            add("many", ratio(m16, m1))
            res = {}
            for mode in ["http", "stream"]:
                d, n = pair(r, (f"{mode} draw", "rewardpool", ["--mode", mode, "--pool", "big"]),
                            (f"{mode} noop route", "rewardpool", ["--mode", mode, "--pool", "big", "--noop"]))
                bare = bench(f"{mode} bare transport", "noop", ["--mode", mode, "--pool", "big"])
                res[mode] = (d, n, bare)
                if d.get("fsync_p50_us"):
                    add(f"lat {mode}", (d["p50_us"] - n["p50_us"]) / d["fsync_p50_us"])
                for k, rec in (("draw", d), ("noop", n), ("bare", bare)):
                    add(f"cpu {mode} {k}", rec["server_cpu_us_per_request"])
            rd = bench("redis draw", "redis", ["--mode", "redis"])
            add("stream vs redis", ratio(res["stream"][0], rd))
            add("http vs redis", ratio(res["http"][0], rd))
            add("bare http vs redis", ratio(res["http"][2], rd))
            add("bare stream vs redis", ratio(res["stream"][2], rd))
            if rd:
                add("cpu redis", rd["server_cpu_us_per_request"])
            s100, p100 = pair(r, ("stream x100 compact", "rewardpool", ["--mode", "stream", "--pool", "big", "--count", "100", "--compact"]),
                              ("redis pipeline 100", "redis", ["--mode", "redis", "--pipeline", "100"]))
            add("x100 vs redis", ratio(s100, p100))
            add("cpu stream x100 per draw", s100["server_cpu_us_per_request"] / 100)
            big = bench("stream x8192 compact", "rewardpool", ["--mode", "stream", "--pool", "big", "--count", "8192", "--compact"])
            add("x8192", big["draws_per_sec"])
            add("cpu stream x8192 per draw", big["server_cpu_us_per_request"] / 8192)
            std = bench("stream x8192 compact, 6 items", "rewardpool",
                        ["--mode", "stream", "--pool", "std", "--count", "8192", "--compact"], ["std"])
            add("x8192 std", std["draws_per_sec"])
            add("cpu stream x8192 std per draw", std["server_cpu_us_per_request"] / 8192)

        print_table(rows, a, redis is not None)
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def fmt(vals, f):
    if not vals:
        return "—", ""
    return f(statistics.median(vals)), ", ".join(f(v) for v in vals)


def print_table(rows, a, have_redis):
    x = lambda v: f"{v:.2f}×"
    u = lambda v: f"{v:.2f}"
    k = lambda v: f"{v/1e6:.2f}M"
    us = lambda v: f"{v:.1f}"
    no_redis = "skipped: no Redis" if not have_redis else "—"
    table = [
        ("16 pools × 1 client ÷ 1 pool × 16 clients (HTTP)", "many", x, "≥ 0.9"),
        ("p50(draw) − p50(no-op route) at 16 clients, in fsync p50s (HTTP)", "lat http", u, "≤ 1.2"),
        ("p50(draw) − p50(no-op route) at 16 clients, in fsync p50s (stream)", "lat stream", u, "≤ 1.2"),
        ("gRPC stream, 16 clients, 1 draw per request ÷ Redis+Lua always", "stream vs redis", x, "≥ 1.5×"),
        ("HTTP, 16 clients, 1 draw per request ÷ Redis+Lua always", "http vs redis", x, "≥ 1.0×"),
        ("gRPC stream, 16 clients, 100 per request (compact) ÷ Redis pipelines of 100", "x100 vs redis", x, "≥ 10×"),
        ("gRPC stream, 16 clients, 8,192 per request (compact), durable draws/s", "x8192", k, "≥ 1,000,000/s"),
        ("the same on the 6-item catalog (pool std)", "x8192 std", k, "—"),
    ]
    print(f"\nIssue 9 ratios: medians of per-round ratios, {a.rounds} rounds of {a.duration} (+{a.warmup} warm-up), "
          "16 clients, 10,000-item catalog, durability always\n")
    print("| workload | median | rounds | target |")
    print("|---|---|---|---|")
    for title, key, f, target in table:
        med, rounds = fmt(rows.get(key), f)
        if med == "—" and "redis" in key:
            med = no_redis
        print(f"| {title} | {med} | {rounds} | {target} |")
    print("| 1M items: start-up / peak RSS / count=100 rate ÷ 10k items | see scripts/bench-catalog.py | | ≤ 5 s / ≤ 600 MB / ≥ 0.8 |")
    print("| 500 small pools: start-up / RSS | see scripts/bench-idle-pools.sh | | ≤ 2 s / ≤ 256 MiB |")
    print("\nThe floors (same rounds):\n")
    print("| | median | rounds |")
    print("|---|---|---|")
    for title, key, f in [
        ("bare net/http no-op server ÷ Redis+Lua always (16 clients)", "bare http vs redis", x),
        ("bare gRPC stream no-op server ÷ Redis+Lua always (16 clients)", "bare stream vs redis", x),
    ]:
        med, rounds = fmt(rows.get(key), f)
        print(f"| {title} | {med if med != '—' else no_redis} | {rounds} |")
    print("\nServer CPU per request, µs (the server process's user+system CPU over the run ÷ requests):\n")
    print("| transport | draw | rewardpool no-op route | bare no-op server |")
    print("|---|---|---|---|")
    for mode in ["http", "stream"]:
        cells = [fmt(rows.get(f"cpu {mode} {k}"), us)[0] for k in ("draw", "noop", "bare")]
        print(f"| {mode}, 1 draw per request | " + " | ".join(cells) + " |")
    print(f"| Redis+Lua, 1 draw per request | {fmt(rows.get('cpu redis'), us)[0]} | | |")
    print(f"| stream, 100 per request (compact), per draw | {fmt(rows.get('cpu stream x100 per draw'), lambda v: f'{v:.2f}')[0]} | | |")
    print(f"| stream, 8,192 per request (compact), per draw | {fmt(rows.get('cpu stream x8192 per draw'), lambda v: f'{v:.3f}')[0]} | | |")
    print(f"| the same on the 6-item catalog, per draw | {fmt(rows.get('cpu stream x8192 std per draw'), lambda v: f'{v:.3f}')[0]} | | |")


if __name__ == "__main__":
    main()
