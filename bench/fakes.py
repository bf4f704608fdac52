"""Loopback stand-ins for the benchmarks: the Lambda Runtime API, and a handle on the
DynamoDB + S3 stand-in (bench/fakes' `fake-aws`, Rust).

The runtime is a stdlib-only, threaded HTTP/1.1 server on 127.0.0.1 that hands out
queued events and records when the function first asks for work and when it answers.
`fake-aws` answers BatchGetItem / BatchWriteItem / DeleteObjects correctly (every
requested record exists, in the token's album, with one object), waits a fixed delay
per request, and counts requests, concurrent waves and new connections.
"""
import json
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

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

    def __init__(self, deadline_s=30):
        self.deadline_s = deadline_s
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
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int((time.time() + outer.deadline_s) * 1000)))
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


class ServedRuntime:
    """bench/fakes' `fake-runtime --serve` (Rust): the Runtime API for a function the
    harness starts, timing each request from the event's hand-out to the answer in
    Rust. The per-request wall rows use it: this file's Python runtime adds its own
    hand-over, and pauses when the interpreter collects garbage."""

    def __init__(self, binary):
        import subprocess

        self.process = subprocess.Popen(
            [binary, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.address = self.process.stdout.readline().strip()

    def _command(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        if not reply:
            raise RuntimeError("fake-runtime --serve stopped")
        return reply.strip()

    def wait_ready(self):
        """Returns once the function has asked for work (its init is over)."""
        self._command("wait")

    def invoke(self, event):
        """Hands `event` out; returns (wall seconds, the function's answer)."""
        reply = json.loads(self._command("event " + json.dumps(event)))
        self.last_handed_at = reply.get("handed_at")  # Unix s, beside fake-aws's trace
        return reply["wall_ms"] / 1000, reply["answer"]

    def close(self):
        self.process.kill()
        self.process.wait()


_RSA_CHAIN = None


def rsa_chain():
    """A throwaway RSA 2048 chain (root, intermediate, server certificate for
    127.0.0.1 and localhost), as AWS endpoints present, made once per run with
    openssl; None where openssl is missing (fake-aws then makes an ECDSA chain)."""
    global _RSA_CHAIN
    if _RSA_CHAIN is not None:
        return _RSA_CHAIN or None
    import shutil
    import subprocess
    import tempfile

    if not shutil.which("openssl"):
        _RSA_CHAIN = ""
        return None
    d = tempfile.mkdtemp(prefix="fake-aws-tls-")
    ca = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    leaf = "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    for name, text in (("ca.ext", ca), ("leaf.ext", leaf)):
        with open(f"{d}/{name}", "w") as f:
            f.write(text)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "root.key", "-out", "root.pem",
        "-days", "2", "-subj", "/CN=fake-aws root", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, issuer, subject, ext in (("mid", "root", "/CN=fake-aws intermediate", "ca.ext"),
                                       ("leaf", "mid", "/CN=localhost", "leaf.ext")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext)
    _RSA_CHAIN = d
    return d


class RustFakeAws:
    """bench/fakes' `fake-aws` (Rust, async), started on a free port: a Python server's
    own per-request cost would dominate the waves being measured."""

    def __init__(self, binary, delay, album, tls=False, env=None):
        import os
        import subprocess
        import tempfile
        import urllib.request

        self._urllib = urllib.request
        # With tls, fake-aws also serves HTTPS under a throwaway CA written here.
        self.ca_path = tempfile.NamedTemporaryFile(suffix=".pem", delete=False).name if tls else None
        args = [binary, str(delay * 1000), album] + ([self.ca_path] if tls else [])
        chain = rsa_chain() if tls else None
        env = {**(env or {}), **({"FAKE_AWS_TLS_CHAIN": chain} if chain else {})}
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, **(env or {})}
        )
        self.port = int(self.process.stdout.readline().strip())
        self.tls_port = int(self.process.stdout.readline().strip()) if tls else None

    @property
    def url(self):
        """Where the function sends its AWS calls: HTTPS when started with tls."""
        if self.tls_port:
            return f"https://127.0.0.1:{self.tls_port}"
        return self.control_url

    @property
    def control_url(self):
        return f"http://127.0.0.1:{self.port}"

    def reset(self):
        self._urllib.urlopen(self._urllib.Request(f"{self.control_url}/__reset", data=b"", method="POST")).read()

    def snapshot(self):
        return json.loads(self._urllib.urlopen(f"{self.control_url}/__stats").read())

    def close(self):
        self.process.terminate()
        self.process.wait()
        if self.ca_path:
            import os

            os.unlink(self.ca_path)
