#!/usr/bin/env python3
"""Feeds every crafted event of events/crafted/ to a built `delete-images` binary
through a minimal Lambda Runtime API, and checks that each gets an HTTP answer and
that the process keeps serving: those events once aborted the release binary.
The events of events/crafted/repeated/ repeat a header: each named 401- or 400- must
get that answer without a DynamoDB call; the one-copy controls (ok-) must pass
authentication and reach DynamoDB (which the slow fake answers with a 500).

The function runs twice: one invocation at a time, and with managed concurrency
(AWS_LAMBDA_MAX_CONCURRENCY=4), where a valid request is kept in flight (its DynamoDB
answer takes a second) while the crafted events arrive; it must still be answered.
Both runs log at RUST_LOG=trace: the output must hold neither the valid requests'
token (its signature or claims) nor their body.

Usage: crafted_events.py BINARY
Prints one summary line per mode; exits non-zero on any failure.
"""
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "events" / "apigw-rest-bulk-delete.json"
SECRET = "dev-secret-for-local-runs-only-0123456789abcdef"  # signs the tokens in events/
SLOW_SECONDS = 1.0


class SlowDynamoDB(BaseHTTPRequestHandler):
    """Answers every call after a pause with a non-retryable error, counting them."""

    protocol_version = "HTTP/1.1"
    calls = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("x-amz-target", "").startswith("DynamoDB_"):
            with SlowDynamoDB.lock:
                SlowDynamoDB.calls += 1
        time.sleep(SLOW_SECONDS)
        body = b'{"__type":"com.amazon.coral.validate#ValidationException","message":"slow fake"}'
        self.send_response(400)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class EndlessDynamoDB(BaseHTTPRequestHandler):
    """Answers every call 200 with a chunked body that never ends."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
        try:
            while True:
                self.wfile.write(chunk)
        except OSError:
            pass

    def log_message(self, *args):
        pass


class Runtime(BaseHTTPRequestHandler):
    """The Runtime API: events from a queue on /next, answers recorded by id."""

    protocol_version = "HTTP/1.1"
    events: "queue.Queue[tuple[str, str]]"
    answers: dict
    lock = threading.Lock()

    def do_GET(self):
        if not self.path.endswith("/invocation/next"):
            return self.reply(404, b"")
        request_id, event = self.events.get()
        deadline = int(time.time() * 1000) + 30_000
        self.send_response(200)
        for name, value in [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:delete-images"),
            ("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
            ("content-type", "application/json"),
            ("content-length", str(len(event.encode()))),
        ]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(event.encode())

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        parts = self.path.strip("/").split("/")
        if len(parts) >= 5 and parts[-1] in ("response", "error"):
            with self.lock:
                self.answers[parts[-2]] = (parts[-1], body)
        self.reply(202, b"{}")

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a function that aborts resets its connections: counted, not printed


def serve(handler):
    server = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def secrets_of(event_text: str) -> list[str]:
    """What must never reach a log: the token's claims and signature, and the body."""
    event = json.loads(event_text)
    authorization = event["headers"]["authorization"]
    token = authorization.split('"')[1]
    _, claims, signature = token.split(".")
    return [claims, signature, event["body"]]


def function_env(runtime, store) -> dict:
    return dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{runtime.server_address[1]}",
        AWS_LAMBDA_FUNCTION_NAME="delete-images",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_STREAM_NAME="crafted",
        AWS_LAMBDA_LOG_GROUP_NAME="crafted",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{store.server_address[1]}",
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{store.server_address[1]}",
        IMAGES_TABLE="images",
        IMAGES_BUCKET="images",
        JWT_SECRET=SECRET,
    )


def endless(binary: str) -> list[str]:
    """A DynamoDB whose answer never ends: the valid request gets a 5xx within the
    SDK's attempt timeout (5 s), and the function's peak RSS stays under 64 MiB."""
    events: "queue.Queue[tuple[str, str]]" = queue.Queue()
    request_id = str(uuid.uuid4())
    events.put((request_id, GOOD.read_text()))
    handler = type("R", (Runtime,), {"events": events, "answers": {}})
    runtime, store = serve(handler), serve(EndlessDynamoDB)
    env = function_env(runtime, store)
    env.pop("JWT_SECRET_ARN", None)
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    failures, peak_kib, took = [], 0, None
    try:
        started = time.time()
        while time.time() < started + 20 and request_id not in handler.answers and process.poll() is None:
            status = Path(f"/proc/{process.pid}/status")
            if status.exists():
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            time.sleep(0.01)
        took = time.time() - started
        kind, body = handler.answers.get(request_id, (None, b""))
        got = json.loads(body).get("statusCode") if kind == "response" else None
        if got not in (500, 503):
            failures.append(f"endless answer: status {got} ({kind}) after {took:.1f} s, expected a 5xx")
        elif took > 5.5:
            failures.append(f"endless answer: answered after {took:.1f} s, past the 5 s attempt timeout")
        if peak_kib >= 64 * 1024:
            failures.append(f"endless answer: peak RSS {peak_kib / 1024:.1f} MiB, not under 64")
    finally:
        process.kill()
        process.wait()
        runtime.shutdown()
        store.shutdown()
    print(f"endless DynamoDB answer: status {got} after {took:.2f} s, peak RSS {peak_kib / 1024:.1f} MiB, {len(failures)} failures")
    return failures


def run(binary: str, concurrency: int) -> list[str]:
    crafted = sorted((ROOT / "events" / "crafted").glob("*.json"))
    repeated = sorted((ROOT / "events" / "crafted" / "repeated").glob("*.json"))
    expected = {"401": 401, "400": 400, "ok": 500}
    good = GOOD.read_text()
    events: "queue.Queue[tuple[str, str]]" = queue.Queue()
    plan = []  # (request id, name, expected status)
    # A valid request first (in flight on the slow DynamoDB while the rest arrive),
    # then every crafted event, then a valid request again: still serving?
    for name, text, status in (
        [("valid (first)", good, 500)]
        + [(p.name, p.read_text(), 400) for p in crafted]
        + [(p.name, p.read_text(), expected[p.name.split("-")[0]]) for p in repeated]
        + [("valid (last)", good, 500)]
    ):
        request_id = str(uuid.uuid4())
        plan.append((request_id, name, status))
        events.put((request_id, text))
    handler = type("R", (Runtime,), {"events": events, "answers": {}})
    runtime = serve(handler)
    SlowDynamoDB.calls = 0
    slow = serve(SlowDynamoDB)
    env = dict(
        function_env(runtime, slow),
        AWS_LAMBDA_MAX_CONCURRENCY=str(concurrency),
        RUST_LOG="trace",
    )
    env.pop("JWT_SECRET_ARN", None)
    logs = tempfile.TemporaryFile()
    process = subprocess.Popen([binary], env=env, stdout=logs, stderr=subprocess.STDOUT)
    failures = []
    try:
        limit = time.time() + 60
        while time.time() < limit and len(handler.answers) < len(plan) and process.poll() is None:
            time.sleep(0.05)
        time.sleep(0.2)
        if process.poll() is not None:
            logs.seek(0)
            err = logs.read().decode(errors="replace")[-400:]
            failures.append(f"the function exited ({process.returncode}): {err}")
        for request_id, name, status in plan:
            kind, body = handler.answers.get(request_id, (None, b""))
            if kind != "response":
                failures.append(f"{name}: no answer ({kind})")
                continue
            got = json.loads(body).get("statusCode")
            if got != status:
                failures.append(f"{name}: status {got}, expected {status}")
    finally:
        process.kill()
        process.wait()
        runtime.shutdown()
        slow.shutdown()
    # One read per request that passed authentication (the fake's error is final):
    # the valid pair and the controls; a refused event that reached DynamoDB adds one.
    passed = sum(1 for _, _, status in plan if status == 500)
    if SlowDynamoDB.calls != passed:
        failures.append(f"{SlowDynamoDB.calls} DynamoDB calls, expected {passed} (one per authenticated event)")
    logs.seek(0)
    output = logs.read().decode(errors="replace")
    if '"level":"TRACE"' not in output:
        failures.append("no trace-level line was logged: the leak check saw nothing")
    for secret in secrets_of(good):
        if secret in output:
            failures.append(f"the logs at RUST_LOG=trace hold a secret ({secret[:12]}...)")
    answered = sum(1 for r, _, _ in plan if r in handler.answers)
    print(
        f"crafted events, concurrency {concurrency}: {len(crafted)} crafted + {len(repeated)} repeated-header "
        f"+ 2 valid events, {answered} answered, {SlowDynamoDB.calls} DynamoDB calls, {len(failures)} failures, process "
        f"{'alive' if not any('exited' in f for f in failures) else 'DEAD'} until stopped"
    )
    return failures


def main() -> None:
    binary = sys.argv[1]
    failures = run(binary, 1) + run(binary, 4) + endless(binary)
    for failure in failures:
        print(f"  FAIL {failure}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    main()
