#!/usr/bin/env bash
# The test command (README "Tests", details in docs/testing.md): installs what the tests need from the package
# registries, then checks formatting and lints and runs every test. Nothing is skipped:
# a test that needs a tool fails when the tool is missing, so this script installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Independent signers for the interoperability tests: Ruby (PeopleForce's sample code),
# PHP (PERSCOM signs with hash_hmac), Java (Peoplelogic's JVM sample), and Python's
# standardwebhooks (the official library).
missing=()
command -v ruby >/dev/null || missing+=(ruby)
command -v php >/dev/null || missing+=(php-cli)
command -v java >/dev/null || missing+=(default-jre-headless)
# strace: the durability test watches `serve` sync its warehouse directories.
command -v strace >/dev/null || missing+=(strace)
# curl: the docs' walk-throughs (cli/tests/walkthroughs.rs) run their curl lines.
command -v curl >/dev/null || missing+=(curl)
# Headless Chromium and its WebDriver: the dashboard's browser tests drive a real browser.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# moto: a local AWS API server (SQS, Secrets Manager, DynamoDB, SES) for the AWS
# adapters' tests, aiosmtpd: a real SMTP server for the email tests, and
# opentelemetry-proto for tests/otlp_collector.py (the traces walk-through's collector);
# the tests start them themselves.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  'standardwebhooks==1.1.0' 'moto[server]==5.2.5' 'aiosmtpd==1.4.6' 'opentelemetry-proto==1.45.2'
export AWS_EC2_METADATA_DISABLED=true
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

# The AWS SAM CLI (it brings cfn-lint), cargo-lambda, which `sam build` calls, and Zig,
# which cargo-lambda links with (it targets Lambda's glibc, and arm64 from any host), for
# the template checks: in their own virtual environment, as the SAM CLI pins its own
# boto3. Zig comes as PyPI's `ziglang` wheel, pinned here (cargo-lambda itself asks for
# any version).
tools="${OKR_WEBHOOKS_TOOLS:-$HOME/.cache/okr-webhooks/tools}"
if [ ! -x "$tools/bin/pip" ]; then
  if ! python3 -m venv "$tools" 2>/dev/null; then
    rm -rf "$tools"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$tools"
  fi
fi
"$tools/bin/pip" install --quiet --disable-pip-version-check \
  'aws-sam-cli==1.170.0' 'cargo-lambda==1.9.2' 'ziglang==0.13.0'
# Only these commands on PATH: the environment's own python3 lacks the tests' packages.
mkdir -p "$tools/commands"
for command in sam cfn-lint cargo-lambda; do ln -sf "$tools/bin/$command" "$tools/commands/$command"; done
zig=$("$tools/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
ln -sf "$zig" "$tools/commands/zig"
export PATH="$tools/commands:$PATH" SAM_CLI_TELEMETRY=0

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cfn-lint template.yaml
sam validate --lint
# Every process the tests start carries this mark in its environment, so any left
# running after them (a browser, a server, a stand-in) is found, named and stopped, and
# fails the run: a test must end what it starts, also when it fails.
mark="okr-webhooks-tests-$$-$(date +%s)"
tests_status=0
OKR_WEBHOOKS_TEST_RUN="$mark" cargo nextest run --workspace --locked --no-fail-fast || tests_status=$?
left=()
for environ in /proc/[0-9]*/environ; do
  if tr '\0' '\n' 2>/dev/null < "$environ" | grep -xF "OKR_WEBHOOKS_TEST_RUN=$mark" >/dev/null; then
    pid=${environ#/proc/}
    left+=("${pid%/environ}")
  fi
done
if [ ${#left[@]} -gt 0 ]; then
  echo "left running after the tests:" >&2
  ps -o pid=,args= -p "$(IFS=,; echo "${left[*]}")" >&2 || true
  kill -KILL "${left[@]}" 2>/dev/null || true
  exit 1
fi
[ "$tests_status" -eq 0 ] || exit "$tests_status"
echo "tests: nothing left running"

# Every function builds the way `sam deploy` ships it (release, provided.al2023). These
# machines cannot build arm64, the template's default, so this builds x86_64.
# A sender, so the email summaries function (created only with one) is built too.
sam build --parameter-overrides Architecture=x86_64 EmailSender=okr@example.com
for function in IngestFunction WarehouseSinkFunction SlackNotifierFunction ProgressAlertsFunction ProgressProjectionFunction EmailSummariesFunction StalledCheckFunction PeopleSnapshotFunction SubscriptionSenderFunction; do
  bootstrap=".aws-sam/build/$function/bootstrap"
  [ -x "$bootstrap" ] || { echo "sam build made no $bootstrap" >&2; exit 1; }
  magic=$(od -An -tx1 -N4 "$bootstrap" | tr -d ' \n')
  machine=$(od -An -tx1 -j18 -N2 "$bootstrap" | tr -d ' \n')
  [ "$magic$machine" = 7f454c463e00 ] || { echo "$bootstrap is not an x86_64 ELF executable" >&2; exit 1; }
done
echo "sam build: all nine functions built"
