#!/usr/bin/env python3
"""Load test of `okr-webhooks serve` on loopback (docs/local.md, "Performance").

usage: python3 tests/load/load.py PATH/TO/okr-webhooks [SECONDS] [CONNECTIONS]

1. Starts `serve` on 127.0.0.1:3900 with a fresh data directory and a local Slack
   stand-in, and pre-signs distinct PeopleForce `employee_update` deliveries (routed to
   the warehouse queue: one durable commit each).
2. Runs wrk (apt-get install wrk) against it: accepted webhooks per second, p50/p99.
3. Sends 20 notable deliveries a second and a half apart and measures the time from the
   202 to the Slack stand-in receiving the message.
4. Reports serve's peak memory (VmHWM).
Every request is bounded; everything stops by itself.
"""
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

tool = sys.argv[1]
seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
connections = int(sys.argv[3]) if len(sys.argv) > 3 else 64
here = os.path.dirname(os.path.abspath(__file__))
data_dir = tempfile.mkdtemp(prefix="okr-load-")

arrivals = {}


class Slack(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.monotonic()
        for name in re.findall(r"(Load\d+) Test joined", body.decode(errors="replace")):
            arrivals.setdefault(name, now)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


slack = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slack)
threading.Thread(target=slack.serve_forever, daemon=True).start()

serve = subprocess.Popen(
    [tool, "serve", "--addr", "127.0.0.1:3900", "--data-dir", data_dir,
     "--slack-webhook-url", f"http://127.0.0.1:{slack.server_port}/slack"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", 3900, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.1)
    secret = json.load(open(os.path.join(data_dir, "secrets.json")))["peopleforce"].encode()

    def signed(body):
        return "sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()

    requests = os.path.join(data_dir, "requests.tsv")
    with open(requests, "w") as out:
        for n in range(400_000):
            body = json.dumps({"action": "employee_update", "data": {"id": n, "attributes": {"first_name": f"U{n}"}}})
            out.write(f"{signed(body)}\t{body}\n")

    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", os.path.join(here, "requests.lua"),
         "http://127.0.0.1:3900/webhooks/peopleforce"],
        env=dict(os.environ, REQUESTS=requests), capture_output=True, text=True, timeout=seconds + 60)
    print(result.stdout)

    # Time from a 202 to Slack, one notable delivery at a time.
    delays = []
    for n in range(20):
        body = json.dumps({"action": "employee_create", "data": {"id": 10_000_000 + n, "attributes": {"first_name": f"Load{n}", "last_name": "Test"}}})
        connection = http.client.HTTPConnection("127.0.0.1", 3900, timeout=10)
        connection.request("POST", "/webhooks/peopleforce", body=body,
                           headers={"Content-Type": "application/json", "X-PeopleForce-Signature": signed(body)})
        assert connection.getresponse().status == 202
        accepted = time.monotonic()
        deadline = accepted + 10
        while f"Load{n}" not in arrivals and time.monotonic() < deadline:
            time.sleep(0.001)
        if f"Load{n}" in arrivals:
            delays.append((arrivals[f"Load{n}"] - accepted) * 1000)
        time.sleep(1.5)
    print(f"202 -> Slack: p50 {statistics.median(delays):.1f} ms over {len(delays)} deliveries")

    status = open(f"/proc/{serve.pid}/status").read()
    peak = re.search(r"VmHWM:\s+(\d+) kB", status).group(1)
    print(f"serve peak memory (VmHWM): {int(peak) / 1024:.1f} MiB")
finally:
    serve.terminate()
    serve.wait(timeout=30)
    slack.shutdown()
