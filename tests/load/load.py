#!/usr/bin/env python3
"""Load test of `okr-webhooks serve` on loopback, beside the seeds' Express receiver
(docs/performance.md).

usage: python3 tests/load/load.py PATH/TO/okr-webhooks [SECONDS] [CONNECTIONS]
       (defaults: 10 s, 32 connections: wrk -t2 -c32 -d10s)

1. Writes distinct signed PeopleForce `employee_create` deliveries shaped like the
   sample in events/bodies (about 1.4 KB each; a notable type, so each goes to two
   queues: the warehouse and Slack, whose consumer runs beside ingest and posts to a
   local stand-in).
2. Starts `serve` on 127.0.0.1 with a fresh data directory and runs wrk against it.
3. Starts the Express receiver from the PERSCOM seed document (verifies nothing, stores
   nothing: a floor for how fast a receiver can answer, not a peer in correctness),
   installed here from npm, and runs the same wrk against it.
4. Prints one table: requests per second, p50, p99, peak memory (VmHWM) of each.
5. Before the load, on the idle server: sends 20 notable deliveries a second apart and
   measures the time from the 202 to the Slack stand-in receiving the message.
PERF=1 records a perf profile of serve while wrk runs (build with --profile profiling).
Installs wrk (apt-get) and express (npm) when missing. Every request is bounded.
"""
import copy
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

tool = os.path.abspath(sys.argv[1])
seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
connections = int(sys.argv[3]) if len(sys.argv) > 3 else 32
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
work = tempfile.mkdtemp(prefix="okr-load-")

EXPRESS_APP = """
const express = require('express');
const bodyParser = require('body-parser');

const app = express();

app.use(bodyParser.json());

app.post('/webhook', (req, res) => {
  const data = req.body;
  // do something with the data
  res.status(200).send('OK');
});

app.listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log('Webhook endpoint listening');
});
"""


def install():
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True,
                       stdout=subprocess.DEVNULL)
    express = os.path.join(work, "express")
    os.makedirs(express)
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund",
                    "express@4", "body-parser@1"], cwd=express, check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(express, "app.js"), "w") as out:
        out.write(EXPRESS_APP)
    return express


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, path, method="GET"):
    for _ in range(200):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request(method, path, body=b"{}" if method == "POST" else None,
                               headers={"Content-Type": "application/json"})
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing answered on port {port}")


def peak_mib(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def wrk(url, requests):
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
         os.path.join(here, "requests.lua"), url],
        env=dict(os.environ, REQUESTS=requests), capture_output=True, text=True,
        timeout=seconds + 60)
    out = result.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {p: re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M) for p in (50, 99)}
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    p50, p99 = (float(m.group(1)) * scale[m.group(2)] for m in latency.values())
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return rate, p50, p99, int(non_2xx.group(1)) if non_2xx else 0, errors.group(0) if errors else ""


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


def deliveries(secret, count):
    """Distinct employee_create bodies shaped like the PeopleForce sample, each signed."""
    sample = json.load(open(os.path.join(root, "events/bodies/peopleforce/employee_create.json")))
    for n in range(count):
        body = copy.deepcopy(sample)
        body["data"]["id"] = 1_000_000 + n
        attributes = body["data"]["attributes"]
        attributes["employee_number"] = f"PF{n:07d}"
        attributes["first_name"] = f"Employee{n}"
        attributes["email"] = f"employee{n}@example.com"
        attributes["personal_email"] = f"employee{n}.home@example.net"
        attributes["skills"] = ["Negotiation", "Customer onboarding", "SQL"]
        attributes["custom_fields"] = {"t_shirt_size": "M", "badge_number": f"B-{n:06d}",
                                       "emergency_contact": "Alex Doe, +1 555 0100"}
        text = json.dumps(body)
        yield "sha256=" + hmac.new(secret, text.encode(), hashlib.sha256).hexdigest(), text


def main():
    express_dir = install()
    data_dir = os.path.join(work, "data")
    slack = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slack)
    threading.Thread(target=slack.serve_forever, daemon=True).start()
    port = free_port()
    serve = subprocess.Popen(
        [tool, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir,
         "--slack-webhook-url", f"http://127.0.0.1:{slack.server_port}/slack"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait_for(port, "/healthz")
        secret = json.load(open(os.path.join(data_dir, "secrets.json")))["peopleforce"]
        secret = (secret[0] if isinstance(secret, list) else secret).encode()
        # Time from a 202 to Slack, one notable delivery at a time, on an idle server.
        delays = []
        for n in range(20):
            body = json.dumps({"action": "employee_create", "data": {"id": 10_000_000 + n, "attributes": {"first_name": f"Load{n}", "last_name": "Test"}}})
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            signature = "sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
            connection.request("POST", "/webhooks/peopleforce", body=body,
                               headers={"Content-Type": "application/json", "X-PeopleForce-Signature": signature})
            assert connection.getresponse().status == 202
            accepted = time.monotonic()
            deadline = accepted + 30
            while f"Load{n}" not in arrivals and time.monotonic() < deadline:
                time.sleep(0.001)
            if f"Load{n}" in arrivals:
                delays.append((arrivals[f"Load{n}"] - accepted) * 1000)
            time.sleep(1)
        requests = os.path.join(work, "requests.tsv")
        sizes = []
        with open(requests, "w") as out:
            for signature, body in deliveries(secret, 300_000):
                sizes.append(len(body))
                out.write(f"{signature}\t{body}\n")
        size = statistics.mean(sizes) / 1024
        profile = None
        if os.environ.get("PERF"):  # PERF=1: perf record serve while wrk runs
            profile = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-o", os.path.join(work, "perf.data"),
                                        "-p", str(serve.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rate, p50, p99, non_2xx, errors = wrk(f"http://127.0.0.1:{port}/webhooks/peopleforce", requests)
        if profile:
            profile.send_signal(2)
            profile.wait(timeout=60)
            print(f"perf report -i {work}/perf.data")
        rows.append(("okr-webhooks serve (verifies, stores durably, posts to Slack)", rate, p50, p99, peak_mib(serve.pid), non_2xx, errors))

    finally:
        serve.terminate()
        serve.wait(timeout=60)
        slack.shutdown()

    express_port = free_port()
    express = subprocess.Popen(["node", "app.js"], cwd=express_dir, env=dict(os.environ, PORT=str(express_port)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(express_port, "/webhook", "POST")
        rate, p50, p99, non_2xx, errors = wrk(f"http://127.0.0.1:{express_port}/webhook", requests)
        rows.append(("seeds' Express receiver (verifies and stores nothing)", rate, p50, p99, peak_mib(express.pid), non_2xx, errors))
    finally:
        express.terminate()
        express.wait(timeout=30)

    print(f"wrk -t2 -c{connections} -d{seconds}s, distinct signed {size:.1f} KB employee_create deliveries")
    print("| receiver | requests/s | p50 | p99 | peak memory | non-2xx |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rate, p50, p99, peak, non_2xx, errors in rows:
        print(f"| {name} | {rate:,.0f} | {p50:.1f} ms | {p99:.1f} ms | {peak:.1f} MiB | {non_2xx} {errors} |")
    print(f"serve / Express: {rows[0][1] / rows[1][1]:.2f}x")
    print(f"202 -> Slack: p50 {statistics.median(delays):.1f} ms over {len(delays)} deliveries")


main()
