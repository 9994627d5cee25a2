# The official Standard Webhooks Python library signs.
# usage: python3 standard.py BODY_FILE SECRET MSG_ID UNIX_TIMESTAMP
import sys
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook

body = open(sys.argv[1], encoding="utf-8").read()
msg_id, timestamp = sys.argv[3], int(sys.argv[4])
signature = Webhook(sys.argv[2]).sign(msg_id, datetime.fromtimestamp(timestamp, tz=timezone.utc), body)
print(f"webhook-id: {msg_id}")
print(f"webhook-timestamp: {timestamp}")
print(f"webhook-signature: {signature}")
