"""A receiving team's endpoint for okr-webhooks subscriptions, verified with the official
Standard Webhooks library (`pip install standardwebhooks`): docs/subscriptions.md.

    python3 tests/subscription_receiver.py --secret-file hr.secret [--port 5002]
        [--secret whsec_...] [--basic USER:PASSWORD | --bearer TOKEN] [--answer STATUS]

Each POST is verified: the signature (any of the secrets), the timestamp (within five
minutes), and the Authorization header when --basic or --bearer is given. A verified
delivery is answered --answer (200 by default) and printed as one line,
`verified <webhook-id> <type> <entity kind> <entity name>`, and a repeat of an id already
taken is answered 200 and printed as `repeat <webhook-id>`; anything else is answered
401 and printed as `refused <reason>`.
"""

import argparse
import base64
import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--secret-file")
    parser.add_argument("--basic")
    parser.add_argument("--bearer")
    parser.add_argument("--answer", type=int, default=200)
    args = parser.parse_args()
    secrets = list(args.secret)
    if args.secret_file:
        with open(args.secret_file) as file:
            secrets += [line.strip() for line in file if line.strip().startswith("whsec_")]
    if not secrets:
        parser.error("give --secret or --secret-file")
    webhooks = [Webhook(secret) for secret in secrets]
    expected = None
    if args.basic:
        expected = "Basic " + base64.b64encode(args.basic.encode()).decode()
    elif args.bearer:
        expected = "Bearer " + args.bearer
    taken = set()
    # One line at a time: requests are served on threads, and print writes a line and
    # its end separately, so two at once could run together.
    printing = threading.Lock()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {name: value for name, value in self.headers.items()}
            if expected is not None and not hmac.compare_digest(
                self.headers.get("Authorization", ""), expected
            ):
                return self.answer(401, "refused wrong or missing Authorization")
            event = None
            for webhook in webhooks:
                try:
                    event = webhook.verify(body, headers)
                    break
                except WebhookVerificationError as error:
                    reason = str(error)
            if event is None:
                return self.answer(401, f"refused {reason}")
            message_id = self.headers["webhook-id"]
            if message_id in taken:
                return self.answer(200, f"repeat {message_id}")
            if 200 <= args.answer < 300:
                taken.add(message_id)
            entity = event.get("entity", {})
            line = f"verified {message_id} {event['type']} {entity.get('kind')} {entity.get('name')}"
            self.answer(args.answer, line)

        def answer(self, status, line):
            with printing:
                print(line, flush=True)
            body = json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Receiver)
    print(f"listening on http://127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
