#!/usr/bin/env python3
"""A stand-in for the AWS calls ingest makes, answering each at once from memory
(docs/performance.md, "Start-up"): so a start-up measured against it is our code's, not
moto's (a Python process taking about 5 ms a call, one call after another).

usage: python3 tests/load/aws_at_once.py PORT SECRETS_JSON

Answers, in the JSON protocols the AWS SDK for Rust speaks (the `X-Amz-Target` header):
  AmazonSQS.GetQueueAttributes   every queue exists: its ARN
  AmazonSQS.SendMessage          a message id and the body's MD5, as SQS does
  AmazonSQS.SendMessageBatch     the same for each entry
  secretsmanager.GetSecretValue  SECRETS_JSON's value for the secret id (a JSON object of
                                 id -> string); an id it lacks is ResourceNotFoundException
Anything else is a 400, so a call this script does not know shows up as a failed run.
"""
import hashlib
import http.server
import json
import socket
import sys
import uuid

port = int(sys.argv[1])
secrets = json.load(open(sys.argv[2]))


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


def answer(target, request):
    if target == "AmazonSQS.GetQueueAttributes":
        name = request["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        return 200, {"Attributes": {"QueueArn": f"arn:aws:sqs:us-east-1:000000000000:{name}"}}
    if target == "AmazonSQS.SendMessage":
        return 200, {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": md5(request["MessageBody"])}
    if target == "AmazonSQS.SendMessageBatch":
        return 200, {"Successful": [{"Id": e["Id"], "MessageId": str(uuid.uuid4()),
                                     "MD5OfMessageBody": md5(e["MessageBody"])}
                                    for e in request["Entries"]], "Failed": []}
    if target == "secretsmanager.GetSecretValue":
        name = request["SecretId"]
        if name not in secrets:
            return 400, {"__type": "ResourceNotFoundException", "message": f"no secret {name}"}
        return 200, {"ARN": f"arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}",
                     "Name": name, "SecretString": secrets[name], "VersionId": "v1",
                     "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.7e9}
    return 400, {"__type": "UnknownOperationException", "message": f"not stood in: {target}"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle holds the body back
        # for the client's delayed ACK (40 ms), which would be measured as ours.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        status, body = answer(self.headers.get("X-Amz-Target", ""), request)
        body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
