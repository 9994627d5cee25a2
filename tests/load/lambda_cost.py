#!/usr/bin/env python3
"""Measure a built Lambda function the way Lambda bills it: run its `bootstrap` against
a local Lambda Runtime API, hand it the same event N times, and report the init time,
the invocation durations (from handing out the event to receiving the response) and
the process's CPU time per invocation and its peak memory (VmHWM).

usage: python3 tests/load/lambda_cost.py BOOTSTRAP EVENT.json COUNT ENV_FILE
  BOOTSTRAP  e.g. .aws-sam/build/IngestFunction/bootstrap (sam build)
  ENV_FILE   KEY=VALUE lines, e.g. from tests/local_aws.py (moto and a stand-in)

The figures feed the cost estimate in docs/aws.md. AWS services here are moto on
127.0.0.1, so a call costs what moto takes to answer, not what SQS in a region does.
"""
import http.server
import json
import os
import pathlib
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

bootstrap, event_file, count, env_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
event = pathlib.Path(event_file).read_bytes()
pending = queue.Queue()
started = {}
durations = []
errors = []
first_next = []
done = threading.Event()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out as separate writes: without this, Nagle's algorithm
        # and the client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            return self.reply(404)
        if not first_next:
            first_next.append(time.perf_counter())
        request_id = pending.get()
        if request_id is None:
            done.wait()
            return
        started[request_id] = time.perf_counter()
        deadline = int(time.time() * 1000) + 60_000
        self.reply(200, event, [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:measure"),
            ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
            ("Content-Type", "application/json"),
        ])

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        parts = self.path.split("/")
        if self.path.endswith("/response"):
            durations.append(time.perf_counter() - started[parts[-2]])
            if len(durations) == 1:
                print("first response:", body.decode()[:300], file=sys.stderr)
        else:
            errors.append(body.decode()[:500])
            durations.append(float("nan"))
        self.reply(202)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ)
for line in pathlib.Path(env_file).read_text().splitlines():
    if "=" in line:
        key, value = line.split("=", 1)
        env[key] = value
env.update({
    "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
    "AWS_LAMBDA_FUNCTION_NAME": "measure",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_LOG_FORMAT": "JSON",
    "AWS_LAMBDA_LOG_LEVEL": "WARN",
})
def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


spawned = time.perf_counter()
child = subprocess.Popen([bootstrap], env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)
while not first_next:
    time.sleep(0.001)
cpu_at_start = cpu_seconds(child.pid)
for i in range(count):
    pending.put(str(uuid.uuid4()))
    while len(durations) <= i:
        if child.poll() is not None:
            sys.exit(f"the function exited with {child.returncode}")
        time.sleep(0.0002)
cpu_per_invocation_ms = (cpu_seconds(child.pid) - cpu_at_start) * 1000 / count
peak_kib = next(
    int(line.split()[1]) for line in pathlib.Path(f"/proc/{child.pid}/status").read_text().splitlines()
    if line.startswith("VmHWM:")
)
child.kill()
child.wait()
done.set()

ok = sorted(d * 1000 for d in durations if d == d)
warm = ok[1:] or ok
result = {
    "function": bootstrap,
    "event": event_file,
    "invocations": len(durations),
    "errors": len(errors),
    "init_ms": round((first_next[0] - spawned) * 1000, 1),
    "first_ms": round(durations[0] * 1000, 2),
    "warm_p50_ms": round(statistics.median(warm), 2),
    "warm_p99_ms": round(warm[min(len(warm) - 1, int(len(warm) * 0.99))], 2),
    "warm_mean_ms": round(statistics.fmean(warm), 2),
    "cpu_ms_per_invocation": round(cpu_per_invocation_ms, 2),
    "peak_memory_mib": round(peak_kib / 1024, 1),
}
print(json.dumps(result))
if errors:
    print("errors:", errors[:3], file=sys.stderr)
    sys.exit(1)
