#!/usr/bin/env python3
"""Throughput of one subscription in `okr-webhooks serve` against a local receiver
(docs/performance.md, docs/subscriptions.md).

usage: python3 tests/load/subscriptions.py PATH/TO/okr-webhooks [COUNT]   (default 3000)

1. Starts a receiver on 127.0.0.1 that answers 200 at once (HTTP/1.1, keep-alive), and
   notes when each `webhook-id` arrives; every 100th post is verified with the official
   `standardwebhooks` library, so the signing is checked under load too.
2. Adds one subscription taking every event, starts `serve` with a fresh data directory.
3. Sends COUNT distinct signed PeopleForce hires (1.4 KB) over 8 connections.
4. Prints: ingest's rate (the yardstick: the 202s a second), the subscription's rate
   (posts a second, first to last arrival), and how long after the last 202 the last
   post arrived. Every event must arrive exactly once.
"""
import copy
import hashlib
import hmac
import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from standardwebhooks.webhooks import Webhook

tool = os.path.abspath(sys.argv[1])
count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
work = tempfile.mkdtemp(prefix="okr-subscriptions-load-")
arrivals = {}
repeats = []
unverified = []
lock = threading.Lock()
webhook = None


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message_id = self.headers["webhook-id"]
        now = time.monotonic()
        with lock:
            if message_id in arrivals:
                repeats.append(message_id)
            arrivals[message_id] = now
            check = len(arrivals) % 100 == 0
        if check:
            try:
                webhook.verify(body, dict(self.headers.items()))
            except Exception as error:  # noqa: BLE001 - reported below
                unverified.append(f"{message_id}: {error}")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hires(secret):
    """Distinct employee_create bodies shaped like the PeopleForce sample, each signed."""
    sample = json.load(open(os.path.join(root, "events/bodies/peopleforce/employee_create.json")))
    for n in range(count):
        body = copy.deepcopy(sample)
        body["data"]["id"] = 2_000_000 + n
        body["data"]["attributes"]["first_name"] = f"Employee{n}"
        text = json.dumps(body)
        yield "sha256=" + hmac.new(secret, text.encode(), hashlib.sha256).hexdigest(), text


def send(port, jobs, accepted):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for signature, body in jobs:
        connection.request("POST", "/webhooks/peopleforce", body=body,
                           headers={"Content-Type": "application/json",
                                    "X-PeopleForce-Signature": signature})
        response = connection.getresponse()
        response.read()
        assert response.status == 202, response.status
        with lock:
            accepted.append(time.monotonic())


def main():
    global webhook
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    data_dir = os.path.join(work, "data")
    added = subprocess.run(
        [tool, "subscriptions", "add", "load", "--url",
         f"http://127.0.0.1:{receiver.server_port}/in", "--data-dir", data_dir],
        check=True, capture_output=True, text=True).stdout
    webhook = Webhook(added.strip().splitlines()[-1])
    port = free_port()
    serve = subprocess.Popen([tool, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                break
            except OSError:
                time.sleep(0.05)
        secret = json.load(open(os.path.join(data_dir, "secrets.json")))["peopleforce"]
        secret = (secret[0] if isinstance(secret, list) else secret).encode()
        jobs = list(hires(secret))
        accepted = []
        threads = [threading.Thread(target=send, args=(port, jobs[i::8], accepted)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 600
        while len(arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        receiver.shutdown()
    assert len(arrivals) == count, f"{len(arrivals)} of {count} arrived"
    assert not repeats, f"{len(repeats)} repeated"
    assert not unverified, unverified[:3]
    times = sorted(arrivals.values())
    ingest_rate = count / (max(accepted) - min(accepted))
    rate = (count - 1) / (times[-1] - times[0])
    print(f"{count} signed PeopleForce hires, one subscription taking every event, receiver on loopback")
    print(f"  ingest (yardstick):   {ingest_rate:8.0f} deliveries/s accepted (202)")
    print(f"  subscription:         {rate:8.0f} posts/s, first to last arrival")
    print(f"  last post after last 202: {times[-1] - max(accepted):6.1f} s")
    print(f"  each once: {len(arrivals)} arrived, {len(repeats)} repeats; every 100th verified by standardwebhooks")


if __name__ == "__main__":
    main()
