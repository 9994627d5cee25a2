#!/usr/bin/env python3
"""The size of each function's deployment package: its release binary zipped as
`bootstrap` (what `sam build` and `cargo lambda build --output-format zip` upload),
beside lambda_runtime's hello world built with the same profile (docs/performance.md).

usage: python3 tests/load/sizes.py          (run from the repository; builds x86_64)
"""
import io
import os
import subprocess
import zipfile

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
functions = ["ingest", "warehouse-sink", "slack-notifier", "progress-alerts", "progress-projection",
             "email-summaries", "stalled-check", "people-snapshot", "subscription-sender"]

# Two builds: a target flag (--example) would apply to every package of one command.
command = ["cargo", "build", "--release", "-q"]
for function in functions:
    command += ["-p", function]
subprocess.run(command, cwd=root, check=True)
subprocess.run(["cargo", "build", "--release", "-q", "-p", "okr-webhooks-tests", "--example", "hello_lambda"],
               cwd=root, check=True)

print("| package | binary | zip (MiB, as Lambda's quotas count) | zip (bytes) |")
print("| --- | --- | --- | --- |")
target = os.path.join(root, "target/release")
for name, path in [(f, os.path.join(target, f)) for f in functions] + [
        ("hello world (yardstick)", os.path.join(target, "examples/hello_lambda"))]:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        out.write(path, "bootstrap")
    mib = 1024 * 1024
    zipped = len(archive.getvalue())
    print(f"| {name} | {os.path.getsize(path) / mib:.2f} MiB | {zipped / mib:.2f} MiB | {zipped:,} |")
