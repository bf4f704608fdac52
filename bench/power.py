#!/usr/bin/env python3
"""`make power`: the function and its Python peer at the CPU share Lambda gives each
memory size, with duration and cost per memory size (aws-lambda-power-tuning's table).

Lambda gives a function CPU in proportion to its memory (1,769 MB buys one vCPU) and
enforces it as a CFS quota: here each subject runs alone inside a cgroup with
`cpu.cfs_period_us` = 20000 and `cpu.cfs_quota_us` = 20000 x MB / 1769 (cgroup v1;
`cpu.max` on v2). The loopback fakes (Runtime API, DynamoDB + S3 over HTTPS) stay
outside the quota, as AWS's services do. Where no cgroup can be written, one line
says so and only the full-core rows are measured.

Per memory size and subject:
- cold: COLD_STARTS fresh processes per request size (9 and 1000 ids), each timed by
  fake-runtime from exec to its first `/next` (init) and from the event's hand-out to
  the answer (the first request, its TLS handshakes included);
- warm: one process, WARM_REQUESTS requests of 9 ids and as many of 1000 ids after
  two of each to warm up, each timed by fake-runtime --serve; peak RSS after them.
  Twice: with fake-aws answering at once (D = 0: the function's own time, which is
  what the memory size changes) and at D = 10 ms per AWS call (a realistic service
  latency: what a caller waits for and Lambda bills; the cost rows use it).

    python3 bench/power.py [--binary PATH] [--sizes 128,256,...] [--delay-ms 0]

Writes bench/results/power.{md,json,svg} and prints one summary line.
"""
import argparse
import json
import math
import os
import pathlib
import random
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import bench  # noqa: E402
from bench import ALBUM, FAKE_AWS, FAKE_RUNTIME, event, lambda_env, random_ids, seeded_ids, stop  # noqa: E402
from fakes import RustFakeAws, ServedRuntime  # noqa: E402

SIZES = (128, 256, 512, 1024, 1769)
# Lambda: 1,769 MB is one vCPU; the quota's period as measured on Lambda (~20 ms).
ONE_VCPU_MB = 1769
PERIOD_US = 20_000
COLD_STARTS = 10
WARM_REQUESTS = 30
# Between warm requests: more than a period, so the quota is refilled, and random, so
# that each request starts at its own point of the period.
GAP_S = (0.025, 0.065)

# Prices, us-east-1, as listed on 2026-12-05 (the figures of the pages below, unchanged
# since the November 2024 DynamoDB on-demand cut):
#   https://aws.amazon.com/lambda/pricing/ (arm64, first 7.5 billion GB-s a month)
#   https://aws.amazon.com/dynamodb/pricing/on-demand/
LAMBDA_ARM64_PER_GB_S = 0.0000133334
LAMBDA_PER_REQUEST = 0.20 / 1e6
DDB_PER_WRU = 0.625 / 1e6
DDB_PER_RRU = 0.125 / 1e6
# Per image deleted: one strongly consistent read of a record under 4 KB (1 RRU) and
# one delete of an item under 1 KB (1 WRU). S3 DELETE requests are free.
DDB_PER_IMAGE = DDB_PER_WRU + DDB_PER_RRU


class Quota:
    """A cgroup holding the CPU share of `mb` of Lambda memory (None: a full core)."""

    def __init__(self, mb, root):
        self.mb, self.root = mb, root
        self.dir = None
        if mb is None or root is None:
            return
        kind, base = root
        self.dir = pathlib.Path(base) / f"image-delete-power-{mb}"
        self.dir.mkdir(exist_ok=True)
        quota = round(PERIOD_US * mb / ONE_VCPU_MB)
        if kind == "v1":
            (self.dir / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.dir / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (self.dir / "cpu.max").write_text(f"{quota} {PERIOD_US}")

    @property
    def label(self):
        return f"{self.mb} MB" if self.dir else "full core"

    def wrapper(self):
        """A command prefix that enters the cgroup and execs the subject (same pid)."""
        if not self.dir:
            return []
        return ["sh", "-c", 'echo 0 > "$0/cgroup.procs" && exec "$@"', str(self.dir)]

    def env(self):
        return {"FAKE_RUNTIME_CGROUP": str(self.dir)} if self.dir else {}

    def close(self):
        if self.dir:
            try:
                self.dir.rmdir()
            except OSError:
                pass  # a process still inside: left for the next run to reuse


def cgroup_root():
    """("v1" | "v2", the cpu controller's directory) when a cgroup can be made and
    given a quota here; None otherwise, with the reason."""
    candidates = [("v1", "/sys/fs/cgroup/cpu")]
    v2 = pathlib.Path("/sys/fs/cgroup/cgroup.controllers")
    if v2.exists() and "cpu" in v2.read_text().split():
        candidates.append(("v2", "/sys/fs/cgroup"))
    reason = "no cgroup cpu controller is mounted"
    for kind, base in candidates:
        probe = pathlib.Path(base) / "image-delete-power-probe"
        try:
            probe.mkdir(exist_ok=True)
            name = "cpu.cfs_quota_us" if kind == "v1" else "cpu.max"
            value = "10000" if kind == "v1" else f"10000 {PERIOD_US}"
            (probe / name).write_text(value)
            probe.rmdir()
            return kind, base
        except OSError as err:
            reason = f"{base}: {err.strerror}"
    print(f"power: cgroups are not writable here ({reason}): full-core rows only", file=sys.stderr)
    return None


def pctl(values, p):
    """The p-th percentile, nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def stats(values):
    return {"median": statistics.median(values), "p90": pctl(values, 90), "mean": statistics.fmean(values),
            "n": len(values)}


def cpu_ms(pid):
    """The CPU time, in ms, that process `pid`'s threads have used so far."""
    total = 0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e6


def cold(subject, quota, mb, n_ids, runs, delay_s):
    """`runs` fresh processes in the quota, each answering one request of `n_ids` over
    HTTPS: (exec -> first /next, hand-out -> answer) in ms of wall time, and the same
    two in ms of CPU time."""
    extra = {**memory_env(mb), **quota.env()}
    results = bench.fake_runtime(subject, runs, seeded_ids(n_ids), delay_s, extra, tls=True)
    for r in results:
        assert r["answer"]["statusCode"] == 200, r["answer"]
    init = [r["exec_to_next_ms"] for r in results]
    first = [r["exec_to_answer_ms"] - r["exec_to_next_ms"] for r in results]
    init_cpu = [r["cpu_to_next_ms"] for r in results if r.get("cpu_to_next_ms") is not None]
    first_cpu = [r["cpu_to_answer_ms"] - r["cpu_to_next_ms"] for r in results
                 if r.get("cpu_to_answer_ms") is not None and r.get("cpu_to_next_ms") is not None]
    return init, first, init_cpu, first_cpu


def warm(subject, quota, mb, runs, delay_s):
    """One process in the quota: `runs` requests of 9 ids, then of 1000, over HTTPS
    after two of each, fake-aws answering after `delay_s`; walls and CPU times in ms,
    and peak RSS in MiB. The requests come GAP_S apart (uniformly drawn), as requests
    reach a Lambda execution environment: each starts at a random point of the quota's
    period, with the quota refilled (back to back, each request would start where the
    one before left the quota, and the rows would hang on that phase)."""
    runtime = ServedRuntime(str(FAKE_RUNTIME))
    aws = RustFakeAws(str(FAKE_AWS), delay_s, ALBUM, tls=True)
    process = subject.start(lambda_env(runtime, aws, memory_env(mb)), quota.wrapper())
    walls = {9: [], 1000: []}
    cpus = {9: [], 1000: []}
    gaps = random.Random(runs)
    try:
        runtime.wait_ready()
        for n in (9, 1000):
            for i in range(runs + 2):
                ids = seeded_ids(9) if n == 9 else random_ids(n)
                time.sleep(gaps.uniform(*GAP_S))
                before = cpu_ms(process.pid)
                wall, response = runtime.invoke(event(ids))
                used = cpu_ms(process.pid) - before
                assert response["statusCode"] == 200, response
                if i >= 2:
                    walls[n].append(wall * 1000)
                    cpus[n].append(used)
        status = pathlib.Path(f"/proc/{process.pid}/status").read_text()
        peak_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    finally:
        stop(process)
        runtime.close()
        aws.close()
    return walls[9], walls[1000], peak_kib / 1024, cpus[9], cpus[1000]


def memory_env(mb):
    return {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(mb or ONE_VCPU_MB)}


def lambda_cost(billed_ms, mb):
    """One invocation's Lambda charge: the request fee and its GB-seconds."""
    return LAMBDA_PER_REQUEST + billed_ms / 1000 * (mb / 1024) * LAMBDA_ARM64_PER_GB_S


def measure(subject, quota, args):
    delay = args.delay_ms / 1000
    mb = quota.mb or ONE_VCPU_MB
    print(f"[power] {subject.name} at {quota.label}: cold starts", file=sys.stderr)
    init9, first9, init9_cpu, first9_cpu = cold(subject, quota, quota.mb, 9, args.cold_starts, delay)
    init1000, first1000, init1000_cpu, first1000_cpu = cold(subject, quota, quota.mb, 1000, args.cold_starts, delay)
    print(f"[power] {subject.name} at {quota.label}: warm requests", file=sys.stderr)
    warm9_d0, warm1000_d0, peak, warm9_cpu, warm1000_cpu = warm(subject, quota, quota.mb, args.warm_requests, delay)
    print(f"[power] {subject.name} at {quota.label}: warm requests at D = {args.billed_delay_ms} ms", file=sys.stderr)
    warm9, warm1000, peak_d, _, _ = warm(subject, quota, quota.mb, args.warm_requests, args.billed_delay_ms / 1000)
    rows = {
        "init_ms": stats(init9 + init1000),
        "first_9_tls_ms": stats(first9),
        "first_1000_tls_ms": stats(first1000),
        "warm_9_ms": stats(warm9_d0),
        "warm_1000_ms": stats(warm1000_d0),
        "warm_9_ms_billed_d": stats(warm9),
        "warm_1000_ms_billed_d": stats(warm1000),
        "peak_rss_mib": max(peak, peak_d),
        # CPU time (all threads, /proc schedstat): what the quota turns into wall time.
        "init_cpu_ms": stats(init9_cpu + init1000_cpu),
        "first_9_tls_cpu_ms": stats(first9_cpu),
        "first_1000_tls_cpu_ms": stats(first1000_cpu),
        "warm_9_cpu_ms": stats(warm9_cpu),
        "warm_1000_cpu_ms": stats(warm1000_cpu),
    }
    # Lambda bills each invocation by the ms, rounded up, and a cold start's init too;
    # warm requests at the realistic D, the cold start as measured (D = 0).
    billed = {
        "warm_9": statistics.median(math.ceil(w) for w in warm9),
        "warm_1000": statistics.median(math.ceil(w) for w in warm1000),
        "cold_9": statistics.median(math.ceil(i + f) for i, f in zip(init9, first9)),
    }
    rows["billed_ms"] = billed
    rows["cost"] = {
        # per million warm seed requests (9 ids), Lambda alone and with DynamoDB
        "per_m_requests_9": 1e6 * lambda_cost(billed["warm_9"], mb),
        "per_m_requests_9_with_ddb": 1e6 * (lambda_cost(billed["warm_9"], mb) + 9 * DDB_PER_IMAGE),
        # per million images, deleted 1000 per warm request, with DynamoDB
        "per_m_images": 1e3 * lambda_cost(billed["warm_1000"], mb) + 1e6 * DDB_PER_IMAGE,
        "per_m_images_lambda": 1e3 * lambda_cost(billed["warm_1000"], mb),
    }
    return rows


def fmt(stat, digits=1):
    return f"{stat['median']:.{digits}f} / {stat['p90']:.{digits}f}"


def table(results, sizes, delay_ms, billed_delay_ms):
    head = ["| row | subject | " + " | ".join(results["labels"][str(s)] for s in sizes) + " |",
            "|---|---|" + "---|" * len(sizes)]
    lines = []
    spec = [
        ("init: exec -> first /next, ms (median / p90)", lambda r: fmt(r["init_ms"], 2)),
        ("1st request after cold start, 9 ids, TLS, ms", lambda r: fmt(r["first_9_tls_ms"], 2)),
        ("1st request after cold start, 1000 ids, TLS, ms", lambda r: fmt(r["first_1000_tls_ms"])),
        ("warm, 9 ids, ms", lambda r: fmt(r["warm_9_ms"], 2)),
        ("warm, 1000 ids, ms", lambda r: fmt(r["warm_1000_ms"])),
        (f"warm, 9 ids, ms, D = {billed_delay_ms:g} ms", lambda r: fmt(r["warm_9_ms_billed_d"], 2)),
        (f"warm, 1000 ids, ms, D = {billed_delay_ms:g} ms", lambda r: fmt(r["warm_1000_ms_billed_d"])),
        ("peak RSS, MiB", lambda r: f"{r['peak_rss_mib']:.1f}"),
        (f"billed ms: warm 9 ids / warm 1000 ids (D = {billed_delay_ms:g} ms) / cold 9 ids (init + request)",
         lambda r: f"{r['billed_ms']['warm_9']:.0f} / {r['billed_ms']['warm_1000']:.0f} / {r['billed_ms']['cold_9']:.0f}"),
        ("$ per million warm 9-id requests: Lambda / with DynamoDB",
         lambda r: f"{r['cost']['per_m_requests_9']:.2f} / {r['cost']['per_m_requests_9_with_ddb']:.2f}"),
        ("$ per million images (1000 per request): Lambda / with DynamoDB",
         lambda r: f"{r['cost']['per_m_images_lambda']:.4f} / {r['cost']['per_m_images']:.4f}"),
    ]
    for label, cell in spec:
        for subject in ("rust", "python"):
            if not results[subject]:
                continue
            cells = [cell(results[subject][str(s)]) for s in sizes]
            lines.append(f"| {label} | {subject} | " + " | ".join(cells) + " |")
    return "\n".join(head + lines) + (
        f"\n\nD = {delay_ms:g} ms per AWS call (fake-aws over HTTPS on loopback) unless a row says "
        f"otherwise; cost rows at D = {billed_delay_ms:g} ms.")


def targets(results, sizes):
    """The issue's targets, each (text, met)."""
    rust, peer = results["rust"], results["python"]
    out = []
    keys = ["init_ms", "first_9_tls_ms", "first_1000_tls_ms", "warm_9_ms", "warm_1000_ms"]
    if peer:
        behind = [
            f"{results['labels'][str(s)]} {k}"
            for s in sizes
            for k in keys
            if rust[str(s)][k]["median"] >= peer[str(s)][k]["median"]
        ] + [
            f"{results['labels'][str(s)]} peak RSS"
            for s in sizes
            if rust[str(s)]["peak_rss_mib"] >= peer[str(s)]["peak_rss_mib"]
        ]
        out.append((f"ahead of the peer on every row at every size{': behind on ' + ', '.join(behind) if behind else ''}", not behind))
    if "256" in rust:
        r = rust["256"]
        out.append((f"256 MB: init {r['init_ms']['median']:.2f} ms <= 15 ms", r["init_ms"]["median"] <= 15))
        ratio = r["first_9_tls_ms"]["median"] / r["warm_9_ms"]["median"]
        out.append((f"256 MB: 1st 9-id request (TLS) / warm 9-id = {ratio:.2f} <= 3", ratio <= 3))
        if peer:
            faster = peer["256"]["warm_9_ms"]["median"] / r["warm_9_ms"]["median"]
            out.append((f"256 MB: warm 9 ids {faster:.1f}x faster than the peer (>= 10x)", faster >= 10))
    if "128" in rust and "1769" in rust:
        for key, d in (("warm_1000_ms", f"D = {results['delay_ms']:g} ms"),
                       ("warm_1000_ms_billed_d", f"D = {results['billed_delay_ms']:g} ms")):
            ratio = rust["128"][key]["median"] / rust["1769"][key]["median"]
            out.append((f"128 MB: warm 1000 ids at {ratio:.2f}x the 1769 MB wall, {d} (<= 2x)", ratio <= 2))
    return out


def chart(results, sizes, path):
    """aws-lambda-power-tuning's chart: duration (solid) and cost (dashed) against
    memory, one panel per request size, Rust and the peer, log scales."""
    d = f"D = {results['billed_delay_ms']:g} ms"
    panels = [(f"warm 9-id request, {d}", "warm_9_ms_billed_d", "per_m_requests_9", "$ / M requests"),
              (f"warm 1000-id request, {d}", "warm_1000_ms_billed_d", "per_m_images_lambda", "Lambda $ / M images")]
    width, height, pw = 960, 340, 400
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
             '<text x="10" y="18" font-weight="bold">Duration (solid, left axis, ms) and Lambda cost (dashed, right axis) against memory; green: Rust, grey: Python peer</text>']
    colours = {"rust": "#2e7d32", "python": "#757575"}
    for p, (title, dkey, ckey, cunit) in enumerate(panels):
        x0, y0, y1 = 60 + p * (pw + 50), 300, 50
        subjects = [s for s in ("rust", "python") if results[s]]
        durs = [results[s][str(m)][dkey]["median"] for s in subjects for m in sizes]
        costs = [results[s][str(m)]["cost"][ckey] for s in subjects for m in sizes]

        def scale(values):
            lo, hi = math.log10(min(values) / 1.5), math.log10(max(values) * 1.5)
            return lambda v: y0 - (y0 - y1) * (math.log10(v) - lo) / (hi - lo)

        yd, yc = scale(durs), scale(costs)
        x = lambda i: x0 + 20 + (pw - 40) * i / max(1, len(sizes) - 1)
        parts += [f'<text x="{x0}" y="40" font-weight="bold">{title}</text>',
                  f'<line x1="{x0}" y1="{y0}" x2="{x0 + pw}" y2="{y0}" stroke="#000"/>',
                  f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#000"/>',
                  f'<line x1="{x0 + pw}" y1="{y0}" x2="{x0 + pw}" y2="{y1}" stroke="#000"/>',
                  f'<text x="{x0 + pw - 80}" y="{y1 - 4}">{cunit}</text>']
        for i, m in enumerate(sizes):
            parts.append(f'<text x="{x(i) - 14:.0f}" y="{y0 + 14}">{results["labels"][str(m)]}</text>')
        for s in subjects:
            d = [results[s][str(m)][dkey]["median"] for m in sizes]
            c = [results[s][str(m)]["cost"][ckey] for m in sizes]
            parts.append(f'<polyline fill="none" stroke="{colours[s]}" stroke-width="2" points="{" ".join(f"{x(i):.1f},{yd(v):.1f}" for i, v in enumerate(d))}"/>')
            parts.append(f'<polyline fill="none" stroke="{colours[s]}" stroke-width="2" stroke-dasharray="5,4" points="{" ".join(f"{x(i):.1f},{yc(v):.1f}" for i, v in enumerate(c))}"/>')
            for i, v in enumerate(d):
                parts.append(f'<text x="{x(i) + 3:.1f}" y="{yd(v) - 3:.1f}" fill="{colours[s]}">{v:.3g}</text>')
            for i, v in enumerate(c):
                parts.append(f'<text x="{x(i) + 3:.1f}" y="{yc(v) + 11:.1f}" fill="{colours[s]}">${v:.3g}</text>')
    parts.append("</svg>")
    pathlib.Path(path).write_text("\n".join(parts) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(ROOT / "target/lambda/bench/bootstrap"))
    parser.add_argument("--python", default=str(ROOT / ".tools/bench/bin/python"), help="the peer's interpreter")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--billed-delay-ms", type=float, default=10.0, help="D of the warm rows that cost is computed from")
    parser.add_argument("--cold-starts", type=int, default=COLD_STARTS)
    parser.add_argument("--warm-requests", type=int, default=WARM_REQUESTS)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()

    root = cgroup_root()
    sizes = [int(s) for s in args.sizes.split(",")] if root else [None]
    started = time.time()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "delay_ms": args.delay_ms,
               "billed_delay_ms": args.billed_delay_ms, "cgroup": root and root[0],
               "period_us": PERIOD_US, "cold_starts": args.cold_starts, "warm_requests": args.warm_requests,
               "labels": {}, "rust": {}, "python": {}}
    subjects = [bench.rust_subject(args.binary)] + ([] if args.skip_peer else [bench.python_subject(args.python)])
    for mb in sizes:
        quota = Quota(mb, root)
        results["labels"][str(mb)] = quota.label
        try:
            for subject in subjects:
                results[subject.name][str(mb)] = measure(subject, quota, args)
        finally:
            quota.close()
    keys = [str(s) for s in sizes]
    text = table(results, keys, args.delay_ms, args.billed_delay_ms)
    checks = targets(results, keys)
    results["targets"] = [{"target": t, "met": met} for t, met in checks]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "power.json").write_text(json.dumps(results, indent=2) + "\n")
    check_text = "\n".join(f"- {'met' if met else 'MISSED'}: {t}" for t, met in checks)
    (out / "power.md").write_text(
        f"# Power rows ({results['date']})\n\nCommand: `make power` (scripts/power.sh -> bench/power.py). "
        f"CPU quota: cgroup {results['cgroup'] or 'none'}, period {PERIOD_US} us, quota = period x MB / {ONE_VCPU_MB}; "
        f"{args.cold_starts} cold starts per request size, {args.warm_requests} warm requests per size; "
        f"cells are median / p90. Measured on this machine's x86_64 cores; prices are arm64's.\n\n{text}\n\n{check_text}\n"
    )
    chart(results, keys, out / "power.svg")
    print(text)
    print(check_text)
    r = results["rust"]
    summary = ", ".join(
        f"{results['labels'][k]}: warm 9 {r[k]['warm_9_ms']['median']:.2f} ms"
        + (f" ({results['python'][k]['warm_9_ms']['median'] / r[k]['warm_9_ms']['median']:.0f}x peer)" if results["python"] else "")
        + f", warm 1000 {r[k]['warm_1000_ms']['median']:.1f} ms, init {r[k]['init_ms']['median']:.1f} ms"
        for k in keys
    )
    met = sum(1 for _, ok in checks if ok)
    print(f"power: {summary}; targets {met}/{len(checks)} met; {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
