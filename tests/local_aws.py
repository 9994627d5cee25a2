#!/usr/bin/env python3
"""Create the ingest function's AWS resources in a local moto server and print the
environment for `cargo lambda watch --env-file`.

usage: python3 tests/local_aws.py [MOTO_URL] > .ingest.env
       (MOTO_URL defaults to http://127.0.0.1:5000; start it with
        `moto_server -H 127.0.0.1 -p 5000`)

Creates the three consumer queues and the signing secret holding the test secrets of
events/secrets.json. Running it again reuses what exists.
"""
import pathlib
import sys

import boto3

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000"
region = "us-east-1"
session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
sqs = session.client("sqs", endpoint_url=url)
secrets = session.client("secretsmanager", endpoint_url=url)

secret_name = "okr-webhooks/signing-secrets"
document = (pathlib.Path(__file__).resolve().parent.parent / "events" / "secrets.json").read_text()
try:
    secrets.create_secret(Name=secret_name, SecretString=document)
except secrets.exceptions.ResourceExistsException:
    secrets.put_secret_value(SecretId=secret_name, SecretString=document)

env = {
    "AWS_ENDPOINT_URL": url,
    "AWS_REGION": region,
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_EC2_METADATA_DISABLED": "true",
    "SIGNING_SECRET_ID": secret_name,
}
for consumer in ("warehouse", "slack", "alerts"):
    dlq = sqs.create_queue(QueueName=f"okr-webhooks-{consumer}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=f"okr-webhooks-{consumer}",
        Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}'},
    )["QueueUrl"]
    env[f"{consumer.upper()}_QUEUE_URL"] = queue

for key, value in env.items():
    print(f"{key}={value}")
