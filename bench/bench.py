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
from fakes import FakeAws, FakeRuntime  # noqa: E402



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
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
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
    env.update(extra or {})
    return env


def start(command, env):
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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


def cold_starts(binary, runs):
    """exec -> first /next and exec -> first answer of a 1-id delete, `runs` times."""
    runtime, aws = FakeRuntime(), FakeAws(0.0, ALBUM)
    to_next, to_answer = [], []
    try:
        for _ in range(runs):
            runtime.reset()
            runtime.events.put(event(SEED_IDS[:1]))
            t0 = time.perf_counter_ns()
            process = start([binary], lambda_env(runtime, aws))
            try:
                at, response = answer(runtime)
                assert response["statusCode"] == 200, response
                to_next.append((runtime.first_next_ns - t0) / 1e6)
                to_answer.append((at - t0) / 1e6)
            finally:
                stop(process)
    finally:
        runtime.close()
        aws.close()
    return {"exec_to_next_ms": to_next, "exec_to_answer_ms": to_answer}


def instructions_to_first_next(binary):
    """Instructions (callgrind) from exec to the first /next, where the run is stopped."""
    runtime, aws = FakeRuntime(), FakeAws(0.0, ALBUM)
    out = tempfile.NamedTemporaryFile(suffix=".callgrind", delete=False).name
    try:
        process = start(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary],
            {**lambda_env(runtime, aws), "PATH": os.environ["PATH"]},
        )
        deadline = time.time() + 120
        while runtime.first_next_ns is None and time.time() < deadline:
            time.sleep(0.01)
        stop(process)
        for line in pathlib.Path(out).read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        raise RuntimeError("no callgrind totals")
    finally:
        runtime.close()
        aws.close()
        pathlib.Path(out).unlink(missing_ok=True)


def round_trips(binary, delay_s, concurrency):
    """Two warm 1000-id deletes against the delayed fake; counts and peak memory."""
    runtime, aws = FakeRuntime(), FakeAws(delay_s, ALBUM)
    env = lambda_env(runtime, aws, {"AWS_CONCURRENCY": str(concurrency)} if concurrency else None)
    process = start([binary], env)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(ROOT / "target/lambda/bench/bootstrap"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--skip-callgrind", action="store_true")
    args = parser.parse_args()
    delay = args.delay_ms / 1000

    cold = cold_starts(args.binary, args.runs)
    instructions = None if args.skip_callgrind else instructions_to_first_next(args.binary)
    default_bound = round_trips(args.binary, delay, None)
    bound_40 = round_trips(args.binary, delay, 40)
    sizes = {
        "binary": size_mib(args.binary),
        "zip_x86_64": size_mib(ROOT / "target/lambda/x86_64/delete-images/bootstrap.zip"),
        "zip_arm64": size_mib(ROOT / "target/lambda/arm64/delete-images/bootstrap.zip"),
    }
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "binary": args.binary,
        "runs": args.runs,
        "delay_ms": args.delay_ms,
        "cold": cold,
        "instructions_to_first_next": instructions,
        "round_trips_default": default_bound,
        "round_trips_40": bound_40,
        "sizes_mib": sizes,
    }
    rows = [
        ("exec -> first /next, median", fmt(median(cold["exec_to_next_ms"]), " ms", 2), "<= 5 ms"),
        ("exec -> first answer (1 id), median", fmt(median(cold["exec_to_answer_ms"]), " ms", 2), ""),
        ("instructions to first /next", fmt(instructions and instructions / 1e6, " M", 2), "<= 4 M"),
        ("1000 ids: AWS requests (bound 40)", fmt(bound_40["requests"]), "51"),
        ("1000 ids: sequential waves (bound 40)", fmt(bound_40["waves"]), "3"),
        ("1000 ids: wall / D (bound 40)", fmt(bound_40["wall_over_d"], "", 2), "<= 3.5"),
        ("1000 ids: wall / D (default bound)", fmt(default_bound["wall_over_d"], "", 2), ""),
        ("new connections, 1st / 2nd warm request (bound 40)", f"{bound_40['connections_first']} / {bound_40['connections_second']}", "2nd: 0"),
        ("peak RSS after 1000 ids", fmt(bound_40["peak_rss_mib"], " MiB"), "<= 16 MB"),
        ("binary (stripped, x86_64)", fmt(sizes["binary"], " MiB", 2), "<= 8.5 MiB"),
        ("deployment zip x86_64", fmt(sizes["zip_x86_64"], " MiB", 2), "<= 3.5 MiB"),
        ("deployment zip arm64", fmt(sizes["zip_arm64"], " MiB", 2), "<= 3.5 MiB"),
    ]
    table = ["| figure | measured | target |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join(table)
    print(text)
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "latest.md").write_text(
        f"# Benchmark results ({results['date']}, {args.runs} cold starts, D = {args.delay_ms} ms)\n\n{text}\n"
    )
    svg_chart(
        [
            ("exec -> /next (ms)", median(cold["exec_to_next_ms"]), 5.0),
            ("instructions to /next (M)", instructions and instructions / 1e6, 4.0),
            ("1000 ids wall / D", bound_40["wall_over_d"], 3.5),
            ("peak RSS (MiB)", bound_40["peak_rss_mib"], 16 / 1.048576),
            ("zip x86_64 (MiB)", sizes["zip_x86_64"], 3.5),
            ("zip arm64 (MiB)", sizes["zip_arm64"], 3.5),
        ],
        out / "latest.svg",
    )
    print(f"\nwritten: bench/results/latest.md, latest.json, latest.svg")


if __name__ == "__main__":
    main()
