#!/usr/bin/env python3
"""A fault-injecting HTTP proxy between the AWS SDK and the local emulators.

One port serves both services: requests with an `X-Amz-Target` header go to the
DynamoDB emulator, the rest to the S3 emulator. With probability `rate`, a call gets
one fault, chosen with a seeded RNG among those that fit it:

  DynamoDB  throttled (ProvisionedThroughputExceededException or ThrottlingException),
            500, UnprocessedKeys / UnprocessedItems (a subset held back: unprocessed
            writes are never applied)
  S3        503 SlowDown, 500, per-key Errors on DeleteObjects (a random subset is
            really deleted in the emulator, the rest answered as errors; version ids
            kept), and the same but per-key errors on ListObjectVersions
  both      connection reset before forwarding, reset after forwarding (the call was
            applied, the answer is lost), latency

`--lie` makes every DeleteObjects keep one of its keys while answering that all were
deleted: a checker that trusts the answer must turn red.

Control: `GET /__chaos` answers the counts; `POST /__chaos` with a JSON object
changes `rate`, `lie` and `rules`: scripted faults for exact scenarios, each
`{"target": "BatchGetItem", "keys": N, "fault": KIND[, "ids": [...]]}`, applied to
every call of that operation with N keys (`ids`: the keys an `unprocessed` fault
holds back). Standard library only. The first line on stdout is the port.

Usage: chaos_proxy.py --dynamodb URL --s3 URL [--port 0] [--seed 1] [--rate 0.3] [--lie]
"""
import argparse
import http.client
import json
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DDB_FAULTS = ["ddb_provisioned", "ddb_throttling", "ddb_500", "unprocessed", "reset_before", "reset_after", "latency"]
S3_FAULTS = ["s3_slowdown", "s3_500", "s3_key_errors", "reset_before", "reset_after", "latency"]
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Chaos:
    def __init__(self, seed, rate, lie):
        self.rng = random.Random(seed)
        self.rate = rate
        self.lie = lie
        self.rules = []
        self.lock = threading.Lock()
        self.counts = Counter()

    def pick(self, kinds):
        with self.lock:
            self.counts["calls"] += 1
            if self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(kinds)
            self.counts[kind] += 1
            return kind

    def sample(self, items):
        """A random non-empty subset of items (all of them, sometimes)."""
        with self.lock:
            k = self.rng.randint(1, len(items))
            return self.rng.sample(items, k)

    def choice(self, items):
        with self.lock:
            return self.rng.choice(items)

    def uniform(self, a, b):
        with self.lock:
            return self.rng.uniform(a, b)


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    chaos: Chaos
    upstreams: dict

    def log_message(self, *args):
        pass

    # --- plumbing -----------------------------------------------------------------
    def body(self):
        return self.rfile.read(int(self.headers.get("content-length", 0)))

    def forward(self, service, method, path, body, headers=None):
        url = urllib.parse.urlsplit(self.upstreams[service])
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            sent = {k: v for k, v in (headers or self.headers).items() if k.lower() not in HOP_BY_HOP}
            sent["content-length"] = str(len(body))
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def answer(self, status, headers, body):
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reset(self):
        """Closes the connection with a TCP reset: the client sees no answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def ddb_error(self, status, code, message):
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()
        self.answer(status, {"content-type": "application/x-amz-json-1.0", "x-amzn-errortype": code}, body)

    def s3_error(self, status, code):
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>injected</Message><RequestId>chaos</RequestId></Error>").encode()
        self.answer(status, {"content-type": "application/xml"}, body)

    # --- control --------------------------------------------------------------------
    def do_GET(self):
        if self.path == "/__chaos":
            with self.chaos.lock:
                body = json.dumps(dict(self.chaos.counts)).encode()
            return self.answer(200, {"content-type": "application/json"}, body)
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        if "versions" in query.split("&") or any(p.startswith("versions=") for p in query.split("&")):
            return self.list_versions()
        self.pass_through("s3", "GET")

    def list_versions(self):
        kind = self.chaos.pick([k for k in S3_FAULTS if k != "s3_key_errors"])
        if self.common(kind):
            return
        if kind == "s3_slowdown":
            return self.s3_error(503, "SlowDown")
        if kind == "s3_500":
            return self.s3_error(500, "InternalError")
        status, headers, answer = self.forward("s3", "GET", self.path, b"")
        if kind == "reset_after":
            return self.reset()
        self.answer(status, headers, answer)

    def do_POST(self):
        if self.path == "/__chaos":
            change = json.loads(self.body() or b"{}")
            with self.chaos.lock:
                self.chaos.rate = float(change.get("rate", self.chaos.rate))
                self.chaos.lie = bool(change.get("lie", self.chaos.lie))
                self.chaos.rules = list(change.get("rules", self.chaos.rules))
            return self.answer(200, {}, b"{}")
        if self.headers.get("x-amz-target"):
            return self.dynamodb()
        if self.path.split("?", 1)[-1].split("&")[0].startswith("delete") and "?" in self.path:
            return self.delete_objects()
        self.pass_through("s3", "POST")

    def do_PUT(self):
        self.pass_through("s3", "PUT")

    def do_DELETE(self):
        self.pass_through("s3", "DELETE")

    def do_HEAD(self):
        self.pass_through("s3", "HEAD")

    def pass_through(self, service, method):
        self.answer(*self.forward(service, method, self.path, self.body()))

    def common(self, kind):
        """Faults both services share; True when the call was dealt with."""
        if kind == "reset_before":
            self.reset()
            return True
        if kind == "latency":
            time.sleep(self.chaos.uniform(0.0, 0.3))
        return False

    # --- DynamoDB -------------------------------------------------------------------
    def dynamodb(self):
        body = self.body()
        operation = self.headers["x-amz-target"].split(".")[-1]
        batch = operation in ("BatchGetItem", "BatchWriteItem")
        rule = self.rule_for(operation, body) if batch else None
        if rule:
            with self.chaos.lock:
                self.chaos.counts["calls"] += 1
                self.chaos.counts["scripted"] += 1
            kind = rule["fault"]
        else:
            kind = self.chaos.pick(DDB_FAULTS if batch else ["reset_before", "reset_after", "latency"])
        if self.common(kind):
            return
        if kind == "ddb_provisioned":
            return self.ddb_error(400, "ProvisionedThroughputExceededException", "injected")
        if kind == "ddb_throttling":
            return self.ddb_error(400, "ThrottlingException", "injected")
        if kind == "ddb_500":
            return self.ddb_error(500, "InternalServerError", "injected")
        if kind == "unprocessed":
            return self.unprocessed(operation, json.loads(body), (rule or {}).get("ids"))
        status, headers, answer = self.forward("dynamodb", "POST", self.path, body)
        if kind == "reset_after":
            return self.reset()
        self.answer(status, headers, answer)

    def rule_for(self, operation, body):
        with self.chaos.lock:
            rules = list(self.chaos.rules)
        if not rules:
            return None
        items = json.loads(body)["RequestItems"].values()
        count = sum(len(e["Keys"]) if operation == "BatchGetItem" else len(e) for e in items)
        return next((r for r in rules if r["target"] == operation and r["keys"] == count), None)

    def unprocessed(self, operation, request, ids=None):
        if operation == "BatchGetItem":
            (table, entry), = request["RequestItems"].items()
            keys = entry["Keys"]
            held = [k for k in keys if k["id"]["S"] in ids] if ids else self.chaos.sample(keys)
            status, headers, answer = self.forward("dynamodb", "POST", self.path, json.dumps(request).encode())
            if status != 200:
                return self.answer(status, headers, answer)
            result = json.loads(answer)
            held_ids = {json.dumps(k, sort_keys=True) for k in held}
            items = result.get("Responses", {}).get(table, [])
            result["Responses"] = {table: [i for i in items if json.dumps({"id": i["id"]}, sort_keys=True) not in held_ids]}
            result["UnprocessedKeys"] = {table: dict(entry, Keys=held)}
        else:
            # Across every table of the call (a move writes two): a subset held back.
            held, rest = {}, {}
            for name, writes in request["RequestItems"].items():
                kept = self.chaos.sample(writes)
                if kept:
                    held[name] = kept
                left = [w for w in writes if w not in kept]
                if left:
                    rest[name] = left
            result = {"UnprocessedItems": held}
            if rest:
                status, headers, answer = self.forward(
                    "dynamodb", "POST", self.path, json.dumps({"RequestItems": rest}).encode())
                if status != 200:
                    return self.answer(status, headers, answer)
        self.answer(200, {"content-type": "application/x-amz-json-1.0"}, json.dumps(result).encode())

    # --- S3 DeleteObjects -----------------------------------------------------------
    def delete_objects(self):
        body = self.body()
        bucket = self.path.split("?", 1)[0].strip("/").split("/")[0]
        root = ET.fromstring(body)
        objects = list(root.iter(f"{{{S3_NS}}}Object")) or list(root.iter("Object"))
        # (key, version id or None) of each object named.
        keys = [((o.findtext(f"{{{S3_NS}}}Key") or o.findtext("Key") or ""),
                 (o.findtext(f"{{{S3_NS}}}VersionId") or o.findtext("VersionId"))) for o in objects]
        with self.chaos.lock:
            lie = self.chaos.lie
        if lie and keys:
            kept = keys[0]
            self.delete_each(bucket, [k for k in keys if k != kept])
            return self.delete_result([])
        kind = self.chaos.pick(S3_FAULTS)
        if self.common(kind):
            return
        if kind == "s3_slowdown":
            return self.s3_error(503, "SlowDown")
        if kind == "s3_500":
            return self.s3_error(500, "InternalError")
        if kind == "s3_key_errors" and keys:
            failing = set(self.chaos.sample(keys))
            self.delete_each(bucket, [k for k in keys if k not in failing])
            codes = ["InternalError", "SlowDown", "AccessDenied"]
            return self.delete_result([(k, self.chaos.choice(codes)) for k in sorted(failing, key=str)])
        status, headers, answer = self.forward("s3", "POST", self.path, body)
        if kind == "reset_after":
            return self.reset()
        self.answer(status, headers, answer)

    def delete_each(self, bucket, keys):
        for key, version in keys:
            path = f"/{bucket}/{urllib.parse.quote(key, safe='/')}"
            if version:
                path += f"?versionId={urllib.parse.quote(version, safe='')}"
            status, _, answer = self.forward("s3", "DELETE", path, b"", headers={})
            if status not in (200, 204):
                raise RuntimeError(f"emulator refused DELETE {path}: {status} {answer[:200]!r}")

    def delete_result(self, errors):
        parts = "".join(
            f"<Error><Key>{xml_escape(k)}</Key>"
            + (f"<VersionId>{xml_escape(v)}</VersionId>" if v else "")
            + f"<Code>{c}</Code><Message>injected</Message></Error>"
            for (k, v), c in errors)
        body = f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="{S3_NS}">{parts}</DeleteResult>'
        self.answer(200, {"content-type": "application/xml"}, body.encode())


def xml_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # resets are the point; a broken client connection is not news


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dynamodb", required=True)
    parser.add_argument("--s3", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--lie", action="store_true")
    args = parser.parse_args()
    handler = type("P", (Proxy,), {
        "chaos": Chaos(args.seed, args.rate, args.lie),
        "upstreams": {"dynamodb": args.dynamodb, "s3": args.s3},
    })
    server = Server(("127.0.0.1", args.port), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
