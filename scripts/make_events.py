#!/usr/bin/env python3
"""Regenerate the request fixtures under events/ (one per event source).

Each carries a long-lived token signed with the documented dev secret, so that
`cargo lambda invoke --data-file events/<name>.json` works against `make run`.
"""
import base64
import json
import pathlib

from devtoken import mint
from seed_data import DEV_SECRET, SEED_ALBUM, SEED_IDS

EVENTS = pathlib.Path(__file__).resolve().parent.parent / "events"
TOKEN = mint(DEV_SECRET, [SEED_ALBUM], "image_list", exp=4102444800, iat=1764374400)
AUTH = f'Token token="{TOKEN}"'
FORM = "&".join(f"image_ids[]={i}" for i in SEED_IDS)
FORM_TYPE = "application/x-www-form-urlencoded"
COMMON = {
    "accept": "application/json",
    "authorization": AUTH,
    "host": "example.org",
    "user-agent": "curl/8.5.0",
    "x-forwarded-for": "203.0.113.10",
    "x-forwarded-port": "443",
    "x-forwarded-proto": "https",
}


def rest(path, body, content_type, resource, path_parameters=None):
    headers = {**COMMON, "content-type": content_type}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "DELETE",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "resourceId": "r2d2c3",
            "stage": "prod",
            "requestId": "3cdcadc9-532d-4f5e-8826-8584694cf195",
            "extendedRequestId": "Kx9aWFmDoAMEbxg=",
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
            "resourcePath": resource,
            "httpMethod": "DELETE",
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "requestTime": "29/Nov/2026:09:00:00 +0000",
            "requestTimeEpoch": 1796029200000,
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def v2(domain, route_key, body, content_type, raw_query="", query=None):
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": "/api/v1/images",
        "rawQueryString": raw_query,
        **({"queryStringParameters": query} if query else {}),
        "headers": {**COMMON, "content-type": content_type, "host": domain},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": "DELETE",
                "path": "/api/v1/images",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": route_key,
            "stage": "$default",
            "time": "29/Nov/2026:09:00:00 +0000",
            "timeEpoch": 1796029200000,
        },
        "body": base64.b64encode(body.encode()).decode(),
        "isBase64Encoded": True,
    }


def alb():
    # ALB passes query keys through undecoded.
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/images/6d0ecf831eec9f09"
            }
        },
        "httpMethod": "DELETE",
        "path": "/api/v1/images",
        "multiValueQueryStringParameters": {"image_ids%5B%5D": SEED_IDS[:2]},
        "multiValueHeaders": {k: [v] for k, v in {**COMMON, "x-amzn-trace-id": "Root=1-67890abc-0123456789abcdef01234567"}.items()},
        "body": "",
        "isBase64Encoded": False,
    }


def sqs_jobs():
    bodies = [
        json.dumps({"image_ids": SEED_IDS[:2]}),
        "image_ids[]=not-a-json-job",
        json.dumps({"album_id": SEED_ALBUM}),
    ]
    return {
        "Records": [
            {
                "messageId": f"0c1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5{n}",
                "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{n}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1796029200000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1796029200001",
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:image-cleanup",
                "awsRegion": "us-east-1",
            }
            for n, body in enumerate(bodies)
        ]
    }


def album_deleted():
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "AlbumDeleted",
        "source": "com.example.albums",
        "account": "123456789012",
        "time": "2026-11-29T09:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"album_id": SEED_ALBUM},
    }


def stream_records():
    image_id = SEED_IDS[2]
    keys = [f"albums/{SEED_ALBUM}/{image_id}/{name}" for name in ("original.jpg", "thumb.jpg")]

    def record(n, name, old_image, new_image):
        change = {
            "ApproximateCreationDateTime": 1796029200,
            "Keys": {"id": {"S": image_id}},
            "SequenceNumber": f"11100000000000000000000{n}",
            "SizeBytes": 256,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if old_image:
            change["OldImage"] = old_image
        if new_image:
            change["NewImage"] = new_image
        return {
            "eventID": f"c4ca4238a0b923820dcc509a6f75849{n}",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": change,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/images/stream/2026-11-29T00:00:00.000",
        }

    image = {"id": {"S": image_id}, "album_id": {"S": SEED_ALBUM}, "object_keys": {"SS": keys}}
    removed = record(2, "REMOVE", image, None)
    # A TTL expiry: removed by the DynamoDB service itself.
    removed["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return {
        "Records": [
            record(1, "MODIFY", image, {**image, "title": {"S": "renamed"}}),
            removed,
        ]
    }


FORGED = f'Token token="{mint("not-the-key-" + DEV_SECRET, [SEED_ALBUM, "*"], "image_delete", exp=4102444800, iat=1764374400)}"'


def with_headers(event, single=None, multi=None):
    """`event` with its header maps replaced (None: the map is left out)."""
    event = json.loads(json.dumps(event))
    for key, value in (("headers", single), ("multiValueHeaders", multi)):
        event.pop(key, None)
        if value is not None:
            event[key] = value
    return event


def repeated_headers():
    """events/crafted/repeated/: events that repeat a header whose meaning a second
    copy changes, in every shape the function accepts, named by the answer each must
    get (401, 400), and one-header controls (ok-) that must reach the stores."""
    rest_event = rest("/api/v1/images", FORM, FORM_TYPE, "/api/v1/images")
    http_event = v2("a1b2c3d4e5.execute-api.us-east-1.amazonaws.com", "DELETE /api/v1/images", FORM, FORM_TYPE)
    url_event = v2(
        "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
        "$default",
        json.dumps({"image_ids": SEED_IDS[:3]}),
        "application/json",
    )
    alb_event = alb()
    base = {k: v for k, v in rest_event["headers"].items() if k != "authorization"}
    multi_base = {k: [v] for k, v in base.items()}
    alb_base = {k: v[0] for k, v in alb_event["multiValueHeaders"].items() if k != "authorization"}

    def rest_with(single_auth, multi_auth, **extra):
        single = {**base, **({"authorization": single_auth} if single_auth else {}), **extra.get("single", {})}
        multi = {**multi_base, **({"authorization": multi_auth} if multi_auth else {}), **extra.get("multi", {})}
        return with_headers(rest_event, single, multi)

    def alb_multi(values, **more):
        return with_headers(alb_event, None, {**{k: [v] for k, v in alb_base.items()}, "authorization": values, **more})

    def alb_single(**headers):
        return with_headers(alb_event, {**alb_base, **headers}, None)

    def v2_with(event, authorization, **more):
        return with_headers(event, {**event["headers"], "authorization": authorization, **more}, None)

    return {
        # REST (v1): API Gateway puts the last copy in headers, all in multiValueHeaders.
        "401-v1-forged-first.json": rest_with(AUTH, [FORGED, AUTH]),
        "401-v1-forged-last.json": rest_with(FORGED, [AUTH, FORGED]),
        "401-v1-two-equal.json": rest_with(AUTH, [AUTH, AUTH]),
        "401-v1-maps-disagree.json": rest_with(AUTH, [FORGED]),
        "401-v1-mixed-case-single.json": rest_with(AUTH, [AUTH], single={"Authorization": FORGED}),
        "401-v1-mixed-case-multi.json": rest_with(AUTH, [AUTH], multi={"AUTHORIZATION": [FORGED]}),
        "401-v1-comma.json": rest_with(f"{FORGED},{AUTH}", [f"{FORGED},{AUTH}"]),
        # ALB, multi-value headers on and off.
        "401-alb-multi-forged-first.json": alb_multi([FORGED, AUTH]),
        "401-alb-multi-forged-last.json": alb_multi([AUTH, FORGED]),
        "401-alb-single-mixed-case.json": alb_single(Authorization=FORGED, authorization=AUTH),
        # HTTP API (v2) and function URLs join copies with a comma.
        "401-v2-comma.json": v2_with(http_event, f"{FORGED},{AUTH}"),
        "401-v2-two-equal.json": v2_with(http_event, f"{AUTH},{AUTH}"),
        "401-url-comma.json": v2_with(url_event, f"{FORGED},{AUTH}"),
        "401-url-mixed-case.json": v2_with(url_event, AUTH, Authorization=FORGED),
        # Content-Type and Content-Encoding: which copy says how to read the body?
        "400-v1-content-type-twice.json": rest_with(
            AUTH, [AUTH], multi={"content-type": [FORM_TYPE, "application/json"]}
        ),
        "400-v2-content-type-comma.json": v2_with(http_event, AUTH, **{"content-type": f"{FORM_TYPE},application/json"}),
        "400-alb-content-encoding-twice.json": alb_multi([AUTH], **{"content-encoding": ["identity", "gzip"]}),
        "400-url-content-encoding-comma.json": v2_with(url_event, AUTH, **{"content-encoding": "identity,gzip"}),
        # Controls: one copy in every shape reaches the stores.
        "ok-v1-once.json": rest_with(AUTH, [AUTH]),
        "ok-v1-multi-only.json": with_headers(rest_event, None, {**multi_base, "authorization": [AUTH]}),
        "ok-v1-request-id-twice.json": rest_with(AUTH, [AUTH], multi={"x-request-id": ["caller-1", "caller-2"]}),
        "ok-alb-multi-once.json": alb_multi([AUTH]),
        "ok-alb-single-once.json": alb_single(authorization=AUTH),
        "ok-v2-once.json": v2_with(http_event, AUTH),
        "ok-url-once.json": v2_with(url_event, AUTH),
    }


def main():
    fixtures = {
        "apigw-rest-bulk-delete.json": rest("/api/v1/images", FORM, FORM_TYPE, "/api/v1/images"),
        "apigw-rest-delete-one.json": rest(
            f"/api/v1/images/{SEED_IDS[0]}", None, FORM_TYPE, "/api/v1/images/{id}", {"id": SEED_IDS[0]}
        ),
        "apigw-http-bulk-delete.json": v2(
            "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com", "DELETE /api/v1/images", FORM, FORM_TYPE
        ),
        "function-url-bulk-delete.json": v2(
            "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
            "$default",
            json.dumps({"image_ids": SEED_IDS[:3]}),
            "application/json",
        ),
        "alb-bulk-delete.json": alb(),
    }
    fixtures.update(
        {
            "cleanup/sqs-jobs.json": sqs_jobs(),
            "cleanup/album-deleted.json": album_deleted(),
            "cleanup/stream-remove.json": stream_records(),
        }
    )
    fixtures.update({f"crafted/repeated/{name}": event for name, event in repeated_headers().items()})
    (EVENTS / "cleanup").mkdir(exist_ok=True)
    (EVENTS / "crafted" / "repeated").mkdir(parents=True, exist_ok=True)
    for name, event in fixtures.items():
        (EVENTS / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote events/{name}")


if __name__ == "__main__":
    main()
