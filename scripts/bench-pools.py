#!/usr/bin/env python3
"""bench-pools.py: many pools sharing group commit (BENCHMARKS.md, "Many pools").

Starts `rewardpool serve` (durability always) with POOLS pools of ITEMS items
each on loopback, and per round measures over HTTP, with `rewardpool bench`:
  one  = 1 pool  x CLIENTS clients
  many = CLIENTS pools x 1 client each (one bench spreading its workers)
once with group_commit: node (the node journal) and once with group_commit:
pool (each pool fsyncs its own log), alternating. It prints each round's
draws/s and the medians of the per-round ratios many/one.

  scripts/bench-pools.py            (env: ROUNDS=5 SECONDS=5 CLIENTS=16 ITEMS=10000 BIN=...)
"""
import json, os, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

ROUNDS = int(os.environ.get("ROUNDS", 5))
SECONDS = int(os.environ.get("SECONDS", 5))
CLIENTS = int(os.environ.get("CLIENTS", 16))
ITEMS = int(os.environ.get("ITEMS", 10000))
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)
bin_ = os.environ.get("BIN")
if not bin_:
    bin_ = "bench-out/rewardpool"
    os.makedirs("bench-out", exist_ok=True)
    print("bench-pools: building", bin_, file=sys.stderr)
    subprocess.run(["go", "build", "-o", bin_, "./cmd/rewardpool"], check=True)


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def config(path, addr, data, mode):
    lines = [f"listen: {addr}", f"data_dir: {data}", "durability: always",
             f"group_commit: {mode}", "log:", "  level: warn", "pools:"]
    items = "".join(f"      - {{id: i{k}, quantity: -1, weight: {1 + k % 100}}}\n" for k in range(ITEMS))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
        for p in range(CLIENTS):
            f.write(f"  - name: p{p:02d}\n    items:\n")
            f.write(items)


def bench(addr, pool, clients):
    return subprocess.Popen([bin_, "bench", "--mode", "http", "--addr", addr, "--pool", pool,
                             "--concurrency", str(clients), "--duration", f"{SECONDS}s",
                             "--warmup", "1s", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def rate(procs):
    total = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=SECONDS * 10 + 60)
        rep = json.loads(out)
        total += rep["draws_per_sec"]
    return total


def run(mode, tmp):
    data = os.path.join(tmp, "data-" + mode)
    shutil.rmtree(data, ignore_errors=True)
    addr = f"127.0.0.1:{freeport()}"
    cfg = os.path.join(tmp, "config.yaml")
    config(cfg, addr, data, mode)
    log = open(os.path.join(tmp, "serve.log"), "a")
    srv = subprocess.Popen([bin_, "serve", "--config", cfg], stdout=log, stderr=log)
    try:
        for _ in range(3000):
            try:
                if urllib.request.urlopen(f"http://{addr}/readyz", timeout=1).status == 200:
                    break
            except Exception:
                if srv.poll() is not None:
                    raise SystemExit("serve exited; see " + log.name)
                time.sleep(0.05)
        one = rate([bench(addr, "p00", CLIENTS)])
        many = rate([bench(addr, ",".join(f"p{p:02d}" for p in range(CLIENTS)), CLIENTS)])
        return one, many
    finally:
        srv.terminate()
        srv.wait(timeout=60)


tmp = tempfile.mkdtemp(prefix="rppools.")
try:
    res = {"node": [], "pool": []}
    print("round\tgroup_commit\tone_pool_draws_s\tmany_pools_draws_s\tratio")
    for r in range(1, ROUNDS + 1):
        for mode in ("node", "pool") if r % 2 else ("pool", "node"):
            one, many = run(mode, tmp)
            res[mode].append((one, many))
            print(f"{r}\t{mode}\t{one:.0f}\t{many:.0f}\t{many / one:.2f}", flush=True)
    for mode in ("node", "pool"):
        ratios = [m / o for o, m in res[mode]]
        print(f"median {CLIENTS} pools x 1 client / 1 pool x {CLIENTS} clients, group_commit {mode}: {statistics.median(ratios):.2f}")
    cross = [res["node"][i][1] / res["pool"][i][0] for i in range(ROUNDS)]
    print(f"median {CLIENTS} pools x 1 (node journal) / 1 pool x {CLIENTS} (own log): {statistics.median(cross):.2f}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
