#!/usr/bin/env python3
"""Create the table and bucket (if missing) and store a demo album for `make run`.

With TRASH_DAYS > 0 (make run's default) it also creates the trash table
(TRASH_TABLE, with the listing's index) and turns versioning on in the bucket, as
template.yaml does with TrashDays.

With SEED_BUS=1 (RUN_BIN=audit make run) it creates the audit bus (AUDIT_BUS) and a
rule forwarding its events to the queue image-audit; `seed_demo.py show-audit` prints
the events waiting there.

The demo album is the seed document's album: its nine images plus three more, each
with an original and a thumbnail object. Uses boto3 from .tools/py and the standard
AWS_ENDPOINT_URL_* variables. Every client it makes must have an endpoint override:
demo data never goes to a real AWS account, so a missing one stops the script.
"""
import os
import sys

import boto3
from botocore.exceptions import ClientError

from seed_data import SEED_ALBUM, SEED_IDS

DEMO_IDS = SEED_IDS + [
    "a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
    "b4e2d3c5-6f70-4b8c-9dae-1f2a3b4c5d6e",
    "c5f3e4d6-7081-4c9d-aebf-2a3b4c5d6e7f",
]


def local_client(service: str, variable: str, **kwargs):
    """A boto3 client for `service`, only if the environment points it somewhere."""
    endpoint = os.environ.get(variable) or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        sys.exit(
            f"seed_demo.py: {variable} is not set, so {service} calls would go to real AWS; "
            "set it to a local endpoint (make run sets it when it starts the emulators)"
        )
    return boto3.client(service, endpoint_url=endpoint, **kwargs)


AUDIT_QUEUE = "image-audit"


def create_bus(bus: str) -> None:
    """The images bus and a rule sending every audit event to the AUDIT_QUEUE queue."""
    events = local_client("events", "AWS_ENDPOINT_URL_EVENTBRIDGE")
    sqs = local_client("sqs", "AWS_ENDPOINT_URL_SQS")
    try:
        events.create_event_bus(Name=bus)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    queue = sqs.create_queue(QueueName=AUDIT_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="audit-to-queue", EventBusName=bus, EventPattern='{"source": ["image-delete"]}')
    events.put_targets(Rule="audit-to-queue", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])


def show_audit() -> None:
    """Prints (and removes) the audit events waiting on the AUDIT_QUEUE queue."""
    sqs = local_client("sqs", "AWS_ENDPOINT_URL_SQS")
    queue = sqs.get_queue_url(QueueName=AUDIT_QUEUE)["QueueUrl"]
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not messages:
            return
        for message in messages:
            print(message["Body"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def main() -> None:
    if sys.argv[1:] == ["show-audit"]:
        show_audit()
        return
    table = os.environ.get("IMAGES_TABLE", "images")
    bucket = os.environ.get("IMAGES_BUCKET", "images")
    dynamodb = local_client("dynamodb", "AWS_ENDPOINT_URL_DYNAMODB")
    s3 = local_client(
        "s3", "AWS_ENDPOINT_URL_S3", config=boto3.session.Config(s3={"addressing_style": "path"})
    )
    try:
        dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "album_id", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "album_id-index",
                    "KeySchema": [{"AttributeName": "album_id", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
        )
        dynamodb.get_waiter("table_exists").wait(TableName=table)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceInUseException":
            raise
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    if int(os.environ.get("TRASH_DAYS", "0") or 0) > 0:
        create_trash(dynamodb, s3, os.environ.get("TRASH_TABLE", f"{table}-trash"), bucket)
    # The audit function's bus, with a rule forwarding its events to a queue to read.
    if os.environ.get("SEED_BUS") == "1":
        create_bus(os.environ.get("AUDIT_BUS", "images"))
    # Only the cleanup function hands work on through the queue.
    if os.environ.get("SEED_QUEUE") == "1":
        queue = os.environ.get("CLEANUP_QUEUE_NAME", "image-cleanup")
        local_client("sqs", "AWS_ENDPOINT_URL_SQS").create_queue(QueueName=queue)
    for image_id in DEMO_IDS:
        keys = [f"albums/{SEED_ALBUM}/{image_id}/{name}" for name in ("original.jpg", "thumb.jpg")]
        for key in keys:
            s3.put_object(Bucket=bucket, Key=key, Body=b"\xff\xd8\xff\xe0demo", ContentType="image/jpeg")
        dynamodb.put_item(
            TableName=table,
            Item={
                "id": {"S": image_id},
                "album_id": {"S": SEED_ALBUM},
                "object_keys": {"SS": keys},
                "title": {"S": f"demo image {image_id[:8]}"},
            },
        )
    print(f"seeded {len(DEMO_IDS)} images of album {SEED_ALBUM} into table {table!r} and bucket {bucket!r}", file=sys.stderr)


def create_trash(dynamodb, s3, trash: str, bucket: str) -> None:
    """The trash table (key id; index album_id + listed_at) and a versioned bucket."""
    try:
        dynamodb.create_table(
            TableName=trash,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "album_id", "AttributeType": "S"},
                {"AttributeName": "listed_at", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "album_id-listed_at-index",
                    "KeySchema": [
                        {"AttributeName": "album_id", "KeyType": "HASH"},
                        {"AttributeName": "listed_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {
                        "ProjectionType": "INCLUDE",
                        "NonKeyAttributes": ["deleted_at", "deleted_by", "deleted_by_kind", "purge_at"],
                    },
                }
            ],
        )
        dynamodb.get_waiter("table_exists").wait(TableName=trash)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceInUseException":
            raise
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    print(f"trash: table {trash!r}, bucket {bucket!r} versioned", file=sys.stderr)


if __name__ == "__main__":
    main()
