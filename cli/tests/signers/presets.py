# Signs a body the way each preset's vendor documents it, written from the vendors'
# own pages (not from our Rust code), with the standard library only.
# usage: python3 presets.py PRESET SECRET BODY_FILE [--now UNIX_SECONDS]
#        python3 presets.py --selftest
# Prints `Name: value` header lines; for lever (signature carried in the body) then
# a line `--body` followed by the body to send. The secret is used as UTF-8 text.
import base64
import hashlib
import hmac
import json
import secrets
import sys
import time
import uuid


def hmac_hex(secret, message, digest=hashlib.sha256):
    return hmac.new(secret.encode("utf-8"), message, digest).hexdigest()


# GitHub: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
# 'sha256=' + hmac.new(secret.encode('utf-8'), payload_body, hashlib.sha256).hexdigest()
def github(secret, body, now):
    return [
        ("X-Hub-Signature-256", "sha256=" + hmac_hex(secret, body)),
        ("X-GitHub-Delivery", str(uuid.uuid4())),
        ("X-GitHub-Event", "push"),
    ], None


# Jira Cloud: https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks
# X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>, the WebSub convention.
def jira(secret, body, now):
    return [
        ("X-Hub-Signature", "sha256=" + hmac_hex(secret, body)),
        ("X-Atlassian-Webhook-Identifier", secrets.token_hex(12)),
    ], None


# Greenhouse: https://developers.greenhouse.io/webhooks.html#authentication
# Signature: sha256 <hex HMAC-SHA256 of the body>  (a space, not '=')
def greenhouse(secret, body, now):
    return [("Signature", "sha256 " + hmac_hex(secret, body))], None


# Ashby: https://developers.ashbyhq.com/docs/authenticating-webhooks
# Ashby-Signature: sha256=<hex HMAC-SHA256 of the body>
def ashby(secret, body, now):
    return [("Ashby-Signature", "sha256=" + hmac_hex(secret, body))], None


# Lever: https://hire.lever.co/developer/documentation#verifying-webhooks
# The body carries token, triggeredAt (ms) and signature, where
# signature = hex HMAC-SHA256(signature token, token + triggeredAt).
def lever(secret, body, now):
    payload = json.loads(body)
    token = payload.get("token") or secrets.token_hex(16)
    triggered_at = payload.get("triggeredAt") or now * 1000
    payload["token"] = token
    payload["triggeredAt"] = triggered_at
    plain_text = (token + str(triggered_at)).encode("utf-8")
    payload["signature"] = hmac_hex(secret, plain_text)
    return [], json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# Workable: https://workable.readme.io/reference/webhook-subscriptions
# X-Workable-Signature: hex HMAC-SHA256 of the body with the subscription token.
def workable(secret, body, now):
    return [("X-Workable-Signature", hmac_hex(secret, body))], None


# BambooHR: https://documentation.bamboohr.com/docs/webhooks
# hash_hmac('sha256', $body . $timestamp, $privateKey), timestamp from X-BambooHR-Timestamp.
def bamboohr(secret, body, now):
    timestamp = str(now)
    return [
        ("X-BambooHR-Timestamp", timestamp),
        ("X-BambooHR-Signature", hmac_hex(secret, body + timestamp.encode("ascii"))),
    ], None


# HiBob: https://apidocs.hibob.com/docs/webhooks-overview
# Bob-Signature: base64 of HMAC-SHA512 of the body with the webhook's secret key.
def hibob(secret, body, now):
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha512).digest()
    return [("Bob-Signature", base64.b64encode(digest).decode("ascii"))], None


# Deel: https://developer.deel.com/docs/webhooks-security
# x-deel-signature: hex HMAC-SHA256 of 'POST' + raw body.
def deel(secret, body, now):
    return [("x-deel-signature", hmac_hex(secret, b"POST" + body))], None


# Gusto: https://docs.gusto.com/embedded-payroll/docs/webhooks
# X-Gusto-Signature: hex HMAC-SHA256 of the body with the verification_token.
def gusto(secret, body, now):
    return [("X-Gusto-Signature", hmac_hex(secret, body))], None


# Remote: https://developer.remote.com/docs/verifying-webhooks
# X-Remote-Signature: hex HMAC-SHA256 of raw_body + ':' + X-Remote-Timestamp (ms).
def remote(secret, body, now):
    timestamp_ms = str(now * 1000)
    return [
        ("X-Remote-Timestamp", timestamp_ms),
        ("X-Remote-Signature", hmac_hex(secret, body + b":" + timestamp_ms.encode("ascii"))),
    ], None


# Linear: https://linear.app/developers/webhooks#securing-webhooks
# Linear-Signature: hex HMAC-SHA256 of the raw body; webhookTimestamp (ms) sits in
# the body, which the caller supplies fresh, so the body is sent as it is.
def linear(secret, body, now):
    return [
        ("Linear-Signature", hmac_hex(secret, body)),
        ("Linear-Delivery", str(uuid.uuid4())),
    ], None


# Asana: https://developers.asana.com/docs/webhooks-guide#security
# X-Hook-Signature: hex HMAC-SHA256 of the body with the X-Hook-Secret from the handshake.
def asana(secret, body, now):
    return [("X-Hook-Signature", hmac_hex(secret, body))], None


PRESETS = {
    "github": github,
    "jira": jira,
    "greenhouse": greenhouse,
    "ashby": ashby,
    "lever": lever,
    "workable": workable,
    "bamboohr": bamboohr,
    "hibob": hibob,
    "deel": deel,
    "gusto": gusto,
    "remote": remote,
    "linear": linear,
    "asana": asana,
}


def selftest():
    # GitHub's documented test vector.
    headers, _ = github("It's a Secret to Everybody", b"Hello, World!", 0)
    got = dict(headers)["X-Hub-Signature-256"]
    want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    if got != want:
        print(f"selftest FAILED: github gave {got}, expected {want}", file=sys.stderr)
        return 1
    print("selftest ok")
    return 0


def main(argv):
    if argv == ["--selftest"]:
        return selftest()
    now = None
    if "--now" in argv:
        i = argv.index("--now")
        if i + 1 >= len(argv):
            print("--now needs UNIX_SECONDS", file=sys.stderr)
            return 2
        now = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if len(argv) != 3:
        print("usage: presets.py PRESET SECRET BODY_FILE [--now UNIX_SECONDS] | --selftest",
              file=sys.stderr)
        return 2
    preset, secret, body_file = argv
    signer = PRESETS.get(preset)
    if signer is None:
        print(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}", file=sys.stderr)
        return 2
    if now is None:
        now = int(time.time())
    with open(body_file, "rb") as f:
        body = f.read()
    headers, new_body = signer(secret, body, now)
    out = sys.stdout.buffer
    for name, value in headers:
        out.write(f"{name}: {value}\n".encode("utf-8"))
    if new_body is not None:
        out.write(b"--body\n" + new_body + b"\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
