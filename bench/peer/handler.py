"""The Python peer: DELETE /api/v1/images as a competent Python developer would write
it for Lambda with boto3 -- clients and pool at module scope, batched calls at the
services' limits, chunks in a thread pool, unprocessed items retried with backoff.

Same contract as the Rust function (status codes, headers, body, X-token), same data,
same fake endpoints; run by awslambdaric against the fake Runtime API (bench/bench.py).
Benchmark-only: not deployed.
"""
import base64
import json
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

import boto3
import jwt
from botocore.config import Config

TABLE = os.environ["IMAGES_TABLE"]
BUCKET = os.environ["IMAGES_BUCKET"]
SECRET = os.environ["JWT_SECRET"]
MAX_IDS = int(os.environ.get("MAX_IDS", "1000"))
TTL = int(os.environ.get("TOKEN_TTL_SECONDS", "14400"))
ABILITIES = os.environ.get("DELETE_ABILITIES", "image_delete,image_list").split(",")
CONCURRENCY = int(os.environ.get("AWS_CONCURRENCY", "16"))

_config = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=1,
    read_timeout=5,
    max_pool_connections=max(CONCURRENCY, 10),
)
dynamodb = boto3.client("dynamodb", config=_config)
s3 = boto3.client("s3", config=_config.merge(Config(s3={"addressing_style": "path"})))
pool = ThreadPoolExecutor(max_workers=CONCURRENCY)

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
HEADERS = {
    "Cache-Control": "no-cache, no-store",
    "Pragma": "no-cache",
    "Expires": "Fri, 01 Jan 1990 00:00:00 GMT",
    "Vary": "Accept-Encoding",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-XSS-Protection": "1; mode=block",
    "X-Download-Options": "noopen",
    "X-Permitted-Cross-Domain-Policies": "none",
    "Referrer-Policy": "origin-when-cross-origin, strict-origin-when-cross-origin",
}


def _answer(status, body, started, request_id, extra=None):
    headers = {**HEADERS, "X-Request-Id": request_id, "X-Runtime": f"{time.perf_counter() - started:.6f}"}
    headers.update(extra or {})
    return {"statusCode": status, "headers": headers, "body": body}


def _denied(started, request_id):
    return _answer(
        401, "", started, request_id, {"X-Message": "Access denied", "WWW-Authenticate": 'Token realm="Application"'}
    )


def _error(status, code, message, started, request_id):
    body = json.dumps({"error": code, "message": message})
    return _answer(status, body, started, request_id, {"Content-Type": "application/json; charset=utf-8"})


def _token(headers):
    value = headers.get("authorization", "")
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer":
        return rest
    if scheme.lower() == "token":
        if rest.startswith("token="):
            rest = rest[len("token="):].strip('"')
        return rest
    return None


def _backoff(attempt):
    time.sleep(random.uniform(0, min(1.0, 0.025 * 2**attempt)))


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def _get(ids):
    keys = [{"id": {"S": i}} for i in ids]
    found, attempt = [], 0
    while keys:
        out = dynamodb.batch_get_item(
            RequestItems={
                TABLE: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": "#i, #a, #k",
                    "ExpressionAttributeNames": {"#i": "id", "#a": "album_id", "#k": "object_keys"},
                }
            }
        )
        found.extend(out.get("Responses", {}).get(TABLE, []))
        keys = out.get("UnprocessedKeys", {}).get(TABLE, {}).get("Keys", [])
        if keys:
            _backoff(attempt)
            attempt += 1
    return found


def _delete_objects(keys):
    out = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    return {e["Key"] for e in out.get("Errors", [])}


def _delete_records(ids):
    requests = [{"DeleteRequest": {"Key": {"id": {"S": i}}}} for i in ids]
    attempt = 0
    while requests:
        out = dynamodb.batch_write_item(RequestItems={TABLE: requests})
        requests = out.get("UnprocessedItems", {}).get(TABLE, [])
        if requests:
            _backoff(attempt)
            attempt += 1


def handler(event, context):
    started = time.perf_counter()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    request_id = (event.get("requestContext") or {}).get("requestId") or context.aws_request_id
    token = _token(headers)
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp"]}, leeway=30)
    except (jwt.PyJWTError, TypeError):
        return _denied(started, request_id)

    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    raw = [v for k, v in parse_qsl(body) if k in ("image_ids[]", "image_ids")]
    ids, seen = [], set()
    for value in raw:
        if not UUID.match(value):
            return _error(400, "invalid_image_id", "an image id is not a UUID", started, request_id)
        value = value.lower()
        if value not in seen:
            seen.add(value)
            ids.append(value)
    if len(ids) > MAX_IDS:
        return _error(400, "too_many_image_ids", f"At most {MAX_IDS} ids", started, request_id)

    records = [r for part in pool.map(_get, _chunks(ids, 100)) for r in part]
    abilities = claims.get("abilities") or {}
    for record in records:
        access = (abilities.get(record["album_id"]["S"]) or {}).get("Access") or {}
        if not any(access.get(a) is True for a in ABILITIES):
            return _denied(started, request_id)

    keys = [k for r in records for k in r.get("object_keys", {}).get("SS", [])]
    kept = set().union(*pool.map(_delete_objects, _chunks(keys, 1000))) if keys else set()
    done = [r["id"]["S"] for r in records if not kept.intersection(r.get("object_keys", {}).get("SS", []))]
    list(pool.map(_delete_records, _chunks(done, 25)))
    done_set = set(done)

    now = int(time.time())
    fresh = jwt.encode({**claims, "iat": now, "exp": now + TTL}, SECRET, algorithm="HS256")
    deleted = [i for i in reversed(ids) if i in done_set]
    return _answer(
        200,
        json.dumps(deleted, separators=(",", ":")),
        started,
        request_id,
        {"Content-Type": "application/json; charset=utf-8", "X-token": fresh},
    )
