"""Loopback stand-ins for the Lambda Runtime API and for DynamoDB + S3, for benchmarks.

Both are stdlib-only, threaded HTTP/1.1 servers on 127.0.0.1 that record what they
see: the runtime records when the function first asks for work and when it answers;
the AWS fake answers BatchGetItem / BatchWriteItem / DeleteObjects correctly (every
requested record exists, in the token's album, with one object), waits a fixed delay
per request, and counts requests, concurrent waves and new connections.
"""
import json
import queue
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Up to 40+ connections arrive at once; the default backlog of 5 would drop some.
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass  # a function process killed mid-connection is expected here


def _read_body(handler):
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


class FakeRuntime:
    """The Lambda Runtime API: hands out queued events and records the answers."""

    def __init__(self):
        self.events = queue.Queue()
        self.answers = queue.Queue()
        self.first_next_ns = None
        self.next_calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY the body
            # can wait for a delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    self.send_error(404)
                    return
                now = time.perf_counter_ns()
                if outer.first_next_ns is None:
                    outer.first_next_ns = now
                outer.next_calls += 1
                event = outer.events.get()
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:delete-images",
                )
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = _read_body(self)
                outer.answers.put((time.perf_counter_ns(), self.path, body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def reset(self):
        self.first_next_ns = None
        self.next_calls = 0
        while not self.answers.empty():
            self.answers.get_nowait()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeAws:
    """DynamoDB and S3 on one port, `delay` seconds per request, with counters."""

    def __init__(self, delay, album):
        self.delay = delay
        self.album = album
        self.lock = threading.Lock()
        self.reset()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY the body
            # can wait for a delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with outer.lock:
                    outer.connections += 1

            def do_POST(self):
                body = _read_body(self)
                outer._enter()
                try:
                    time.sleep(outer.delay)
                    status, content_type, answer = outer._answer(self, body)
                finally:
                    outer._leave()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def reset(self):
        with self.lock:
            self.requests = 0
            self.by_operation = {}
            self.connections = 0
            self.waves = 0
            self.inflight = 0
            self.peak_inflight = 0

    def snapshot(self):
        with self.lock:
            return {
                "requests": self.requests,
                "by_operation": dict(self.by_operation),
                "connections": self.connections,
                "waves": self.waves,
                "peak_inflight": self.peak_inflight,
            }

    def _enter(self):
        with self.lock:
            if self.inflight == 0:
                self.waves += 1
            self.inflight += 1
            self.peak_inflight = max(self.peak_inflight, self.inflight)
            self.requests += 1

    def _leave(self):
        with self.lock:
            self.inflight -= 1

    def _count(self, operation):
        with self.lock:
            self.by_operation[operation] = self.by_operation.get(operation, 0) + 1

    def _answer(self, handler, body):
        target = handler.headers.get("X-Amz-Target", "")
        if target.endswith(".BatchGetItem"):
            self._count("BatchGetItem")
            request = json.loads(body)
            responses = {}
            for table, spec in request["RequestItems"].items():
                responses[table] = [
                    {
                        "id": key["id"],
                        "album_id": {"S": self.album},
                        "object_keys": {"SS": [f"albums/{self.album}/{key['id']['S']}/original.jpg"]},
                    }
                    for key in spec["Keys"]
                ]
            answer = {"Responses": responses, "UnprocessedKeys": {}}
            return 200, "application/x-amz-json-1.0", json.dumps(answer).encode()
        if target.endswith(".BatchWriteItem"):
            self._count("BatchWriteItem")
            return 200, "application/x-amz-json-1.0", b'{"UnprocessedItems": {}}'
        if "delete" in handler.path.split("?", 1)[-1]:
            self._count("DeleteObjects")
            keys = re.findall(rb"<Key>(.*?)</Key>", body)
            quiet = b"<Quiet>true</Quiet>" in body
            deleted = b"" if quiet else b"".join(b"<Deleted><Key>%s</Key></Deleted>" % k for k in keys)
            answer = (
                b'<?xml version="1.0" encoding="UTF-8"?>\n'
                b'<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' + deleted + b"</DeleteResult>"
            )
            return 200, "application/xml", answer
        self._count("unexpected")
        return 400, "application/json", b'{"__type": "UnknownOperationException"}'

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class RustFakeAws:
    """The same stand-in as FakeAws, served by bench/fake-aws (Rust, async): used for
    the round-trip figures, where a Python server's own per-request cost would
    dominate the waves being measured."""

    def __init__(self, binary, delay, album):
        import subprocess
        import urllib.request

        self._urllib = urllib.request
        self.process = subprocess.Popen(
            [binary, str(delay * 1000), album], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.port = int(self.process.stdout.readline().strip())

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def reset(self):
        self._urllib.urlopen(self._urllib.Request(f"{self.url}/__reset", data=b"", method="POST")).read()

    def snapshot(self):
        return json.loads(self._urllib.urlopen(f"{self.url}/__stats").read())

    def close(self):
        self.process.terminate()
        self.process.wait()
