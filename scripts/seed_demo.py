#!/usr/bin/env python3
"""Create the table and bucket (if missing) and store a demo album for `make run`.

The demo album is the seed document's album: its nine images plus three more, each
with an original and a thumbnail object. Uses boto3 from .tools/py and the standard
AWS_ENDPOINT_URL_* variables.
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


def main() -> None:
    table = os.environ.get("IMAGES_TABLE", "images")
    bucket = os.environ.get("IMAGES_BUCKET", "images")
    dynamodb = boto3.client("dynamodb")
    s3 = boto3.client("s3", config=boto3.session.Config(s3={"addressing_style": "path"}))
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
    queue = os.environ.get("CLEANUP_QUEUE_NAME", "image-cleanup")
    boto3.client("sqs").create_queue(QueueName=queue)
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


if __name__ == "__main__":
    main()
