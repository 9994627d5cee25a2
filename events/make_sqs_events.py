#!/usr/bin/env python3
"""Regenerate the consumers' sample SQS events (events/<function>/*.json) from the
provider bodies in events/bodies/, normalized by the okr-webhooks command.

usage: python3 events/make_sqs_events.py [path/to/okr-webhooks]
"""
import hashlib
import json
import pathlib
import subprocess
import sys
import uuid

EVENTS = pathlib.Path(__file__).resolve().parent
TOOL = sys.argv[1] if len(sys.argv) > 1 else "okr-webhooks"
RECEIVED_AT = "2026-11-20T09:30:00Z"
NAMESPACE = uuid.UUID("6f1d7c2e-4b0a-4c1e-9a57-0d7f3b1e2c44")


def normalized(source, body, queue, received_at=RECEIVED_AT, text=None):
    """Normalize events/bodies/<source>/<body>, or `text` when given, as `queue` gets it."""
    args = [TOOL, "normalize", "--source", source, "--received-at", received_at, "--queue", queue]
    if text is None:
        args.append(str(EVENTS / "bodies" / source / body))
    out = subprocess.run(args, input=text, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def record(queue, name, body_text, event=None, receive_count=1):
    attributes = {}
    if event is not None:
        attributes = {
            key: {"stringValue": event[field], "stringListValues": [], "binaryListValues": [], "dataType": "String"}
            for key, field in (("event_id", "id"), ("source", "source"), ("type", "type"))
        }
    return {
        "messageId": str(uuid.uuid5(NAMESPACE, f"{queue}/{name}")),
        "receiptHandle": "AQEB" + hashlib.sha256(f"{queue}/{name}".encode()).hexdigest(),
        "body": body_text,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1795253400000",
            "SenderId": "AROAEXAMPLE:ingest",
            "ApproximateFirstReceiveTimestamp": "1795253400100",
        },
        "messageAttributes": attributes,
        "md5OfBody": hashlib.md5(body_text.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:okr-webhooks-{queue}",
        "awsRegion": "us-east-1",
    }


def event_record(queue, source, body, text=None, **kwargs):
    event = normalized(source, body, queue, text=text)
    return record(queue, f"{source}/{body}", json.dumps(event, separators=(",", ":")), event, **kwargs)


def write(folder, name, records):
    path = EVENTS / folder / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"Records": records}, indent=2) + "\n")


# warehouse-sink
good = [
    event_record("warehouse", "peoplelogic", "objective_completed.json"),
    event_record("warehouse", "peopleforce", "employee_create.json"),
    event_record("warehouse", "perscom", "rankrecord_updated.json"),
]
write("warehouse-sink", "batch.json", good + [
    event_record("warehouse", "peoplelogic", "key_result_progress.json"),
    event_record("warehouse", "standard", "key_result_progress.json"),
])
write("warehouse-sink", "poison.json", good[:2] + [
    record("warehouse", "poison", '{"this": "is not a normalized event"}', receive_count=3),
] + good[2:])

# slack-notifier
slack = {
    "objective_completed": event_record("slack", "peoplelogic", "objective_completed.json"),
    "key_result_progress": event_record("slack", "peoplelogic", "key_result_progress.json"),
    "employee_created": event_record("slack", "peopleforce", "employee_create.json"),
    "award_created": event_record("slack", "perscom", "awardrecord_created.json"),
}
for name, one in slack.items():
    write("slack-notifier", f"{name}.json", [one])
# Twelve key results moving at once: more than the digest threshold (5), so one digest.
base = json.loads((EVENTS / "bodies" / "peoplelogic" / "key_result_progress.json").read_text())
burst = []
for n in range(12):
    body = dict(base, id=f"a7d4e9c0-2b1f-4e8a-9c3d-{n:012d}", title=f"Key result {n + 1}",
                currentValue={"previous": 100 + 20 * n, "current": 120 + 25 * n})
    burst.append(event_record("slack", "peoplelogic", f"burst-{n}.json", text=json.dumps(body)))
write("slack-notifier", "digest.json", burst)

# progress-alerts: one key result falling behind, recovering, then completed.
kr = {
    "eventType": "objective.patch", "id": "kr-activation-rate", "parentId": "obj-growth",
    "title": "Raise activation to 40%", "startingValue": 0, "targetValue": 100,
    "updatedBy": {"id": "u-7", "name": "Ana Lima"}, "startDate": "2025-04-01", "dueDate": "2025-06-30",
}
steps = {
    # 1 June: 68% of the quarter gone, 32% done: behind pace (32 < 68 - 15).
    "behind_pace": dict(kr, currentValue={"previous": 35, "current": 32},
                        status={"previous": "ON_TRACK", "current": "ON_TRACK"}, updatedAt="2025-06-01T09:00:00Z"),
    # 8 June: 70% done with 76% gone: back on pace.
    "recovered": dict(kr, currentValue={"previous": 32, "current": 70},
                      status={"previous": "ON_TRACK", "current": "ON_TRACK"}, updatedAt="2025-06-08T09:00:00Z"),
    "completed": dict(kr, currentValue={"previous": 70, "current": 100},
                      status={"previous": "ON_TRACK", "current": "COMPLETED"}, updatedAt="2025-06-20T09:00:00Z"),
}
for name, body in steps.items():
    write("progress-alerts", f"{name}.json", [event_record("alerts", "peoplelogic", f"{name}.json", text=json.dumps(body))])

# progress-projection: a key result's newer update before its older one, its objective,
# and a Standard Webhooks key result; applied by occurrence, whatever the order.
write("progress-projection", "batch.json", [
    event_record("progress", "peoplelogic", "key_result_progress_next.json"),
    event_record("progress", "peoplelogic", "key_result_progress.json"),
    event_record("progress", "peoplelogic", "objective_completed.json"),
    event_record("progress", "standard", "key_result_progress.json"),
])

# stalled-check: the seed's hire (John Doe, reporting to Ross Kate) and a key result John
# last updated on 17 November 2026, due at the end of March 2027, for the progress
# projection to apply: stalled at the sample run's time (scheduled.json, 7 December).
stalled = {
    "eventType": "objective.patch", "id": "kr-partner-deals", "parentId": "obj-growth",
    "title": "Renew the partner deals", "startingValue": 0, "targetValue": 100,
    "currentValue": {"previous": 30, "current": 40}, "status": {"previous": "ON_TRACK", "current": "ON_TRACK"},
    "updatedBy": {"id": "u-7", "name": "John Doe"}, "updatedAt": "2026-11-17T09:00:00Z",
    "startDate": "2026-10-01", "dueDate": "2027-03-31",
}
write("stalled-check", "progress.json", [
    event_record("progress", "peopleforce", "employee_create.json"),
    event_record("progress", "peoplelogic", "stalled.json", text=json.dumps(stalled)),
])
