#!/usr/bin/env python3
"""Load test of `okr-webhooks serve` on loopback, beside the seeds' Express receiver
(docs/performance.md).

usage: python3 tests/load/load.py PATH/TO/okr-webhooks [SECONDS] [CONNECTIONS] [RATE]
       (defaults: 10 s, 32 connections, 5000 a second)

1. Writes 300,000 distinct signed PeopleForce `employee_create` deliveries shaped like
   the sample in events/bodies (about 1.4 KB each), about a company of 5,000 people; a
   notable type, so each goes to three queues: the warehouse's, Slack's (whose consumer
   runs beside ingest and posts to a local stand-in) and the progress projection's
   (which keeps the people directory).
2. On an idle `serve`: sends 20 notable deliveries a second apart and measures the time
   from the 202 to the Slack stand-in receiving the message.
3. Saturation, three runs in a row: `wrk -t2 -cCONNECTIONS -dSECONDS` against a fresh
   `serve` (new data directory), then against the Express receiver from the PERSCOM
   seed document (verifies nothing, stores nothing: a floor for how fast a receiver can
   answer, not a peer in correctness), installed here from npm.
4. A fixed rate, open loop: `open_loop.js` sends RATE deliveries a second for SECONDS
   against a fresh `serve`, then against Express, each request at its scheduled time,
   its latency counted from that time.
5. Prints the tables: requests per second, p50, p99, peak memory (VmHWM) of each.
PERF=1 records a perf profile of serve during the first saturation run (build with
--profile profiling). Installs wrk with apt-get when missing, and Express from npm into
its work directory (removed at the end). One Express process serves every run: its
peak memory is the peak so far. Every request is bounded.
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
rate = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
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


# A company of 5,000 people: each delivery a distinct event about one of them (300,000
# new people in a minute would measure the directory the progress consumer keeps, which
# reads every person once a batch, not the receiver).
PEOPLE = 5000


def deliveries(secret, count):
    """Distinct employee_create bodies shaped like the PeopleForce sample, each signed."""
    sample = json.load(open(os.path.join(root, "events/bodies/peopleforce/employee_create.json")))
    for n in range(count):
        person = n % PEOPLE
        body = copy.deepcopy(sample)
        body["data"]["id"] = 1_000_000 + person
        attributes = body["data"]["attributes"]
        attributes["employee_number"] = f"PF{person:07d}"
        attributes["first_name"] = f"Employee{n}"
        attributes["email"] = f"employee{person}@example.com"
        attributes["personal_email"] = f"employee{person}.home@example.net"
        attributes["skills"] = ["Negotiation", "Customer onboarding", "SQL"]
        attributes["custom_fields"] = {"t_shirt_size": "M", "badge_number": f"B-{person:06d}",
                                       "emergency_contact": "Alex Doe, +1 555 0100"}
        text = json.dumps(body)
        yield "sha256=" + hmac.new(secret, text.encode(), hashlib.sha256).hexdigest(), text


SECRET = b"load-test-peopleforce-secret"


def start_serve(slack_port):
    """A fresh `serve` on its own data directory, holding SECRET for PeopleForce."""
    data_dir = tempfile.mkdtemp(prefix="data-", dir=work)
    with open(os.path.join(data_dir, "secrets.json"), "w") as out:
        json.dump({"peopleforce": SECRET.decode()}, out)
    port = free_port()
    serve = subprocess.Popen(
        [tool, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir,
         "--slack-webhook-url", f"http://127.0.0.1:{slack_port}/slack"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve.data_dir = data_dir
    try:
        wait_for(port, "/healthz")
    except BaseException:
        stop(serve)
        raise
    return serve, port


def stop(process):
    """Stop `process`; for a `serve`, remove its data directory and wait for the disk, so
    the next run does not share the disk with this one's write-back."""
    process.terminate()
    process.wait(timeout=60)
    if hasattr(process, "data_dir"):
        shutil.rmtree(process.data_dir)
        os.sync()


def slack_delays(port):
    """Time from a 202 to Slack, one notable delivery at a time, on an idle server."""
    delays = []
    for n in range(20):
        body = json.dumps({"action": "employee_create", "data": {"id": 10_000_000 + n, "attributes": {"first_name": f"Load{n}", "last_name": "Test"}}})
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        signature = "sha256=" + hmac.new(SECRET, body.encode(), hashlib.sha256).hexdigest()
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
    return delays


def open_loop(url, requests):
    """`open_loop.js` at RATE a second for SECONDS: (rate, p50, p99, non-2xx, errors, late)."""
    result = subprocess.run(
        ["node", os.path.join(here, "open_loop.js"), url, requests, str(rate), str(seconds),
         str(connections)], capture_output=True, text=True, timeout=seconds + 120, check=True)
    out = json.loads(result.stdout)
    if not out["answered"]:
        raise SystemExit(f"{url}: no request was answered ({out['errors']} errors)")
    return out["rate"], out["p50_ms"], out["p99_ms"], out["non_2xx"], out["errors"], out["late_ms"]


def main():
    express_dir = install()
    slack = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slack)
    threading.Thread(target=slack.serve_forever, daemon=True).start()
    requests = os.path.join(work, "requests.tsv")
    sizes = []
    with open(requests, "w") as out:
        for signature, body in deliveries(SECRET, 300_000):
            sizes.append(len(body))
            out.write(f"{signature}\t{body}\n")
    size = statistics.mean(sizes) / 1024
    os.sync()  # the requests' 360 MB written back before any run, not during one
    express_port = free_port()
    express = subprocess.Popen(["node", "app.js"], cwd=express_dir, env=dict(os.environ, PORT=str(express_port)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    express_url = f"http://127.0.0.1:{express_port}/webhook"
    saturated, fixed = [], []
    try:
        wait_for(express_port, "/webhook", "POST")
        serve, port = start_serve(slack.server_port)
        try:
            delays = slack_delays(port)
        finally:
            stop(serve)
        # Saturation, three runs in a row, each on a fresh serve, each beside Express.
        for run in range(1, 4):
            serve, port = start_serve(slack.server_port)
            try:
                profile = None
                if os.environ.get("PERF") and run == 1:  # PERF=1: perf record serve while wrk runs
                    profile = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-o", os.path.join(work, "perf.data"),
                                                "-p", str(serve.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                result = wrk(f"http://127.0.0.1:{port}/webhooks/peopleforce", requests)
                if profile:
                    profile.send_signal(2)
                    profile.wait(timeout=60)
                    print(f"perf report -i {work}/perf.data")
                saturated.append((f"{run}: serve", *result[:3], peak_mib(serve.pid), *result[3:]))
            finally:
                stop(serve)
            result = wrk(express_url, requests)
            saturated.append((f"{run}: Express", *result[:3], peak_mib(express.pid), *result[3:]))
        # A fixed rate, open loop: latency counted from each request's scheduled time.
        serve, port = start_serve(slack.server_port)
        try:
            fixed.append(("serve", *open_loop(f"http://127.0.0.1:{port}/webhooks/peopleforce", requests),
                          peak_mib(serve.pid)))
        finally:
            stop(serve)
        fixed.append(("Express", *open_loop(express_url, requests), peak_mib(express.pid)))
    finally:
        express.terminate()
        express.wait(timeout=30)
        slack.shutdown()

    print(f"distinct signed {size:.1f} KB employee_create deliveries; serve: verifies, stores durably, "
          "posts to Slack; the seeds' Express receiver: verifies and stores nothing")
    print(f"\nsaturation: wrk -t2 -c{connections} -d{seconds}s, three runs in a row")
    print("| run: receiver | requests/s | p50 | p99 | peak memory | non-2xx |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rate_, p50, p99, peak, non_2xx, errors in saturated:
        print(f"| {name} | {rate_:,.0f} | {p50:.1f} ms | {p99:.1f} ms | {peak:.1f} MiB | {non_2xx} {errors} |")
    for n in range(0, len(saturated), 2):
        print(f"run {n // 2 + 1}: serve / Express {saturated[n][1] / saturated[n + 1][1]:.2f}x")
    print(f"\nopen loop: {rate:,}/s for {seconds} s over at most {connections} connections "
          "(tests/load/open_loop.js; latency from each request's scheduled time)")
    print("| receiver | answered/s | p50 | p99 | non-2xx | errors | generator late by | peak memory |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rate_, p50, p99, non_2xx, errors, late, peak in fixed:
        print(f"| {name} | {rate_:,.0f} | {p50:.1f} ms | {p99:.1f} ms | {non_2xx} | {errors} | {late:.1f} ms | {peak:.1f} MiB |")
    print(f"\n202 -> Slack: p50 {statistics.median(delays):.1f} ms over {len(delays)} deliveries")
    if os.environ.get("PERF"):
        os.remove(requests)  # keep the profile, not the 360 MB of requests
    else:
        shutil.rmtree(work)


main()
