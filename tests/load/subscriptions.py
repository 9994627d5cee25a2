#!/usr/bin/env python3
"""Throughput of one subscription in `okr-webhooks serve` against a local receiver
(docs/performance.md, docs/subscriptions.md).

usage: python3 tests/load/subscriptions.py PATH/TO/okr-webhooks [COUNT]   (default 3000)
       python3 tests/load/subscriptions.py PATH/TO/okr-webhooks --soak RATE SECONDS

1. Starts a receiver on 127.0.0.1 that answers 200 at once (HTTP/1.1, keep-alive), and
   notes when each `webhook-id` arrives; every 100th post is verified with the official
   `standardwebhooks` library, so the signing is checked under load too.
2. Adds one subscription taking every event, starts `serve` with a fresh data directory.
3. Sends COUNT distinct signed PeopleForce hires (1.4 KB) over 8 connections.
4. Prints: ingest's rate (the yardstick: the 202s a second), the subscription's rate
   (posts a second, first to last arrival), and how long after the last 202 the last
   post arrived. Every event must arrive exactly once.

With `--soak RATE SECONDS` (the soak of docs/performance.md: 1000 60), the deliveries go
out at a fixed RATE a second (each sent at its scheduled time, 16 connections) for
SECONDS, about a company of 5,000 people (each delivery a distinct event), and the receiver runs in a process of its own, so the load's Python does not
slow it. It prints the rate ingest accepted, the 202s' latency, how long after the
load stopped the last post arrived (the target: within 10 s), and `serve`'s peak memory.
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
soak = None
if len(sys.argv) > 2 and sys.argv[2] == "--soak":
    soak = (int(sys.argv[3]), int(sys.argv[4]))
    count = soak[0] * soak[1]
else:
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


def hires(secret, people=None):
    """Distinct employee_create bodies shaped like the PeopleForce sample, each signed;
    about `people` employees (each delivery a distinct event), or one each."""
    sample = json.load(open(os.path.join(root, "events/bodies/peopleforce/employee_create.json")))
    for n in range(count):
        body = copy.deepcopy(sample)
        body["data"]["id"] = 2_000_000 + (n % people if people else n)
        body["data"]["attributes"]["first_name"] = f"Employee{n}"
        text = json.dumps(body)
        yield "sha256=" + hmac.new(secret, text.encode(), hashlib.sha256).hexdigest(), text


def send(port, jobs, accepted, schedule=None):
    """Send `jobs` one after another; with a schedule, each at its time (or at once when
    late), noting each 202's latency from that time."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for n, (signature, body) in enumerate(jobs):
        due = schedule[n] if schedule else time.monotonic()
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        connection.request("POST", "/webhooks/peopleforce", body=body,
                           headers={"Content-Type": "application/json",
                                    "X-PeopleForce-Signature": signature})
        response = connection.getresponse()
        response.read()
        assert response.status == 202, response.status
        done = time.monotonic()
        with lock:
            accepted.append(done)
            latencies.append(done - due)


latencies = []


def receive_apart(port_out, arrived, stop, secret):
    """The receiver in a process of its own (soak): counts arrivals in `arrived` and, once
    `stop` is set, sends back {webhook-id: arrival times} through `port_out`."""
    global webhook
    webhook = Webhook(secret)
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    port_out.send(receiver.server_port)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()

    def count():
        while not stop.is_set():
            with lock:
                arrived.value = len(arrivals)
            time.sleep(0.02)
    threading.Thread(target=count, daemon=True).start()
    stop.wait()
    receiver.shutdown()
    with lock:
        port_out.send((arrivals, repeats, unverified))


def peak_memory_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


# The soak's company: 5,000 people, each delivery a distinct event about one of them (a
# directory of 60,000 new people in a minute measures the directory, not the consumers).
PEOPLE = 5000


def soak_run(rate, seconds):
    import multiprocessing
    data_dir = os.path.join(work, "data")
    # The subscription needs the receiver's port, the receiver the subscription's secret:
    # add it with a placeholder port first, then again with the receiver's.
    placeholder = f"http://127.0.0.1:{free_port()}/in"
    added = subprocess.run(
        [tool, "subscriptions", "add", "load", "--url", placeholder, "--data-dir", data_dir],
        check=True, capture_output=True, text=True).stdout
    secret = added.strip().splitlines()[-1]
    parent, child = multiprocessing.Pipe()
    arrived = multiprocessing.Value("i", 0)
    stop = multiprocessing.Event()
    receiver = multiprocessing.Process(target=receive_apart, args=(child, arrived, stop, secret))
    receiver.start()
    receiver_port = parent.recv()
    document_path = os.path.join(data_dir, "subscriptions.json")
    document = json.load(open(document_path))
    document["subscriptions"]["load"]["url"] = f"http://127.0.0.1:{receiver_port}/in"
    json.dump(document, open(document_path, "w"))
    port = free_port()
    serve = subprocess.Popen([tool, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        secret_key = json.load(open(os.path.join(data_dir, "secrets.json")))["peopleforce"]
        secret_key = (secret_key[0] if isinstance(secret_key, list) else secret_key).encode()
        jobs = list(hires(secret_key, PEOPLE))
        accepted = []
        start = time.monotonic() + 0.5
        schedule = [start + n / rate for n in range(count)]
        senders = 16
        threads = [threading.Thread(target=send, args=(port, jobs[i::senders], accepted, schedule[i::senders]))
                   for i in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stopped = max(accepted)
        deadline = time.monotonic() + 600
        while arrived.value < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)
        memory = peak_memory_mib(serve.pid)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        stop.set()
    got, repeated, bad = parent.recv()
    receiver.join()
    assert len(got) == count, f"{len(got)} of {count} arrived"
    assert not repeated, f"{len(repeated)} repeated"
    assert not bad, bad[:3]
    times = sorted(got.values())
    ordered = sorted(latencies)
    print(f"soak: {count} signed PeopleForce hires ({PEOPLE} people) at {rate}/s for {seconds} s, "
          f"one subscription taking every event, receiver on loopback")
    print(f"  ingest (yardstick):   {count / (stopped - start):8.0f} deliveries/s accepted (202), "
          f"202 p50 {ordered[len(ordered) // 2] * 1000:.1f} ms, p99 {ordered[len(ordered) * 99 // 100] * 1000:.1f} ms")
    print(f"  subscription:         {(count - 1) / (times[-1] - times[0]):8.0f} posts/s, first to last arrival")
    print(f"  last post after the load stopped: {times[-1] - stopped:6.1f} s (target: 10 s)")
    print(f"  serve's peak memory:  {memory:.1f} MiB")
    print(f"  each once: {len(got)} arrived, {len(repeated)} repeats; every 100th verified by standardwebhooks")


def wait_for(port):
    """Until `serve` on `port` answers /healthz (10 s at most)."""
    for _ in range(200):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)


def main():
    global webhook
    if soak:
        return soak_run(*soak)
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
        wait_for(port)
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
