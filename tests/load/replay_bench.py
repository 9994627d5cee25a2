#!/usr/bin/env python3
"""Replay benchmark: scan and replay a generated archive with `okr-webhooks replay`.

    python3 tests/load/replay_bench.py target/release/okr-webhooks [EVENTS]

It writes an archive of EVENTS normalized events (default 1,000,000: the five events
of events/warehouse-sink/batch.json with new ids and 96 random hex digits each, so gzip
does no better than on real events, over ten days, 1,000 to an object) in the
warehouse's layout, then times, each with its peak memory (VmHWM of the process):

1. `replay --dry-run --to warehouse --to slack --to alerts` over all of it;
2. `replay --to warehouse` into a fresh data directory's queues (one message an event);
3. `replay --to warehouse --to slack --to alerts` into another (1 to 3 messages an event).

The figures go in docs/replay.md.
"""

import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def templates():
    with open(os.path.join(ROOT, "events/warehouse-sink/batch.json")) as f:
        records = json.load(f)["Records"]
    out = []
    for record in records:
        event = json.loads(record["body"])
        event["id"] = "@ID@"
        event["received_at"] = "@AT@"
        # Random bytes in every line, so gzip compresses it about as it does real ones.
        event["payload"]["trace"] = "@TRACE@"
        out.append(json.dumps(event, separators=(",", ":")))
    return out


def write_archive(root, events, days=10, per_object=1000):
    lines = templates()
    n = 0
    per_day = events // days
    for day in range(days):
        date = "2026-11-%02d" % (10 + day)
        directory = os.path.join(root, "events/v1", "date=" + date)
        os.makedirs(directory, exist_ok=True)
        done = 0
        part = 0
        while done < per_day:
            count = min(per_object, per_day - done)
            body = []
            for i in range(count):
                second = (done + i) % 86400
                at = "%sT%02d:%02d:%02dZ" % (date, second // 3600, second // 60 % 60, second % 60)
                line = lines[n % len(lines)]
                trace = os.urandom(48).hex()
                body.append(line.replace("@ID@", "evt_%032x" % n).replace("@AT@", at).replace("@TRACE@", trace))
                n += 1
            data = ("\n".join(body) + "\n").encode()
            name = os.path.join(directory, "part-%sT000000Z-%06d.ndjson.gz" % (date.replace("-", ""), part))
            with open(name, "wb") as f:
                f.write(gzip.compress(data, compresslevel=6))
            done += count
            part += 1
    return n


def run(label, events, command):
    """Run `command`; print its time, rate and peak memory (the children's max RSS)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(r.stderr)\n"
        "print(r.stdout, end='')\n"
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(r.returncode)\n"
    )
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", wrapper] + command, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit("%s failed:\n%s%s" % (label, result.stdout, result.stderr))
    peak_kib = int(result.stdout.rsplit("MAXRSS", 1)[1].split()[0])
    print("%-44s %8.2f s  %9.0f events/s  peak %6.1f MiB" % (label, elapsed, events / elapsed, peak_kib / 1024))
    return result.stdout


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    with tempfile.TemporaryDirectory() as work:
        archive = os.path.join(work, "archive")
        started = time.monotonic()
        n = write_archive(archive, events)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(archive) for f in fs)
        print("archive: %d events, %.0f MiB gzip, written in %.0f s" % (n, size / 2**20, time.monotonic() - started))
        base = [binary, "replay", "--from", archive]
        every = ["--to", "warehouse", "--to", "slack", "--to", "alerts"]
        out = run("scan (--dry-run, to all three)", n, base + ["--data-dir", os.path.join(work, "d0"), "--dry-run"] + every)
        assert ("would send %d event(s)" % n) in out, out
        out = run("replay into serve's queues (--to warehouse)", n, base + ["--data-dir", os.path.join(work, "d1"), "--to", "warehouse", "--name", "bench"])
        assert ("sent %d event(s)" % n) in out, out
        run("replay into serve's queues (to all three)", n, base + ["--data-dir", os.path.join(work, "d2"), "--name", "bench"] + every)


if __name__ == "__main__":
    main()
