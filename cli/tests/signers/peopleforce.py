# PeopleForce's documented Python verification, turned around to sign:
# 'sha256=' + hmac.new(key=secret.encode('utf-8'), msg=payload.encode('utf-8'), sha256).hexdigest()
# usage: python3 peopleforce.py BODY_FILE SECRET
import hashlib
import hmac
import sys

payload_body = open(sys.argv[1], encoding="utf-8").read()
secret_token = sys.argv[2]
hash_object = hmac.new(key=secret_token.encode("utf-8"), msg=payload_body.encode("utf-8"), digestmod=hashlib.sha256)
print("X-PeopleForce-Signature: sha256=" + hash_object.hexdigest())
