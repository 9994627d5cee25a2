"""Build Lambda functions as `sam build` builds this template's: `cargo lambda build
--release --bin NAME`, one function a command. cargo-lambda adds the settings of
`[workspace.metadata.lambda.build]` in Cargo.toml (optimized for size but for the crates a
delivery runs through) and, where the profile leaves them unset, its own: aborting on a
panic and `-C target-cpu=haswell` (x86_64). So a function's binary differs from `cargo
build --release`'s, the profile `okr-webhooks serve` is installed with.

Used by sizes.py and init.py (run from the repository); needs cargo-lambda, on PATH or
where the test command (tests/run.sh) installs it.
"""
import os
import shutil
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tools_path():
    """PATH with the test command's tools first: cargo-lambda, and the Zig it links with."""
    tools = os.environ.get("OKR_WEBHOOKS_TOOLS", os.path.expanduser("~/.cache/okr-webhooks/tools"))
    return os.path.join(tools, "commands") + os.pathsep + os.environ.get("PATH", "")


def build(functions):
    """Build `functions` and lambda_runtime's hello world (`hello_lambda`, the yardstick);
    returns each one's `bootstrap`, by name."""
    env = dict(os.environ, PATH=tools_path())
    command = shutil.which("cargo-lambda", path=env["PATH"])
    if command is None:
        sys.exit("cargo-lambda is not on PATH or among the test command's tools; the test command "
                 "(tests/run.sh) installs it")
    for function in functions:
        subprocess.run([command, "lambda", "build", "--release", "-q", "--bin", function], cwd=root, env=env,
                       check=True)
    subprocess.run([command, "lambda", "build", "--release", "-q", "-p", "okr-webhooks-tests",
                    "--example", "hello_lambda"], cwd=root, env=env, check=True)
    return {name: os.path.join(root, "target/lambda", name, "bootstrap") for name in functions + ["hello_lambda"]}
