#!/usr/bin/env bash
# The test command (README "Tests"): installs what the tests need from the package
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
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# moto: a local AWS API server (SQS, Secrets Manager) for the AWS adapters' tests, which
# start it themselves.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  'standardwebhooks==1.1.0' 'moto[server]==5.2.5'
export AWS_EC2_METADATA_DISABLED=true
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast
