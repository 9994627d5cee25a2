#!/usr/bin/env python3
"""The size of each function's deployment package as `sam build` and `sam deploy` make
it: each function built as `sam build` builds it (lambda_build.py), its `bootstrap`
zipped as `sam deploy` zips it, beside lambda_runtime's hello world built the same way
(docs/performance.md).

usage: python3 tests/load/sizes.py          (run from the repository; builds x86_64)
"""
import io
import os
import zipfile

import lambda_build

functions = ["ingest", "warehouse-sink", "slack-notifier", "progress-alerts", "progress-projection",
             "email-summaries", "stalled-check", "people-snapshot", "subscription-sender"]
built = lambda_build.build(functions)

print("| package | binary | zip (MiB, as Lambda's quotas count) | zip (bytes) |")
print("| --- | --- | --- | --- |")
for name, binary in [(f, f) for f in functions] + [("hello world (yardstick)", "hello_lambda")]:
    path = built[binary]
    archive = io.BytesIO()
    # As `sam deploy` zips a function's directory: deflate at zlib's default level.
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(path, "bootstrap")
    mib = 1024 * 1024
    zipped = len(archive.getvalue())
    print(f"| {name} | {os.path.getsize(path) / mib:.2f} MiB | {zipped / mib:.2f} MiB | {zipped:,} |")
