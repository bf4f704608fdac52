#!/usr/bin/env python3
"""`make bench`: cold start, round trips, memory and size of the release function.

Runs the real release binary (built by cargo-lambda as it is deployed) against the
loopback fakes in fakes.py, prints a table and writes it, with an SVG chart, under
bench/results/. Figures, not pass/fail: nothing here runs in `make test`.

    python3 bench/bench.py [--binary PATH] [--runs 30] [--delay-ms 20]
"""
import argparse
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

from devtoken import mint  # noqa: E402
from seed_data import DEV_SECRET, SEED_ALBUM as ALBUM, SEED_IDS  # noqa: E402
from fakes import FakeRuntime, RustFakeAws  # noqa: E402

FAKE_AWS = ROOT / "target/release/fake-aws"
FAKE_RUNTIME = ROOT / "target/release/fake-runtime"



def event(ids):
    """The seed's request through API Gateway (REST), with these ids and a fresh token."""
    fixture = json.loads((ROOT / "events/apigw-rest-bulk-delete.json").read_text())
    now = int(time.time())
    token = mint(DEV_SECRET, [ALBUM], "image_list", exp=now + 3600, iat=now)
    fixture["headers"]["authorization"] = f'Token token="{token}"'
    fixture["multiValueHeaders"]["authorization"] = [f'Token token="{token}"']
    fixture["body"] = "&".join(f"image_ids[]={i}" for i in ids)
    return fixture


def random_ids(n):
    return [str(uuid.uuid4()) for _ in range(n)]


def lambda_env(runtime, aws, extra=None):
    """Lambda's environment for the function (`runtime` None: fake-runtime sets it)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_FUNCTION_NAME": "delete-images",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/delete-images",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/29/[$LATEST]0123456789abcdef",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_DYNAMODB": aws.url,
        "AWS_ENDPOINT_URL_S3": aws.url,
        "IMAGES_TABLE": "images",
        "IMAGES_BUCKET": "images",
        "JWT_SECRET": DEV_SECRET,
        "RUST_LOG": "warn",
    }
    if aws.ca_path:
        env["AWS_CA_BUNDLE"] = aws.ca_path  # HTTPS to fake-aws: trust its throwaway CA
    if runtime is not None:
        env["AWS_LAMBDA_RUNTIME_API"] = runtime.address
    env.update(extra or {})
    return env


class Subject:
    """A function under test: how to start it as Lambda would."""

    def __init__(self, name, command, cwd=None, env=None):
        self.name, self.command, self.cwd, self.env = name, command, cwd, env or {}

    def start(self, env, wrapper=()):
        return subprocess.Popen(
            [*wrapper, *self.command],
            env={**env, **self.env},
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def rust_subject(binary):
    return Subject("rust", [binary])


def python_subject(python):
    return Subject(
        "python",
        [python, "-m", "awslambdaric", "handler.handler"],
        cwd=str(ROOT / "bench/peer"),
        env={"LAMBDA_TASK_ROOT": str(ROOT / "bench/peer"), "PYTHONDONTWRITEBYTECODE": "1"},
    )


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answer(runtime, timeout=120):
    at, path, body = runtime.answers.get(timeout=timeout)
    if not path.endswith("/response"):
        raise RuntimeError(f"the function reported an error: {path} {body[:300]!r}")
    return at, json.loads(body)


def fake_runtime(subject, runs, ids, delay_s=0.0, extra_env=None):
    """Runs bench/fakes' fake-runtime (which spawns the function) over one event of
    `ids`, with fake-aws at `delay_s`; its JSON lines, parsed."""
    aws = RustFakeAws(str(FAKE_AWS), delay_s, ALBUM)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as event_file:
            json.dump(event(ids), event_file)
            event_file.flush()
            env = {**lambda_env(None, aws, extra_env), **subject.env}
            out = subprocess.run(
                [str(FAKE_RUNTIME), str(runs), event_file.name, "--", *subject.command],
                env=env,
                cwd=subject.cwd,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
    finally:
        aws.close()
    return [json.loads(line) for line in out.splitlines()]


def cold_starts(subject, runs):
    """exec -> first /next and exec -> first answer of a 1-id delete, `runs` times,
    timed by fake-runtime, which spawns the function itself."""
    results = fake_runtime(subject, runs, SEED_IDS[:1])
    for run in results:
        assert run["answer"]["statusCode"] == 200, run["answer"]
    return {
        "exec_to_next_ms": [r["exec_to_next_ms"] for r in results],
        "exec_to_answer_ms": [r["exec_to_answer_ms"] for r in results],
    }


def throughput(subject, delay_s, max_concurrency, invocations=200):
    """Invocations per second of the seed's request (9 ids) with D per AWS call, with
    `AWS_LAMBDA_MAX_CONCURRENCY` = `max_concurrency` (Lambda Managed Instances)."""
    extra = {"AWS_LAMBDA_MAX_CONCURRENCY": str(max_concurrency), "FAKE_RUNTIME_INVOCATIONS": str(invocations)}
    return fake_runtime(subject, 1, SEED_IDS, delay_s, extra)[0]["per_second"]


def callgrind_totals(path):
    for line in pathlib.Path(path).read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError("no callgrind totals")


def instructions(subject, requests, tls=False, stats=None, extra=None):
    """Instructions (callgrind) from exec until the function, having answered
    `requests`, asks for the next event; the run is stopped there. With `stats` (a
    dict), fake-aws's counters are stored in it."""
    runtime, aws = FakeRuntime(), RustFakeAws(str(FAKE_AWS), 0.0, ALBUM, tls=tls)
    out = tempfile.NamedTemporaryFile(suffix=".callgrind", delete=False).name
    for ids in requests:
        runtime.events.put(event(ids))
    try:
        env = {**lambda_env(runtime, aws, extra), "PATH": os.environ["PATH"]}
        process = subject.start(env, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
        deadline = time.time() + 1800
        while runtime.next_calls <= len(requests) and time.time() < deadline and process.poll() is None:
            time.sleep(0.02)
        for _ in requests:
            answer(runtime, timeout=1)
        stop(process)
        if stats is not None:
            stats.update(aws.snapshot())
        return callgrind_totals(out)
    finally:
        runtime.close()
        aws.close()
        pathlib.Path(out).unlink(missing_ok=True)


def warm_instructions(subject, n_ids):
    """Instructions of one warm request of `n_ids` ids: (3 requests - 1 request) / 2."""
    one = instructions(subject, [SEED_IDS[:1]])
    three = instructions(subject, [SEED_IDS[:1], seeded_ids(n_ids), seeded_ids(n_ids)])
    # the first request of each run is the same, so the difference is two warm requests
    return (three - one) / 2


def first_request_tls(subject, sizes, walls=5):
    """The first request after a cold start, over HTTPS (fake-aws with a throwaway CA):
    its instructions (callgrind: exec -> next `/next` after it, less exec -> first
    `/next`), the TLS handshakes it made, and its wall time (median of `walls` fresh
    processes, D = 0); plus, for the ratio, a warm request of each size over TLS."""
    to_next = instructions(subject, [], tls=True)
    figures = {"to_first_next": to_next}
    for n in sizes:
        stats = {}
        first = instructions(subject, [seeded_ids(n)], tls=True, stats=stats) - to_next
        one = instructions(subject, [seeded_ids(n)], tls=True)
        three = instructions(subject, [seeded_ids(n)] * 3, tls=True)
        figures[n] = {
            "instructions": first,
            "warm_instructions": (three - one) / 2,
            "tls_full": stats.get("tls_full"),
            "tls_resumed": stats.get("tls_resumed"),
            "wall_ms": median([first_request_wall(subject, n) for _ in range(walls)]),
        }
    if subject.name == "rust":
        # The trade-off of PRECONNECT: init pays what the first request saves.
        off = {"PRECONNECT": "false"}
        to_next_off = instructions(subject, [], tls=True, extra=off)
        first_off = instructions(subject, [seeded_ids(9)], tls=True, extra=off) - to_next_off
        figures["preconnect_off"] = {"to_first_next": to_next_off, "first_9": first_off}
    return figures


def first_request_wall(subject, n):
    """Milliseconds from handing the first event to its answer, over HTTPS, D = 0."""
    runtime, aws = FakeRuntime(), RustFakeAws(str(FAKE_AWS), 0.0, ALBUM, tls=True)
    process = subject.start(lambda_env(runtime, aws))
    try:
        deadline = time.time() + 60
        while runtime.next_calls < 1 and time.time() < deadline and process.poll() is None:
            time.sleep(0.005)
        t0 = time.perf_counter_ns()
        runtime.events.put(event(seeded_ids(n)))
        at, response = answer(runtime)
        assert response["statusCode"] == 200, response
        return (at - t0) / 1e6
    finally:
        stop(process)
        runtime.close()
        aws.close()


def seeded_ids(n):
    return SEED_IDS[:n] if n <= len(SEED_IDS) else random_ids(n)


def round_trips(subject, delay_s, concurrency):
    """Two warm 1000-id deletes against the delayed fake; counts and peak memory."""
    runtime, aws = FakeRuntime(), RustFakeAws(str(FAKE_AWS), delay_s, ALBUM)
    env = lambda_env(runtime, aws, {"AWS_CONCURRENCY": str(concurrency)} if concurrency else None)
    process = subject.start(env)
    results = []
    try:
        for _ in range(2):
            aws.reset()
            runtime.events.put(event(random_ids(1000)))
            t0 = time.perf_counter_ns()
            at, response = answer(runtime)
            wall = (at - t0) / 1e9
            deleted = len(json.loads(response["body"]))
            results.append({**aws.snapshot(), "wall_s": wall, "deleted": deleted})
        status = pathlib.Path(f"/proc/{process.pid}/status").read_text()
        peak_kib = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1])
    finally:
        stop(process)
        runtime.close()
        aws.close()
    first, second = results
    return {
        "concurrency": concurrency or "default",
        "requests": first["requests"],
        "by_operation": first["by_operation"],
        "waves": first["waves"],
        "peak_inflight": first["peak_inflight"],
        "wall_over_d": first["wall_s"] / delay_s if delay_s else None,
        "connections_first": first["connections"],
        "connections_second": second["connections"],
        "deleted": first["deleted"],
        "peak_rss_mib": peak_kib / 1024,
    }


def size_mib(path):
    return os.path.getsize(path) / 2**20 if os.path.exists(path) else None


def median(values):
    return statistics.median(values) if values else None


def fmt(value, unit="", digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def svg_chart(rows, path):
    """A small horizontal bar chart of the headline figures against their targets."""
    bar_rows = [(label, value, target) for label, value, target in rows if value is not None]
    height = 40 + 34 * len(bar_rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="720" height="{height}" font-family="sans-serif" font-size="13">',
        '<text x="10" y="22" font-weight="bold">image-delete: measured (bar) against target (line)</text>',
    ]
    for i, (label, value, target) in enumerate(bar_rows):
        y = 40 + 34 * i
        scale = 360 / max(value, target, 1e-9)
        colour = "#2e7d32" if value <= target else "#c62828"
        parts.append(f'<text x="10" y="{y + 16}">{label}</text>')
        parts.append(f'<rect x="300" y="{y}" width="{value * scale:.1f}" height="20" fill="{colour}"/>')
        parts.append(f'<line x1="{300 + target * scale:.1f}" y1="{y - 3}" x2="{300 + target * scale:.1f}" y2="{y + 23}" stroke="#000" stroke-width="2"/>')
        parts.append(f'<text x="{300 + 365}" y="{y + 16}">{value:.2f}</text>')
    parts.append("</svg>")
    pathlib.Path(path).write_text("\n".join(parts) + "\n")


def measure(subject, args):
    delay = args.delay_ms / 1000
    print(f"[{subject.name}] cold starts x{args.runs}", file=sys.stderr)
    figures = {"cold": cold_starts(subject, args.runs)}
    print(f"[{subject.name}] round trips", file=sys.stderr)
    figures["round_trips_default"] = round_trips(subject, delay, None)
    figures["round_trips_16"] = round_trips(subject, delay, 16)
    if subject.name == "rust":
        print(f"[{subject.name}] throughput (managed concurrency 1 and 8)", file=sys.stderr)
        figures["per_second_1"] = throughput(subject, delay, 1)
        figures["per_second_8"] = throughput(subject, delay, 8)
    figures["round_trips_40"] = round_trips(subject, delay, 40)
    if not args.skip_callgrind:
        print(f"[{subject.name}] callgrind", file=sys.stderr)
        figures["instructions_to_first_next"] = instructions(subject, [])
        figures["warm_instructions"] = {n: warm_instructions(subject, n) for n in (0, 9, 1000)}
        print(f"[{subject.name}] first request over TLS", file=sys.stderr)
        figures["first_tls"] = first_request_tls(subject, (1, 9, 1000))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(ROOT / "target/lambda/bench/bootstrap"))
    parser.add_argument("--python", default=str(ROOT / ".tools/bench/bin/python"), help="the peer's interpreter")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--skip-callgrind", action="store_true")
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()

    rust = measure(rust_subject(args.binary), args)
    peer = None if args.skip_peer else measure(python_subject(args.python), args)
    sizes = {
        "binary": size_mib(args.binary),
        "zip_x86_64": size_mib(ROOT / "target/lambda/x86_64/delete-images/bootstrap.zip"),
        "zip_arm64": size_mib(ROOT / "target/lambda/arm64/delete-images/bootstrap.zip"),
    }
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": args.runs,
        "delay_ms": args.delay_ms,
        "rust": rust,
        "python": peer,
        "sizes_mib": sizes,
    }

    def pick(figures, *path):
        value = figures
        for key in path:
            if value is None:
                return None
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def row(label, path, unit="", digits=2, target="", scale=1.0, transform=None):
        values = []
        for figures in (rust, peer):
            value = pick(figures, *path)
            if transform and value is not None:
                value = transform(value)
            values.append(value / scale if isinstance(value, (int, float)) and value is not None else value)
        r, p = values
        ratio = f"{p / r:.1f}x" if isinstance(r, (int, float)) and isinstance(p, (int, float)) and r else ""
        return (label, fmt(r, unit, digits), fmt(p, unit, digits), ratio, target)

    rows = [
        row("exec -> first /next, median", ("cold", "exec_to_next_ms"), " ms", target="<= 5 ms", transform=median),
        row("exec -> first answer (1 id), median", ("cold", "exec_to_answer_ms"), " ms", transform=median),
        row("instructions to first /next", ("instructions_to_first_next",), " M", target="<= 4 M", scale=1e6),
        row("warm instructions, 0 ids", ("warm_instructions", 0), " M", scale=1e6),
        row("warm instructions, 9 ids (seed)", ("warm_instructions", 9), " M", target=">= 10x fewer", scale=1e6),
        row("warm instructions, 1000 ids", ("warm_instructions", 1000), " M", scale=1e6),
        row("1000 ids: AWS requests (bound 40)", ("round_trips_40", "requests"), "", 0, "51"),
        row("1000 ids: sequential waves (bound 40)", ("round_trips_40", "waves"), "", 0, "3"),
        row("1000 ids: wall / D (bound 40)", ("round_trips_40", "wall_over_d"), target="<= 3.5"),
        row("1000 ids: wall / D (default bound: Rust 40, peer 16)", ("round_trips_default", "wall_over_d")),
        row("1000 ids: wall / D (bound 16)", ("round_trips_16", "wall_over_d")),
        row("peak RSS after 1000 ids (bound 16)", ("round_trips_16", "peak_rss_mib"), " MiB", 1),
        row("new connections, 1st warm request (bound 40)", ("round_trips_40", "connections_first"), "", 0),
        row("new connections, 2nd warm request (bound 40)", ("round_trips_40", "connections_second"), "", 0, "0"),
        row("peak RSS after 1000 ids", ("round_trips_40", "peak_rss_mib"), " MiB", 1, "<= 16 MB"),
        row("seed requests / s, AWS_LAMBDA_MAX_CONCURRENCY=1", ("per_second_1",), "", 1),
        row("seed requests / s, AWS_LAMBDA_MAX_CONCURRENCY=8", ("per_second_8",), "", 1, "~8x the above"),
    ]
    rows += [
        row("TLS: instructions to first /next (PRECONNECT on)", ("first_tls", "to_first_next"), " M", scale=1e6),
        row("TLS: instructions to first /next, PRECONNECT=false", ("first_tls", "preconnect_off", "to_first_next"), " M", scale=1e6),
        row("TLS: 1st request, 9 ids, PRECONNECT=false: instructions", ("first_tls", "preconnect_off", "first_9"), " M", scale=1e6),
    ]
    for n in (1, 9, 1000):
        rows += [
            row(f"TLS: 1st request after cold start, {n} ids: instructions", ("first_tls", n, "instructions"), " M", scale=1e6),
            row(f"TLS: 1st request, {n} ids: / warm TLS request", ("first_tls", n), "", 2,
                "<= 2" if n == 9 else "", transform=lambda f: f["instructions"] / f["warm_instructions"]),
            row(f"TLS: 1st request, {n} ids: wall (D = 0)", ("first_tls", n, "wall_ms"), " ms"),
            row(f"TLS: 1st request, {n} ids: handshakes full / resumed", ("first_tls", n),
                transform=lambda f: f"{f['tls_full']} / {f['tls_resumed']}"),
        ]
    rows += [
        ("binary (stripped, x86_64)", fmt(sizes["binary"], " MiB", 2), "", "", "<= 8.5 MiB"),
        ("deployment zip x86_64", fmt(sizes["zip_x86_64"], " MiB", 2), "", "", "<= 3.5 MiB"),
        ("deployment zip arm64", fmt(sizes["zip_arm64"], " MiB", 2), "", "", "<= 3.5 MiB"),
    ]
    table = [
        "| figure | Rust | Python peer | Python / Rust | target |",
        "|---|---|---|---|---|",
    ] + [f"| {' | '.join(r)} |" for r in rows]
    text = "\n".join(table)
    print(text)
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "latest.md").write_text(
        f"# Benchmark results ({results['date']}, {args.runs} cold starts, D = {args.delay_ms} ms)\n\n"
        f"Command: `make bench` (scripts/bench.sh -> bench/bench.py). Machine: {os.cpu_count()} cores.\n\n{text}\n"
    )
    svg_chart(
        [
            ("exec -> /next (ms)", median(rust["cold"]["exec_to_next_ms"]), 5.0),
            ("instructions to /next (M)", (rust.get("instructions_to_first_next") or 0) / 1e6 or None, 4.0),
            ("1000 ids wall / D", rust["round_trips_40"]["wall_over_d"], 3.5),
            ("peak RSS (MiB)", rust["round_trips_40"]["peak_rss_mib"], 16 / 1.048576),
            ("zip x86_64 (MiB)", sizes["zip_x86_64"], 3.5),
            ("zip arm64 (MiB)", sizes["zip_arm64"], 3.5),
        ],
        out / "latest.svg",
    )
    print("\nwritten: bench/results/latest.md, latest.json, latest.svg")


if __name__ == "__main__":
    main()
