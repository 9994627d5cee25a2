//! The warehouse sink writing to S3 through moto: objects at the documented keys,
//! gzip NDJSON whose every line validates against the schema.

use std::io::Read;
use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use flate2::read::GzDecoder;
use okr_aws::s3::S3Sink;
use okr_consumers::warehouse::WarehouseSink;
use okr_core::event::JSON_SCHEMA_V1;
use okr_webhooks_tests::{Moto, unique};
use serde_json::Value;

fn sample(name: &str) -> SqsEvent {
    let path = format!(
        "{}/../events/warehouse-sink/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The object at `key`, gunzipped.
async fn gunzipped(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let gzip = object.body.collect().await.unwrap().into_bytes();
    let mut text = String::new();
    GzDecoder::new(&gzip[..]).read_to_string(&mut text).unwrap();
    text
}

#[tokio::test]
async fn batches_land_in_s3_as_gzip_ndjson_under_the_date_partition() {
    let moto = Moto::start();
    let client = S3Sink::client(&moto.sdk_config().await);
    let bucket = unique("okr-warehouse");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let sink = WarehouseSink::new(Arc::new(S3Sink::new(client.clone(), &bucket, "prod")));

    let response = sink.handle(sample("poison.json")).await.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["e661c7c5-2cbe-53e1-a892-6fe1d7855dfd"]);
    sink.handle(sample("batch.json")).await.unwrap();

    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let schema: Value = serde_json::from_str(JSON_SCHEMA_V1).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let mut total = 0;
    for key in keys {
        assert!(
            key.starts_with("prod/events/v1/date=2026-11-20/part-20261120T093000Z-")
                && key.ends_with(".ndjson.gz"),
            "{key}"
        );
        let text = gunzipped(&client, &bucket, key).await;
        for line in text.lines() {
            let event: Value = serde_json::from_str(line).unwrap();
            assert!(validator.is_valid(&event), "{line}");
            total += 1;
        }
    }
    assert_eq!(
        total,
        3 + 5,
        "three good records of the poison batch, five of the other"
    );
}

#[tokio::test]
async fn a_missing_bucket_fails_every_record_of_the_object() {
    let moto = Moto::start();
    let client = S3Sink::client(&moto.sdk_config().await);
    let sink = WarehouseSink::new(Arc::new(S3Sink::new(client, unique("no-such-bucket"), "")));
    let batch = sample("batch.json");
    let ids: Vec<String> = batch
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    let response = sink.handle(batch).await.unwrap();
    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(failed, expected);
}

#[tokio::test]
async fn the_people_snapshot_lands_in_s3_beside_the_events() {
    use okr_aws::directory_dynamodb::DynamoDbDirectory;
    use okr_aws::progress_dynamodb::DynamoDbProgressStore;
    use okr_consumers::progress::ProgressProjection;
    use okr_consumers::warehouse::people::snapshot;

    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let directory = Arc::new(DynamoDbDirectory::new(
        dynamodb.clone(),
        okr_webhooks_tests::directory_table(&dynamodb).await,
    ));
    // The directory fed as on AWS: the progress projection, from the stalled check's
    // sample batch (the seed's PeopleForce hire and a key result).
    let projection = ProgressProjection::new(
        Arc::new(DynamoDbProgressStore::new(
            dynamodb.clone(),
            okr_webhooks_tests::progress_table(&dynamodb).await,
        )),
        okr_core::rules::Thresholds::default(),
    )
    .with_directory(directory.clone());
    let batch: SqsEvent = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../events/stalled-check/progress.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(
        projection
            .handle(batch)
            .await
            .unwrap()
            .batch_item_failures
            .is_empty()
    );

    let client = S3Sink::client(&config);
    let bucket = unique("okr-warehouse");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let sink = S3Sink::new(client.clone(), &bucket, "");
    // The day the people-snapshot sample run is due.
    let run: okr_consumers::email::send::ScheduledRun = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../events/people-snapshot/scheduled.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let day = run.scheduled_time.unwrap().date();
    assert_eq!(snapshot(directory.as_ref(), &sink, day).await.unwrap(), 1);

    let text = gunzipped(
        &client,
        &bucket,
        "people/v1/date=2026-12-07/people.ndjson.gz",
    )
    .await;
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "John Doe");
    assert_eq!(rows[0]["department"], "IT");
    assert_eq!(rows[0]["team_lead"], "Ross Kate");
    assert_eq!(rows[0]["active"], true);
    for private in ["1978-08-31", "johnny.d.private", "+380501234567", "T-shirt"] {
        assert!(!text.contains(private), "{private} in the snapshot");
    }
}
