#!/usr/bin/env bash
# Regenerates the API Gateway request events in this folder from events/bodies/, signed
# with the test secrets in events/secrets.json (docs/ingest.md, "Sample events and test secrets").
#   usage: events/ingest/generate.sh [path/to/okr-webhooks]
# The Standard Webhooks sample is signed at STANDARD_TIMESTAMP (default 2026-01-01), and
# ingest rejects timestamps over 5 minutes old: to invoke it for real, make a fresh one:
#   okr-webhooks apigw-request --source standard --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
#     events/bodies/standard/key_result_progress.json > /tmp/standard.json
set -euo pipefail
cd "$(dirname "$0")"
tool=${1:-okr-webhooks}
bodies=../bodies
ts=${STANDARD_TIMESTAMP:-1767225600}
req() { "$tool" apigw-request "$@"; }

req -s peoplelogic --secret 'YWJjMTIzIT8kKiYoKSctPUB+' $bodies/peoplelogic/objective_completed.json > peoplelogic.json
req -s peoplelogic --secret 'YWJjMTIzIT8kKiYoKSctPUB+' $bodies/peoplelogic/key_result_progress.json > peoplelogic-key-result.json
req -s peopleforce --secret pf-test-secret $bodies/peopleforce/employee_create.json > peopleforce.json
req -s perscom --secret perscom-test-secret $bodies/perscom/rankrecord_updated.json > perscom.json
req -s standard --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw --id msg_2Ld0ym9wUMpSPhgqgGxEHQYBkd0 \
  --timestamp "$ts" $bodies/standard/key_result_progress.json > standard.json
# Signed with the previous PeopleForce secret (rotation) and sent base64-encoded.
req -s peopleforce --secret pf-previous-secret --base64 $bodies/peopleforce/employee_terminate.json > peopleforce-base64.json

# Bad deliveries.
req -s peopleforce --secret pf-test-secret $bodies/peopleforce/leave_request_create.json |
  sed 's/"state\\":\\"pending/"state\\":\\"approved/' > tampered-body.json
req -s perscom $bodies/perscom/user_created.json > missing-header.json
req -s peopleforce --secret pf-test-secret $bodies/peopleforce/employee_create.json |
  python3 -c 'import json,sys; e=json.load(sys.stdin); e["isBase64Encoded"]=True; e["body"]="not base64!"; json.dump(e,sys.stdout,indent=2); print()' > invalid-base64.json
req -s perscom --method GET --query 'event=user.created&data%5Bid%5D=78' < /dev/null > perscom-get.json
req -s peopleforce --path-source workday --secret pf-test-secret $bodies/peopleforce/employee_create.json > unknown-source.json
printf 'this is not JSON' | req -s perscom --secret perscom-test-secret > signed-not-json.json
python3 -c 'import json; print(json.dumps({"action": "employee_update", "data": {"id": 1, "notes": "x" * 300000}}))' |
  req -s peopleforce --secret pf-test-secret > oversize-body.json
