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
from fakes import FakeRuntime, RustFakeAws, ServedRuntime  # noqa: E402

FAKE_AWS = ROOT / "target/release/fake-aws"
FAKE_RUNTIME = ROOT / "target/release/fake-runtime"
# Fresh processes behind the 1000-id wall rows at bound 40: their median.
WALL_STARTS = 7



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
        # S3 under another name, as on AWS: its own connections and TLS sessions.
        env["AWS_ENDPOINT_URL_S3"] = aws.url.replace("127.0.0.1", "localhost")
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


def fake_runtime(subject, runs, ids, delay_s=0.0, extra_env=None, tls=False):
    """Runs bench/fakes' fake-runtime (which spawns the function) over one event of
    `ids`, with fake-aws at `delay_s` (over HTTPS with `tls`); its JSON lines, parsed."""
    aws = RustFakeAws(str(FAKE_AWS), delay_s, ALBUM, tls=tls)
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


def instructions(subject, requests, tls=False, extra=None):
    """Instructions (callgrind) from exec until the function, having answered
    `requests`, asks for the next event; the run is stopped there."""
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
    """The first request after a cold start, over HTTPS (fake-aws with a throwaway CA;
    DynamoDB and S3 under two names, as on AWS): its instructions (callgrind: exec ->
    next `/next` after it, less exec -> first `/next`), the TLS handshakes during init
    and during the request, and its wall time (median of `walls` fresh processes,
    D = 0); plus, for the ratio, a warm request of each size over TLS."""
    to_next = instructions(subject, [], tls=True)
    figures = {"to_first_next": to_next}
    for n in sizes:
        first = instructions(subject, [seeded_ids(n)], tls=True) - to_next
        three = instructions(subject, [seeded_ids(n)] * 3, tls=True)
        runs = [first_request_wall(subject, n) for _ in range(walls)]
        _, init, request = runs[0]
        figures[n] = {
            "instructions": first,
            "warm_instructions": (three - first - to_next) / 2,
            "init_tls_full": init["tls_full"],
            "tls_full": request["tls_full"],
            "tls_resumed": request["tls_resumed"],
            "wall_ms": median([wall for wall, _, _ in runs]),
        }
    if subject.name == "rust":
        # PRECONNECT=true (off by default): init pays what the first request saves.
        on = {"PRECONNECT": "true"}
        to_next_on = instructions(subject, [], tls=True, extra=on)
        first_on = instructions(subject, [seeded_ids(9)], tls=True, extra=on) - to_next_on
        walls = [first_request_wall(subject, 9, on) for _ in range(walls)]
        figures["preconnect_on"] = {
            "to_first_next": to_next_on,
            "first_9": first_on,
            "first_9_over_warm": first_on / figures[9]["warm_instructions"],
            "init_tls_full": walls[0][1]["tls_full"],
            "request_tls_full": walls[0][2]["tls_full"],
            "wall_ms": median([w for w, _, _ in walls]),
        }
    return figures


def first_request_wall(subject, n, extra=None):
    """Milliseconds from handing the first event to its answer, over HTTPS, D = 0, and
    fake-aws's counters for init and for the request."""
    runtime, aws = FakeRuntime(), RustFakeAws(str(FAKE_AWS), 0.0, ALBUM, tls=True)
    process = subject.start(lambda_env(runtime, aws, extra))
    try:
        deadline = time.time() + 60
        while runtime.next_calls < 1 and time.time() < deadline and process.poll() is None:
            time.sleep(0.005)
        init = aws.snapshot()
        aws.reset()
        t0 = time.perf_counter_ns()
        runtime.events.put(event(seeded_ids(n)))
        at, response = answer(runtime)
        assert response["statusCode"] == 200, response
        return (at - t0) / 1e6, init, aws.snapshot()
    finally:
        stop(process)
        runtime.close()
        aws.close()


ALBUM_OBJECTS_PER_IMAGE = 2
S3_KEYS_PER_S = 3500  # S3: DELETE requests per second per partitioned prefix
DDB_WRITES_PER_S = 4000  # DynamoDB: write units per second, a new on-demand table
ALBUM_FLOOR = min(S3_KEYS_PER_S / ALBUM_OBJECTS_PER_IMAGE, DDB_WRITES_PER_S)


def album_run(binary, images, delay_s, extra):
    """One AlbumDeleted event for an album of `images` images (2 objects each) through
    the release cleanup binary, against fake-aws holding the album as state and
    enforcing S3's per-prefix and DynamoDB's write rates. Images per second, what is
    left, the throttling met, and the timeline of records deleted per 250 ms."""
    limits = {
        "FAKE_AWS_ALBUM_IMAGES": str(images),
        "FAKE_AWS_OBJECTS_PER_IMAGE": str(ALBUM_OBJECTS_PER_IMAGE),
        "FAKE_AWS_S3_KEYS_PER_S": str(S3_KEYS_PER_S),
        "FAKE_AWS_DDB_WRITES_PER_S": str(DDB_WRITES_PER_S),
    }
    runtime = FakeRuntime(deadline_s=900)  # Lambda's longest invocation
    aws = RustFakeAws(str(FAKE_AWS), delay_s, ALBUM, env=limits)
    env = lambda_env(runtime, aws, {
        "AWS_LAMBDA_FUNCTION_NAME": "cleanup",
        "AWS_ENDPOINT_URL_SQS": aws.url,
        "CLEANUP_QUEUE_URL": f"{aws.url}/123456789012/cleanup",
        **extra,
    })
    fixture = json.loads((ROOT / "events/cleanup/album-deleted.json").read_text())
    fixture["detail"]["album_id"] = ALBUM
    process = Subject("cleanup", [binary]).start(env)
    try:
        while runtime.next_calls < 1 and process.poll() is None:
            time.sleep(0.005)
        aws.reset()
        t0 = time.perf_counter_ns()
        runtime.events.put(fixture)
        at, path, _ = runtime.answers.get(timeout=900)
        wall = (at - t0) / 1e9
        stats = aws.snapshot()
    finally:
        stop(process)
        runtime.close()
        aws.close()
    album = stats["album"]
    timeline = album["timeline_250ms"]
    first = next((i for i, n in enumerate(timeline) if n), 0)
    return {
        "images": images,
        "settings": extra,
        "answered": "response" if path.endswith("/response") else "error",
        "wall_s": wall,
        "images_per_s": (images - album["images_left"]) / wall,
        "images_left": album["images_left"],
        "objects_left": album["objects_left"],
        "slowdown_calls": album["slowdown_calls"],
        "slowdown_keys": album["slowdown_keys"],
        "throttled_writes": album["throttled_writes"],
        "handoffs": stats["by_operation"].get("SendMessage", 0),
        "requests": stats["requests"],
        "timeline_250ms": timeline[first:],
    }


def album_figures(binary, delay_s, images):
    """Today's design (pages of 1000 read ahead, adaptive retries) and the sequential
    one it replaced (pages of 100, each read after the previous one is deleted)."""
    print(f"[cleanup] album of {images} images, pipelined", file=sys.stderr)
    pipelined = album_run(binary, images, delay_s, {})
    print(f"[cleanup] album of {images} images, sequential", file=sys.stderr)
    sequential = album_run(binary, images, delay_s, {"ALBUM_PAGE_SIZE": "100", "ALBUM_PREFETCH": "false"})
    return {"floor_images_per_s": ALBUM_FLOOR, "pipelined": pipelined, "sequential": sequential}


def album_chart(album, path):
    """Images deleted over time, both designs, against the floor's line."""
    width, height, left, bottom = 720, 320, 60, 280
    runs = [("pipelined", "#2e7d32"), ("sequential", "#c62828")]
    seconds = max(len(album[name]["timeline_250ms"]) for name, _ in runs) / 4 or 1
    images = album["pipelined"]["images"]
    x = lambda s: left + (width - left - 20) * s / seconds
    y = lambda n: bottom - (bottom - 40) * n / images
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20" font-weight="bold">Album cleanup: images deleted over time ({images} images, 2 objects each)</text>',
        f'<line x1="{left}" y1="{bottom}" x2="{width - 20}" y2="{bottom}" stroke="#000"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="40" stroke="#000"/>',
        f'<text x="{left}" y="{bottom + 18}">0 s</text><text x="{width - 60}" y="{bottom + 18}">{seconds:.0f} s</text>',
        f'<text x="5" y="44">{images}</text><text x="5" y="{bottom}">0</text>',
    ]
    floor_end = min(seconds, images / album["floor_images_per_s"])
    parts.append(f'<line x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(floor_end):.1f}" y2="{y(floor_end * album["floor_images_per_s"]):.1f}" stroke="#555" stroke-dasharray="6,4"/>')
    parts.append(f'<text x="{x(floor_end) + 4:.1f}" y="{y(images) + 14:.1f}" fill="#555">floor {album["floor_images_per_s"]:.0f}/s</text>')
    for i, (name, colour) in enumerate(runs):
        total, points = 0, [f"{x(0):.1f},{y(0):.1f}"]
        for slot, n in enumerate(album[name]["timeline_250ms"]):
            total += n
            points.append(f"{x((slot + 1) / 4):.1f},{y(total):.1f}")
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
        rate = album[name]["images_per_s"]
        parts.append(f'<text x="{left + 10}" y="{60 + 16 * i}" fill="{colour}">{name}: {rate:.0f} images/s</text>')
    parts.append("</svg>")
    pathlib.Path(path).write_text("\n".join(parts) + "\n")


def seeded_ids(n):
    return SEED_IDS[:n] if n <= len(SEED_IDS) else random_ids(n)


def round_trips(subject, delay_s, concurrency, starts=1, tls=False):
    """Two 1000-id deletes per fresh process against the delayed fake (the first opens
    its connections, the second finds them open); counts and peak memory from the
    first process, walls as medians over `starts` processes (one sample is at the
    mercy of this machine's noise)."""
    runs = [round_trip_once(subject, delay_s, concurrency, tls) for _ in range(starts)]
    firsts = [first["wall_s"] for first, _, _ in runs]
    seconds = [second["wall_s"] for _, second, _ in runs]
    first, second, peak_kib = runs[0]
    return {
        "concurrency": concurrency or "default",
        "starts": starts,
        "requests": first["requests"],
        "by_operation": first["by_operation"],
        "waves": first["waves"],
        "peak_inflight": first["peak_inflight"],
        "wall_over_d": median(firsts) / delay_s if delay_s else None,
        "wall_over_d_range": [min(firsts) / delay_s, max(firsts) / delay_s] if delay_s else None,
        # The same request once its connections exist (the row above opens them).
        "wall_over_d_second": median(seconds) / delay_s if delay_s else None,
        "wall_over_d_second_range": [min(seconds) / delay_s, max(seconds) / delay_s] if delay_s else None,
        # What fake-aws added to D inside those walls: per wave (operation), the latest
        # answer's lateness, summed over the waves; medians over the starts.
        "fake_late_ms": median([first["late_ms"] for first, _, _ in runs]),
        "fake_late_ms_second": median([second["late_ms"] for _, second, _ in runs]),
        "connections_first": first["connections"],
        "connections_second": second["connections"],
        "deleted": first["deleted"],
        "peak_rss_mib": max(kib for _, _, kib in runs) / 1024,
    }


def round_trip_once(subject, delay_s, concurrency, tls=False):
    runtime, aws = ServedRuntime(str(FAKE_RUNTIME)), RustFakeAws(str(FAKE_AWS), delay_s, ALBUM, tls=tls)
    env = lambda_env(runtime, aws, {"AWS_CONCURRENCY": str(concurrency)} if concurrency else None)
    process = subject.start(env)
    results = []
    try:
        # Init's own calls (PRECONNECT) are not the request's.
        runtime.wait_ready()
        for _ in range(2):
            aws.reset()
            wall, response = runtime.invoke(event(random_ids(1000)))
            deleted = len(json.loads(response["body"]))
            stats = aws.snapshot()
            stats["late_ms"] = sum(stats.get("late_ms", {}).values())
            results.append({**stats, "wall_s": wall, "deleted": deleted})
        status = pathlib.Path(f"/proc/{process.pid}/status").read_text()
        peak_kib = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1])
    finally:
        stop(process)
        runtime.close()
        aws.close()
    first, second = results
    return first, second, peak_kib


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
    """The headline figures, Rust (green when within target, red when not) beside the
    Python peer (grey), each row on its own log scale (ratios reach 500x), with the
    target as a black line. `rows`: (label, rust, peer or None, target or None)."""
    import math

    rows = [r for r in rows if r[1] is not None]
    height = 50 + 44 * len(rows)
    left, span = 290, 330
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{height}" font-family="sans-serif" font-size="12">',
        '<text x="10" y="20" font-weight="bold">image-delete (bars: Rust, grey: Python peer; line: target). Log scale per row.</text>',
    ]
    for i, (label, rust, peer, target) in enumerate(rows):
        y = 40 + 44 * i
        values = [v for v in (rust, peer, target) if v]
        lo, hi = min(values) / 3, max(values) * 1.5
        x = lambda v: left + span * math.log10(v / lo) / math.log10(hi / lo)
        colour = "#2e7d32" if target is None or rust <= target else "#c62828"
        parts.append(f'<text x="10" y="{y + 14}">{label}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{x(rust) - left:.1f}" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{x(rust) + 4:.1f}" y="{y + 12}">{rust:.3g}</text>')
        if peer:
            parts.append(f'<rect x="{left}" y="{y + 16}" width="{x(peer) - left:.1f}" height="14" fill="#9e9e9e"/>')
            parts.append(f'<text x="{x(peer) + 4:.1f}" y="{y + 28}">{peer:.3g} ({peer / rust:.1f}x)</text>')
        if target:
            parts.append(f'<line x1="{x(target):.1f}" y1="{y - 3}" x2="{x(target):.1f}" y2="{y + 33}" stroke="#000" stroke-width="2"/>')
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
    figures["round_trips_40"] = round_trips(subject, delay, 40, starts=WALL_STARTS)
    # The same over HTTPS: what a first request after a cold start pays on AWS, where
    # every new connection is a TLS handshake.
    figures["round_trips_40_tls"] = round_trips(subject, delay, 40, starts=WALL_STARTS, tls=True)
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
    parser.add_argument("--cleanup-binary", default=str(ROOT / "target/lambda/bench-cleanup/bootstrap"))
    parser.add_argument("--album-images", type=int, default=100_000)
    parser.add_argument("--only-album", action="store_true", help="run only the album cleanup rows")
    args = parser.parse_args()

    run_album = args.album_images and os.path.exists(args.cleanup_binary)
    album = album_figures(args.cleanup_binary, args.delay_ms / 1000, args.album_images) if run_album else None
    if args.only_album:
        print(json.dumps({k: v for k, v in album.items()}, default=str)[:2000])
        return
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
        "album": album,
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
        row(f"1000 ids: wall / D (bound 40), median of {WALL_STARTS} starts", ("round_trips_40", "wall_over_d"), target="<= 3.5"),
        row("1000 ids: wall / D (bound 40), min - max", ("round_trips_40", "wall_over_d_range"),
            transform=lambda r: f"{r[0]:.2f} - {r[1]:.2f}"),
        row(f"1000 ids: wall / D, 2nd request (bound 40), median of {WALL_STARTS}", ("round_trips_40", "wall_over_d_second")),
        row("1000 ids: wall / D, 2nd request (bound 40), min - max", ("round_trips_40", "wall_over_d_second_range"),
            transform=lambda r: f"{r[0]:.2f} - {r[1]:.2f}"),
        row("fake-aws lateness within those walls, 1st / 2nd request (sum of each wave's latest answer)",
            ("round_trips_40",), transform=lambda f: f"{f['fake_late_ms']:.2f} / {f['fake_late_ms_second']:.2f} ms"),
        row(f"TLS: 1000 ids: wall / D (bound 40), 1st request, median of {WALL_STARTS}", ("round_trips_40_tls", "wall_over_d")),
        row(f"TLS: 1000 ids: wall / D (bound 40), 2nd request, median of {WALL_STARTS}", ("round_trips_40_tls", "wall_over_d_second")),
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
        row("TLS: instructions to first /next", ("first_tls", "to_first_next"), " M", scale=1e6),
        row("TLS, PRECONNECT=true: instructions to first /next", ("first_tls", "preconnect_on", "to_first_next"), " M", scale=1e6),
        row("TLS, PRECONNECT=true: 1st request, 9 ids: instructions", ("first_tls", "preconnect_on", "first_9"), " M", scale=1e6),
        row("TLS, PRECONNECT=true: 1st request, 9 ids: / warm TLS request", ("first_tls", "preconnect_on", "first_9_over_warm"), "", 2, "<= 2"),
        row("TLS, PRECONNECT=true: 1st request, 9 ids: wall (D = 0)", ("first_tls", "preconnect_on", "wall_ms"), " ms"),
        row("TLS, PRECONNECT=true: handshakes in init / 1st request (9 ids)", ("first_tls", "preconnect_on"),
            transform=lambda f: f"{f['init_tls_full']} / {f['request_tls_full']}"),
    ]
    for n in (1, 9, 1000):
        rows += [
            row(f"TLS: 1st request after cold start, {n} ids: instructions", ("first_tls", n, "instructions"), " M", scale=1e6),
            row(f"TLS: 1st request, {n} ids: / warm TLS request", ("first_tls", n), "", 2,
                transform=lambda f: f["instructions"] / f["warm_instructions"]),
            row(f"TLS: 1st request, {n} ids: wall (D = 0)", ("first_tls", n, "wall_ms"), " ms"),
            row(f"TLS: 1st request, {n} ids: handshakes in init / request (resumed)", ("first_tls", n),
                transform=lambda f: f"{f['init_tls_full']} / {f['tls_full']} ({f['tls_resumed']})"),
        ]
    if album:
        floor = album["floor_images_per_s"]
        for name, label in (("pipelined", "pages of 1000 read ahead"), ("sequential", "pages of 100, one after another")):
            run = album[name]
            rows.append((
                f"album of {run['images']}: images / s ({label})",
                f"{run['images_per_s']:.0f} ({run['images_per_s'] / floor:.0%} of floor {floor:.0f})",
                "", "", ">= 80 % of floor" if name == "pipelined" else "",
            ))
            rows.append((
                f"album ({name}): left behind / SlowDown calls, keys / throttled writes / hand-offs",
                f"{run['images_left']} images, {run['objects_left']} objects / {run['slowdown_calls']}, "
                f"{run['slowdown_keys']} / {run['throttled_writes']} / {run['handoffs']}",
                "", "", "0 left" if name == "pipelined" else "",
            ))
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
    def both(*path, scale=1.0, transform=None):
        values = []
        for figures in (rust, peer):
            value = pick(figures, *path)
            if transform and value is not None:
                value = transform(value)
            values.append(value / scale if isinstance(value, (int, float)) else None)
        return values

    warm9_peer = both("warm_instructions", 9, scale=1e6)[1]
    first9 = pick(rust, "first_tls", 9) or {}
    svg_chart(
        [
            ("exec -> first /next (ms)", *both("cold", "exec_to_next_ms", transform=median), 5.0),
            ("instructions to first /next (M)", *both("instructions_to_first_next", scale=1e6), 4.0),
            ("warm instructions, 9 ids (M)", *both("warm_instructions", 9, scale=1e6), warm9_peer / 12 if warm9_peer else None),
            ("warm instructions, 1000 ids (M)", *both("warm_instructions", 1000, scale=1e6), None),
            ("TLS 1st request, 9 ids (M instr.)", *both("first_tls", 9, "instructions", scale=1e6), None),
            ("same, PRECONNECT=true (M instr.)", (pick(rust, "first_tls", "preconnect_on", "first_9") or 0) / 1e6 or None,
             None, 2 * first9["warm_instructions"] / 1e6 if first9 else None),
            ("TLS 1st request, 9 ids (ms)", *both("first_tls", 9, "wall_ms"), None),
            ("1000 ids wall / D (bound 40)", *both("round_trips_40", "wall_over_d"), 3.5),
            ("peak RSS after 1000 ids (MiB)", *both("round_trips_40", "peak_rss_mib"), 16 / 1.048576),
            ("binary x86_64 (MiB)", sizes["binary"], None, 8.5),
            ("zip arm64 (MiB)", sizes["zip_arm64"], None, 3.5),
            ("zip x86_64 (MiB)", sizes["zip_x86_64"], None, 3.5),
        ],
        out / "latest.svg",
    )
    if album:
        album_chart(album, out / "album.svg")
    print("\nwritten: bench/results/latest.md, latest.json, latest.svg, album.svg")


if __name__ == "__main__":
    main()
