#!/usr/bin/env python3
"""moto's server (a local AWS API), plus the SQS message move tasks moto 5.2.5 lacks.

usage: python3 tests/moto_server.py [-H 127.0.0.1] [-p 5000]   (the same flags as moto_server)

`okr-webhooks dlq redrive --queue-url` moves a dead-letter queue's messages back with
StartMessageMoveTask and follows it with ListMessageMoveTasks. moto answers neither, so
this adds both with AWS's documented behaviour, for the tests and for local use:

- StartMessageMoveTask(SourceArn[, DestinationArn]): SourceArn must be a dead-letter
  queue; without DestinationArn the messages go back to the queue they came from (here:
  the one queue whose redrive policy names the dead-letter queue). Every visible message
  moves, as a new message, so its receive count starts again.
- ListMessageMoveTasks(SourceArn): newest task first. AWS lists a new task after a
  moment and moves in the background: here a task is missing from the first listing
  after its start, reported RUNNING in the next, then COMPLETED with
  ApproximateNumberOfMessagesMoved.
"""
import sys
import time
import uuid

from moto.core.responses import ActionResult
from moto.server import main
from moto.sqs.exceptions import SQSException
from moto.sqs.responses import SQSResponse

_tasks = {}  # source ARN -> tasks, newest first


def _queue_by_arn(backend, arn):
    for queue in backend.queues.values():
        if queue.queue_arn == arn:
            return queue
    raise SQSException("ResourceNotFoundException", f"The resource that you specified for the SourceArn parameter doesn't exist: {arn}")


def start_message_move_task(self):
    source_arn = self._get_param("SourceArn")
    destination_arn = self._get_param("DestinationArn")
    backend = self.sqs_backend
    dead_letter_queue = _queue_by_arn(backend, source_arn)
    sources = [q for q in backend.queues.values() if getattr(q, "dead_letter_queue", None) is dead_letter_queue]
    if not sources:
        raise SQSException("InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue.")
    if any(t["Status"] == "RUNNING" for t in _tasks.get(source_arn, [])):
        raise SQSException("UnsupportedOperation", "There is already a task running. Only one active task is allowed for a source queue arn at a given time.")
    if destination_arn:
        destination = _queue_by_arn(backend, destination_arn)
    elif len(sources) == 1:
        destination = sources[0]
    else:
        raise SQSException("UnsupportedOperation", "this stand-in returns messages only to a single source queue")

    with dead_letter_queue._messages_lock:
        moving = [m for m in dead_letter_queue._messages if m.visible]
        for message in moving:
            dead_letter_queue._messages.remove(message)
    for message in moving:
        backend.send_message(destination.name, message.body, message_attributes=message.message_attributes)

    handle = str(uuid.uuid4())
    task = {
        "TaskHandle": handle,
        "Status": "RUNNING",
        "SourceArn": source_arn,
        "ApproximateNumberOfMessagesMoved": len(moving),
        "ApproximateNumberOfMessagesToMove": len(moving),
        "StartedTimestamp": int(time.time() * 1000),
        "_unlisted": True,
    }
    if destination_arn:
        task["DestinationArn"] = destination_arn
    _tasks.setdefault(source_arn, []).insert(0, task)
    return ActionResult({"TaskHandle": handle})


def list_message_move_tasks(self):
    source_arn = self._get_param("SourceArn")
    _queue_by_arn(self.sqs_backend, source_arn)
    results = []
    for task in _tasks.get(source_arn, []):
        if task.pop("_unlisted", False):  # not listed yet
            continue
        if len(results) == int(self._get_param("MaxResults") or 1):
            break
        results.append(dict(task))
        if task["Status"] == "RUNNING":  # reported once as running, then done
            task["Status"] = "COMPLETED"
            del task["TaskHandle"]
    return ActionResult({"Results": results})


SQSResponse.start_message_move_task = start_message_move_task
SQSResponse.list_message_move_tasks = list_message_move_tasks

if __name__ == "__main__":
    main(sys.argv[1:])
