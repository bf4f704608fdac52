#!/usr/bin/env python3
"""Checks the security promises of template.yaml that cfn-lint cannot know about:
the cleanup triggers accept only their producers, the table cannot be deleted by
accident, the recovery window and read ceiling are wired, and the HTTP API routes
exactly the operations of openapi.yaml. Run by
`make lint-template` (and so by `make test`) with the Python of .tools/sam, whose
cfn-lint reads CloudFormation's YAML tags.
"""
import sys
import tomllib
from pathlib import Path

import yaml
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
template, errors = decode(str(ROOT / "template.yaml"))
if errors:
    sys.exit(f"template.yaml does not parse: {errors}")
resources = template["Resources"]
parameters = template["Parameters"]
failures = []
checks = 0


def expect(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)


def props(name):
    return resources.get(name, {}).get("Properties", {})


# AlbumDeleted: a bus of its own, a rule matching source and detail-type on it.
album_events = props("AlbumCleanupFunction").get("Events", {}).get("AlbumDeleted", {}).get("Properties", {})
pattern = album_events.get("Pattern", {})
expect(pattern.get("source") == [{"Ref": "AlbumEventSource"}], "the AlbumDeleted rule matches source")
expect(pattern.get("detail-type") == ["AlbumDeleted"], "the AlbumDeleted rule matches detail-type")
expect(album_events.get("EventBusName") == {"Ref": "AlbumEventBus"}, "the AlbumDeleted rule is on the album bus")
expect(resources.get("AlbumEventBus", {}).get("Type") == "AWS::Events::EventBus", "a dedicated event bus")

bus_policy = props("AlbumEventBusPolicy")
statement = bus_policy.get("Statement", {})
expect(bus_policy.get("EventBusName") == {"Ref": "AlbumEventBus"}, "the bus policy is on the album bus")
expect(statement.get("Effect") == "Deny" and statement.get("Action") == "events:PutEvents"
       and statement.get("Principal") == "*", "the bus policy denies PutEvents to everyone else")
expect("aws:PrincipalArn" in statement.get("Condition", {}).get("ArnNotEquals", {}),
       "the bus policy names its producers by principal ARN")

# CleanupQueue: only the stack's cleanup roles and the configured producers send.
queue_policy = props("CleanupQueuePolicy")
expect({"Ref": "CleanupQueue"} in queue_policy.get("Queues", []), "a policy on CleanupQueue")
statements = queue_policy.get("PolicyDocument", {}).get("Statement", [])
deny = [s for s in statements if s.get("Effect") == "Deny" and s.get("Action") == "sqs:SendMessage"
        and s.get("Principal") == "*"]
expect(len(deny) == 1, "the queue policy denies SendMessage to everyone else")
if deny:
    senders = str(deny[0].get("Condition", {}).get("ArnNotEquals", {}).get("aws:PrincipalArn"))
    for role in ("SqsCleanupRole", "AlbumCleanupRole", "ProducerRoleArns"):
        expect(role in senders, f"the queue policy lets {role} send")

# The table, the recovery window, the read ceiling.
table = props("ImagesTable")
expect(table.get("DeletionProtectionEnabled") is True, "the table has deletion protection")
expect(table.get("OnDemandThroughput", {}).get("Fn::If", [None])[0] == "CapReads",
       "the table's read ceiling comes from TableMaxReadRequestUnits")
expect(str(parameters.get("RecoveryWindowDays", {}).get("Default")) == "0",
       "RecoveryWindowDays defaults to 0 (no versioning)")
bucket = props("ImagesBucket")
expect(bucket.get("VersioningConfiguration", {}).get("Fn::If", [None])[0] == "Versioned",
       "versioning only with a recovery window or a trash")
expect(template.get("Conditions", {}).get("Versioned") == {"Fn::Or": [{"Condition": "Recoverable"}, {"Condition": "Trashing"}]},
       "Versioned means a recovery window or a trash")
# The trash: off by default, purged by TTL, listed through its index, wired to the function.
expect(str(parameters.get("TrashDays", {}).get("Default")) == "30", "TrashDays defaults to 30 (the trash is on)")
trash = props("TrashTable")
expect(resources.get("TrashTable", {}).get("Condition") == "Trashing", "the trash table exists only with a trash")
expect(trash.get("TimeToLiveSpecification") == {"AttributeName": "purge_at", "Enabled": True},
       "trash entries expire by TTL on purge_at")
expect(trash.get("DeletionProtectionEnabled") is True, "the trash table has deletion protection")
indexes = {i.get("IndexName"): i for i in trash.get("GlobalSecondaryIndexes", [])}
expect("album_id-listed_at-index" in indexes, "the trash's listing index")
expect("record" not in str(indexes.get("album_id-listed_at-index", {}).get("Projection")),
       "the listing index never holds the record")
env = props("DeleteImagesFunction").get("Environment", {}).get("Variables", {})
expect(env.get("TRASH_DAYS") == {"Ref": "TrashDays"}, "the function reads TrashDays")
expect("TrashTable" in str(env.get("TRASH_TABLE")), "the function knows the trash table")
for name in ("SqsCleanupFunction", "AlbumCleanupFunction", "StreamCleanupFunction"):
    cleanup_env = props(name).get("Environment", {}).get("Variables", {})
    expect(cleanup_env.get("TRASH_DAYS") == {"Ref": "TrashDays"}, f"{name} trashes as the HTTP function does")
expect("NoncurrentVersionExpiration" in str(bucket.get("LifecycleConfiguration")),
       "noncurrent versions expire after the recovery window")

# The audit trail: the trash table's stream into events on the images bus, archived a
# year, retried in order, parked with an alarm; the bus is not the album bus.
expect(trash.get("StreamSpecification", {}).get("StreamViewType") == "NEW_AND_OLD_IMAGES",
       "the trash table streams old and new images (tombstones say who closed an entry)")
for name in ("ImagesEventBus", "AuditArchive", "AuditFunction", "AuditRole", "AuditFailureQueue"):
    expect(resources.get(name, {}).get("Condition") == "Trashing", f"{name} exists exactly with a trash")
archive = props("AuditArchive")
expect(archive.get("SourceArn") == {"Fn::GetAtt": ["ImagesEventBus", "Arn"]}, "the archive keeps the images bus")
expect(archive.get("RetentionDays") == 365, "audit events are archived a year")
expect(archive.get("EventPattern") == {"source": ["image-delete"]}, "the archive keeps every audit event")
audit = props("AuditFunction")
expect(audit.get("Environment", {}).get("Variables", {}).get("AUDIT_BUS") == {"Ref": "ImagesEventBus"},
       "the audit function publishes to the images bus")
audit_events = [e.get("Properties", {}) for e in audit.get("Events", {}).values() if e.get("Type") == "DynamoDB"]
expect(len(audit_events) == 1, "one stream source for the audit function")
if audit_events:
    source = audit_events[0]
    expect(source.get("Stream") == {"Fn::GetAtt": ["TrashTable", "StreamArn"]}, "the audit reads the trash table's stream")
    expect(source.get("StartingPosition") == "TRIM_HORIZON", "the audit starts from the oldest change kept")
    expect("ReportBatchItemFailures" in source.get("FunctionResponseTypes", []),
           "a batch is delivered again from its first unpublished record")
    expect(source.get("MaximumRetryAttempts") == -1, "the audit retries until the record age limit")
    expect(0 < source.get("MaximumRecordAgeInSeconds", 0) < 86400,
           "a failing batch is parked while the stream still keeps it")
    expect(source.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
           == {"Fn::GetAtt": ["AuditFailureQueue", "Arn"]}, "parked audit batches go to their queue")
audit_actions = {}
for st in props("AuditRole").get("Policies", [{}])[0].get("PolicyDocument", {}).get("Statement", []):
    actions = st.get("Action") if isinstance(st.get("Action"), list) else [st.get("Action")]
    for action in actions:
        audit_actions[action] = st.get("Resource")
expect(audit_actions.get("events:PutEvents") == {"Fn::GetAtt": ["ImagesEventBus", "Arn"]},
       "the audit role puts events on the images bus only")
expect(not any(a.startswith(("s3:", "dynamodb:Put", "dynamodb:Delete", "dynamodb:BatchWrite")) for a in audit_actions),
       "the audit role writes no image, object or entry")

# Expiries: the trash stream's TTL removals reach the cleanup code, which only hides.
expiry = props("ExpiryCleanupFunction")
expect(resources.get("ExpiryCleanupFunction", {}).get("Condition") == "Trashing", "expiry cleanup exists exactly with a trash")
expiry_events = [e.get("Properties", {}) for e in expiry.get("Events", {}).values() if e.get("Type") == "DynamoDB"]
expect(len(expiry_events) == 1 and expiry_events[0].get("Stream") == {"Fn::GetAtt": ["TrashTable", "StreamArn"]},
       "expiry cleanup reads the trash table's stream")
if expiry_events:
    filters = str(expiry_events[0].get("FilterCriteria"))
    expect("REMOVE" in filters and "dynamodb.amazonaws.com" in filters, "expiry cleanup sees only TTL removals")
expect(expiry.get("Environment", {}).get("Variables", {}).get("TRASH_TABLE") == {"Ref": "TrashTable"},
       "expiry cleanup knows which stream is the trash's")
expiry_actions = set()
for st in props("ExpiryCleanupRole").get("Policies", [{}])[0].get("PolicyDocument", {}).get("Statement", []):
    actions = st.get("Action") if isinstance(st.get("Action"), list) else [st.get("Action")]
    expiry_actions.update(actions)
expect(not any(a in expiry_actions for a in ("s3:DeleteObjectVersion", "dynamodb:BatchWriteItem", "dynamodb:PutItem")),
       "expiry cleanup never deletes a version or writes a record")
readers = [name for name, r in resources.items()
           for e in r.get("Properties", {}).get("Events", {}).values()
           if e.get("Type") == "DynamoDB" and e.get("Properties", {}).get("Stream") == {"Fn::GetAtt": ["TrashTable", "StreamArn"]}]
expect(len(readers) <= 2, "at most two readers of the trash stream (DynamoDB's advice per shard)")

# No role may list the bucket beyond the warm-up prefix (PRECONNECT).
for name, resource in resources.items():
    if resource.get("Type") != "AWS::IAM::Role":
        continue
    for policy in resource.get("Properties", {}).get("Policies", []):
        for st in policy.get("PolicyDocument", {}).get("Statement", []):
            actions = st.get("Action") if isinstance(st.get("Action"), list) else [st.get("Action")]
            if "s3:ListBucket" in actions:
                prefix = st.get("Condition", {}).get("StringEquals", {}).get("s3:prefix")
                expect(prefix == ".warm-up/", f"{name} lists only the warm-up prefix")

# The API's access log names the caller's address.
access_log = str(props("ImagesApi").get("AccessLogSettings", {}).get("Format", ""))
expect("$context.identity.sourceIp" in access_log, "the access log has the source IP")

# The HTTP API routes exactly what openapi.yaml describes: same paths, same methods.
routes = set()
for name, resource in resources.items():
    for event in resource.get("Properties", {}).get("Events", {}).values():
        if event.get("Type") == "HttpApi":
            routes.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
openapi = yaml.safe_load((ROOT / "openapi.yaml").read_text())
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
documented = {
    (method.upper(), path)
    for path, item in openapi.get("paths", {}).items()
    for method in item
    if method in HTTP_METHODS
}
expect(routes == documented, f"the HTTP API's routes {sorted(routes)} are openapi.yaml's {sorted(documented)}")

# `cargo lambda deploy` gives the HTTP function the template's settings (Cargo.toml).
deploy = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["metadata"]["lambda"]["bin"]["delete-images"]["deploy"]
function = props("DeleteImagesFunction")
globals_ = template.get("Globals", {}).get("Function", {})
sam_settings = {
    "memory": function.get("MemorySize", globals_.get("MemorySize")),
    "timeout": function.get("Timeout", globals_.get("Timeout")),
    "tracing": str(function.get("Tracing", globals_.get("Tracing"))).lower(),
    "runtime": function.get("Runtime", globals_.get("Runtime")),
    "description": function.get("Description"),
}
cargo_settings = {key: deploy.get(key) for key in sam_settings}
expect(cargo_settings == sam_settings, f"Cargo.toml's deploy settings {cargo_settings} are the template's {sam_settings}")

for failure in failures:
    print(f"template.yaml: missing: {failure}", file=sys.stderr)
print(f"template checks: {checks - len(failures)} hold, {len(failures)} fail")
sys.exit(1 if failures else 0)
