#!/usr/bin/env python3
"""Start-up of the ingest function against a local Lambda Runtime API stand-in, and
AWS stood in twice: by moto, and by tests/load/aws_at_once.py answering each call at
once; beside lambda_runtime's hello world built the same way (docs/performance.md).

usage: python3 tests/load/init.py [RUNS]          (default 30; run from the repository)

Builds both as `sam build` does (lambda_build.py), starts moto (tests/moto_server.py) with the
resources of tests/local_aws.py, then runs each binary RUNS times as Lambda would: with
AWS_LAMBDA_RUNTIME_API pointing at a stand-in that times, from the exec,
  init:  the first GET /runtime/invocation/next (the function is ready),
  first: the first invocation's response (ingest: the signed PeopleForce delivery of
         events/ingest/peopleforce.json, verified and enqueued on moto).
Then the same for ingest with AWS_ENDPOINT_URL at the at-once stand-in (the secrets
copied from moto), which measures our own start-up: the target is hello world + 8 ms.
Prints the median and the 90th percentile of each; ingest's must be 202.
"""
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import lambda_build

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """The Runtime API's three calls a function makes; one invocation per process."""
    protocol_version = "HTTP/1.1"
    run = None  # the current run: started, event, and what was seen

    def do_GET(self):
        run = RuntimeApi.run
        run.setdefault("seen", []).append(("GET", self.path, round((time.monotonic() - run["started"]) * 1000, 1)))
        if self.path != "/2018-06-01/runtime/invocation/next":
            return self.answer(404, b"{}")
        if "init" in run:
            # The second /next: the function waits for more, until it is killed.
            run["second"].set()
            run["killed"].wait(30)
            return
        run["init"] = time.monotonic() - run["started"]
        body = run["event"]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:ingest")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        run = RuntimeApi.run
        run.setdefault("seen", []).append(("POST", self.path, round((time.monotonic() - run["started"]) * 1000, 1)))
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.endswith("/response"):
            run["first"] = time.monotonic() - run["started"]
            run["response"] = json.loads(body)
        else:
            run["error"] = body.decode(errors="replace")
        self.answer(202, b"{}")
        run["done"].set()

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a killed function's held connection breaks: expected


def measure(binary, env, event):
    api = Server(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.server_port}",
               AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
               AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_LEVEL=os.environ.get("INIT_LOG_LEVEL", "WARN"),
               AWS_EC2_METADATA_DISABLED="true")
    inits, firsts = [], []
    try:
        for _ in range(runs):
            RuntimeApi.run = {"event": event, "done": threading.Event(), "killed": threading.Event(),
                              "second": threading.Event()}
            RuntimeApi.run["started"] = time.monotonic()
            process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            finished = RuntimeApi.run["done"].wait(30)
            # Its next /next, before it is killed: one arriving late would be taken for the
            # next run's first.
            RuntimeApi.run["second"].wait(5)
            process.kill()
            _, stderr = process.communicate(timeout=30)
            RuntimeApi.run["killed"].set()
            run = RuntimeApi.run
            if not finished or "error" in run:
                raise SystemExit(f"{binary}: no response in run {len(inits)}: {run.get('seen')} {run.get('error')} {stderr.decode(errors='replace')[-3000:]}")
            inits.append(run["init"] * 1000)
            firsts.append(run["first"] * 1000)
            last = run["response"]
    finally:
        api.shutdown()
    return inits, firsts, last


def listening(port):
    """Until something listens on `port` (10 s at most)."""
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)


def summary(values):
    values = sorted(values)
    return f"median {statistics.median(values):5.1f} ms, p90 {values[int(len(values) * 0.9) - 1]:5.1f} ms"


def main():
    built = lambda_build.build(["ingest"])
    moto_port = free_port()
    moto = subprocess.Popen([sys.executable, os.path.join(root, "tests/moto_server.py"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        moto_url = f"http://127.0.0.1:{moto_port}"
        listening(moto_port)
        lines = subprocess.run([sys.executable, os.path.join(root, "tests/local_aws.py"), moto_url],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        env = dict(os.environ)
        env.update(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
        event = open(os.path.join(root, "events/ingest/peopleforce.json"), "rb").read()
        hello = measure(built["hello_lambda"], env, b'{"hello": "world"}')
        ingest = measure(built["ingest"], env, event)
        if ingest[2].get("statusCode") != 202:
            raise SystemExit(f"ingest answered {ingest[2]}")
        print(f"{runs} runs each, exec -> first /next (init) and -> first response (first)")
        print(f"hello world: init {summary(hello[0])}; first {summary(hello[1])}")
        print(f"ingest:      init {summary(ingest[0])}; first {summary(ingest[1])} (202 from moto)")
        extra = statistics.median(ingest[0]) - statistics.median(hello[0])
        print(f"ingest init - hello world init: {extra:.1f} ms (median), against moto")
        at_once = at_once_env(env, moto_url)
        try:
            quick = measure(built["ingest"], at_once[0], event)
        finally:
            at_once[1].terminate()
            at_once[1].wait(timeout=30)
        if quick[2].get("statusCode") != 202:
            raise SystemExit(f"ingest answered {quick[2]} against the at-once stand-in")
        print(f"ingest:      init {summary(quick[0])}; first {summary(quick[1])} (202, AWS answering at once)")
        extra = statistics.median(quick[0]) - statistics.median(hello[0])
        print(f"ingest init - hello world init: {extra:.1f} ms (median), AWS answering at once (target: 8 ms)")
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def at_once_env(env, moto_url):
    """Start tests/load/aws_at_once.py with moto's secrets: the environment pointing at
    it, and its process."""
    import tempfile
    import boto3
    client = boto3.client("secretsmanager", endpoint_url=moto_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    secrets = {}
    for page in client.get_paginator("list_secrets").paginate():
        for entry in page["SecretList"]:
            value = client.get_secret_value(SecretId=entry["Name"])
            if "SecretString" in value:
                secrets[entry["Name"]] = value["SecretString"]
    path = os.path.join(tempfile.mkdtemp(prefix="okr-init-"), "secrets.json")
    json.dump(secrets, open(path, "w"))
    port = free_port()
    process = subprocess.Popen([sys.executable, os.path.join(root, "tests/load/aws_at_once.py"), str(port), path],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listening(port)
    return dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}"), process


main()
