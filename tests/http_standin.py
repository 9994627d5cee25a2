#!/usr/bin/env python3
"""A local stand-in for Slack's incoming webhooks and PagerDuty's Events API: prints
the path and JSON body of each POST, one per line, and answers 200.

usage: python3 tests/http_standin.py [PORT]   (default 5001)
"""
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            print(self.path, json.dumps(json.loads(body), ensure_ascii=False), flush=True)
        except ValueError:
            print(body.decode(errors="replace"), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 5001
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
