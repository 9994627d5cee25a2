#!/usr/bin/env python3
"""A real SMTP server for the email tests (aiosmtpd), writing what it receives as JSON.

usage: python3 tests/smtp_server.py --port PORT --out DIR [--refuse TEXT] [--defer TEXT]

Listens on 127.0.0.1:PORT and prints `ready` once it does. Each message it accepts is
parsed with Python's email package (the MIME structure, every part decoded) and written
whole to DIR/<n>.json: the envelope (mail_from, rcpt_tos), the headers, every leaf
part's content type and decoded body, and the raw message. A recipient containing TEXT
is refused at RCPT with a 550, as a server refuses an unknown mailbox; one containing
the --defer TEXT gets a 451 (try again later), as a greylisting or overloaded server
answers.
"""
import argparse
import email
import json
import os
import signal
import threading
from email import policy

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out, refuse, defer):
        self.out = out
        self.refuse = refuse
        self.defer = defer
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse and self.refuse in address:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if self.defer and self.defer in address:
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        parts = [
            {"content_type": part.get_content_type(), "body": part.get_content()}
            for part in message.walk()
            if not part.is_multipart()
        ]
        document = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content_type": message.get_content_type(),
            "headers": {name.lower(): str(value) for name, value in message.items()},
            "parts": parts,
            "raw": envelope.content.decode("utf-8", "replace"),
        }
        with self.lock:
            self.count += 1
            name = os.path.join(self.out, f"{self.count:04d}.json")
        with open(name + ".tmp", "w") as file:
            json.dump(document, file)
        os.rename(name + ".tmp", name)
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--refuse")
    parser.add_argument("--defer")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    controller = Controller(Sink(args.out, args.refuse, args.defer), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
