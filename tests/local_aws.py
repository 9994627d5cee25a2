#!/usr/bin/env python3
"""Create the functions' AWS resources in a local moto server and print the
environment for `cargo lambda watch --env-file`.

usage: python3 tests/local_aws.py [MOTO_URL] [STANDIN_URL] > .lambda.env
       MOTO_URL defaults to http://127.0.0.1:5000 (start it with
       `moto_server -H 127.0.0.1 -p 5000`); STANDIN_URL, a local HTTP server standing in
       for Slack and PagerDuty, defaults to http://127.0.0.1:5001 (start it with
       `python3 tests/http_standin.py 5001`). The Slack notifier posts to
       STANDIN_URL/slack, the alerts to STANDIN_URL/slack-alerts and
       STANDIN_URL/v2/enqueue.

Creates the four consumer queues with their dead-letter queues, the signing secret
holding the test secrets of events/secrets.json, the Slack webhook secret, the
idempotency table, the progress read model's and the directory's tables, the warehouse bucket, and for email
a verified SES sender (okr@example.com) and the recipients secret (manager@example.com,
summaries and alerts). Running it again reuses what exists.
"""
import pathlib
import sys

import boto3

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000"
standin = (sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:5001").rstrip("/")
region = "us-east-1"
session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
sqs = session.client("sqs", endpoint_url=url)
secrets = session.client("secretsmanager", endpoint_url=url)



def put_secret(name, value):
    try:
        secrets.create_secret(Name=name, SecretString=value)
    except secrets.exceptions.ResourceExistsException:
        secrets.put_secret_value(SecretId=name, SecretString=value)


secret_name = "okr-webhooks/signing-secrets"
put_secret(secret_name, (pathlib.Path(__file__).resolve().parent.parent / "events" / "secrets.json").read_text())
put_secret("okr-webhooks/slack-webhook", f"{standin}/slack")
put_secret("okr-webhooks/alerts-slack-webhook", f"{standin}/slack-alerts")
put_secret("okr-webhooks/pagerduty-routing-key", "R0UT1NGKEY0000000000000000000000")

dynamodb = session.client("dynamodb", endpoint_url=url)
try:
    dynamodb.create_table(
        TableName="okr-webhooks-idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
except dynamodb.exceptions.ResourceInUseException:
    pass
try:
    # As the template's ProgressTable: key `key`, the index the dashboard polls.
    dynamodb.create_table(
        TableName="okr-webhooks-progress",
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "key", "AttributeType": "S"},
            {"AttributeName": "feed", "AttributeType": "S"},
            {"AttributeName": "written_at", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[{
            "IndexName": "by-written-at",
            "KeySchema": [
                {"AttributeName": "feed", "KeyType": "HASH"},
                {"AttributeName": "written_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }],
        BillingMode="PAY_PER_REQUEST",
    )
except dynamodb.exceptions.ResourceInUseException:
    pass
try:
    # As the template's DirectoryTable: key `key`.
    dynamodb.create_table(
        TableName="okr-webhooks-directory",
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
except dynamodb.exceptions.ResourceInUseException:
    pass
session.client("s3", endpoint_url=url).create_bucket(Bucket="okr-webhooks-warehouse")
ses = session.client("sesv2", endpoint_url=url)
try:
    ses.create_email_identity(EmailIdentity="okr@example.com")
except ses.exceptions.AlreadyExistsException:
    pass
put_secret(
    "okr-webhooks/email-recipients",
    '{"recipients": [{"address": "manager@example.com", "scope": "all", "alerts": true}]}',
)

env = {
    "AWS_ENDPOINT_URL": url,
    "AWS_REGION": region,
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_EC2_METADATA_DISABLED": "true",
    "SIGNING_SECRET_ID": secret_name,
    "SLACK_WEBHOOK_SECRET_ID": "okr-webhooks/slack-webhook",
    "IDEMPOTENCY_TABLE": "okr-webhooks-idempotency",
    # The queues below keep SQS's default visibility timeout.
    "QUEUE_VISIBILITY_TIMEOUT_SECONDS": "30",
    "ALERTS_SLACK_WEBHOOK_SECRET_ID": "okr-webhooks/alerts-slack-webhook",
    "PAGERDUTY_ROUTING_KEY_SECRET_ID": "okr-webhooks/pagerduty-routing-key",
    "PAGERDUTY_EVENTS_URL": f"{standin}/v2/enqueue",
    "WAREHOUSE_URL": "s3://okr-webhooks-warehouse/prod",
    "PROGRESS_TABLE": "okr-webhooks-progress",
    "DIRECTORY_TABLE": "okr-webhooks-directory",
    "EMAIL_SENDER": "okr@example.com",
    "EMAIL_RECIPIENTS_SECRET_ID": "okr-webhooks/email-recipients",
}
for consumer in ("warehouse", "slack", "alerts", "progress"):
    dlq = sqs.create_queue(QueueName=f"okr-webhooks-{consumer}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=f"okr-webhooks-{consumer}",
        Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}'},
    )["QueueUrl"]
    env[f"{consumer.upper()}_QUEUE_URL"] = queue

for key, value in env.items():
    print(f"{key}={value}")
