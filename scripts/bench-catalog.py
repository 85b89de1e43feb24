#!/usr/bin/env python3
"""bench-catalog.py: a huge catalog against a normal one (BENCHMARKS.md,
"Catalogs of 1,000,000 items").

    scripts/bench-catalog.py [--rounds 3] [--items 1000000] [--duration 5s]
                             [--bin PATH] [--base PATH] [--out DIR]

Each round, for each binary (--bin, built from this tree unless given; and
--base, an older build to compare with, if given), in alternation:
  1. writes a config: durability always, loopback on a free port, a fresh
     data dir, pool "big" of --items items and pool "k10" of 10,000 items
     (one flow mapping a line, every item limited to 1e9 units so every
     draw writes);
  2. starts `serve` and measures the time until /readyz answers 200 and the
     peak RSS (VmHWM) at that moment: the fresh start-up, which parses the
     config and seeds both pools;
  3. runs `bench --mode stream --concurrency 16 --count 100` on k10, then on
     big (same duration each), and keeps draws/s, p50 and p99, and the peak
     RSS (VmHWM) after the draws (snapshots of the big pool included);
  4. stops the server (SIGTERM), starts it again on the same data dir and
     measures the restart the same way (config parse + snapshot/log
     recovery), then stops it.
Prints the medians over rounds, and the per-round ratios big / k10 (the
same binary, the same minute of a shared machine) with their medians.
Raw results: OUT/runs.jsonl.
"""
import argparse, json, os, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--items", type=int, default=1_000_000)
ap.add_argument("--duration", default="5s")
ap.add_argument("--warmup", default="1s")
ap.add_argument("--bin", default="")
ap.add_argument("--base", default="")
ap.add_argument("--out", default="bench-out/catalog")
ap.add_argument("--skip-draws", action="store_true", help="measure start-up only")
a = ap.parse_args()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.makedirs(a.out, exist_ok=True)
if not a.bin:
    a.bin = os.path.join(a.out, "rewardpool")
    print(f"bench-catalog: building {a.bin}", file=sys.stderr)
    subprocess.run(["go", "build", "-o", os.path.abspath(a.bin), "./cmd/rewardpool"], cwd=root, check=True)
bins = [("new", os.path.abspath(a.bin))] + ([("base", os.path.abspath(a.base))] if a.base else [])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def write_config(path, addr, data):
    with open(path, "w") as f:
        f.write(f"listen: {addr}\ndata_dir: {data}\ndurability: always\nlog:\n  level: warn\npools:\n")
        for name, n in (("k10", 10_000), ("big", a.items)):
            f.write(f"  - name: {name}\n    items:\n")
            f.writelines(f"      - {{id: item{i+1:07d}, quantity: 1000000000, weight: {i*37%100+1}}}\n" for i in range(n))


def start(binary, cfg, addr, log):
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "serve", "--config", cfg], stdout=log, stderr=log)
    deadline = t0 + 600
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"serve exited with {p.returncode}; see {log.name}")
        try:
            if urllib.request.urlopen(f"http://{addr}/readyz", timeout=1).status == 200:
                break
        except Exception:
            pass
        time.sleep(0.02)
    else:
        p.kill()
        raise SystemExit("serve not ready in 600 s")
    took = time.monotonic() - t0
    return p, took, vmhwm(p.pid), cpu_seconds(p.pid)


def vmhwm(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid):
    """user + system CPU time of pid so far: on a shared machine the wall
    time of a start-up depends on the neighbours, its CPU time much less."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def bench(binary, addr, pool):
    r = subprocess.run([binary, "bench", "--addr", addr, "--pool", pool, "--mode", "stream", "--concurrency", "16",
                        "--count", "100", "--duration", a.duration, "--warmup", a.warmup, "--json"],
                       capture_output=True, text=True, check=True)
    j = json.loads(r.stdout)
    return {"draws_per_sec": j["draws_per_sec"], "p50_us": j["latency_us"]["p50"], "p99_us": j["latency_us"]["p99"], "errors": j["errors"]}


runs = open(os.path.join(a.out, "runs.jsonl"), "w")
results = {label: [] for label, _ in bins}
for rnd in range(a.rounds):
    for label, binary in (bins if rnd % 2 == 0 else bins[::-1]):
        with tempfile.TemporaryDirectory(prefix="rpcat.") as tmp:
            addr = f"127.0.0.1:{free_port()}"
            cfg = os.path.join(tmp, "config.yaml")
            write_config(cfg, addr, os.path.join(tmp, "data"))
            rec = {"round": rnd, "bin": label, "items": a.items, "load": open("/proc/loadavg").read().split()[0]}
            with open(os.path.join(a.out, f"serve-{label}.log"), "w") as log:
                p, rec["start_s"], rec["start_rss"], rec["start_cpu_s"] = start(binary, cfg, addr, log)
                try:
                    if not a.skip_draws:
                        rec["k10"] = bench(binary, addr, "k10")
                        rec["big"] = bench(binary, addr, "big")
                        rec["rss_after_draws"] = vmhwm(p.pid)
                finally:
                    stop(p)
                p, rec["restart_s"], rec["restart_rss"], rec["restart_cpu_s"] = start(binary, cfg, addr, log)
                stop(p)
            runs.write(json.dumps(rec) + "\n")
            runs.flush()
            print(json.dumps(rec), file=sys.stderr)
            results[label].append(rec)

med = statistics.median
print(f"\n{a.rounds} rounds, {a.items} items; medians (per-round ratios big/k10 taken in the same round)")
print("| build | fresh start (CPU) | peak RSS at ready | restart (CPU) | peak RSS at ready | count=100 draws/s k10 | big | big/k10 | p99 k10 | p99 big | p99 big/k10 | peak RSS after draws |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for label, rs in results.items():
    row = [label, f"{med(r['start_s'] for r in rs):.2f} s ({med(r['start_cpu_s'] for r in rs):.2f} s)", f"{med(r['start_rss'] for r in rs)/2**20:.0f} MiB",
           f"{med(r['restart_s'] for r in rs):.2f} s ({med(r['restart_cpu_s'] for r in rs):.2f} s)", f"{med(r['restart_rss'] for r in rs)/2**20:.0f} MiB"]
    if not a.skip_draws:
        row += [f"{med(r['k10']['draws_per_sec'] for r in rs):,.0f}", f"{med(r['big']['draws_per_sec'] for r in rs):,.0f}",
                f"{med(r['big']['draws_per_sec']/r['k10']['draws_per_sec'] for r in rs):.2f}",
                f"{med(r['k10']['p99_us'] for r in rs)/1000:.1f} ms", f"{med(r['big']['p99_us'] for r in rs)/1000:.1f} ms",
                f"{med(r['big']['p99_us']/r['k10']['p99_us'] for r in rs):.2f}",
                f"{med(r['rss_after_draws'] for r in rs)/2**20:.0f} MiB"]
    else:
        row += ["—"] * 7
    print("| " + " | ".join(row) + " |")
if len(bins) == 2:
    n, b = results["new"], results["base"]
    print(f"\nper-round ratios base/new: fresh start {med(x['start_s']/y['start_s'] for x, y in zip(b, n)):.1f}×, "
          f"peak RSS {med(x['start_rss']/y['start_rss'] for x, y in zip(b, n)):.1f}×, restart {med(x['restart_s']/y['restart_s'] for x, y in zip(b, n)):.1f}×")
