//! The warehouse sink and the batch toolkit: partial batch failures, the object layout,
//! gzip NDJSON that validates against the schema.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use flate2::read::GzDecoder;
use http::HeaderMap;
use okr_consumers::warehouse::local::LocalSink;
use okr_consumers::warehouse::memory::MemorySink;
use okr_consumers::warehouse::{WarehouseSink, WarehouseUrl, object_key};
use okr_core::event::JSON_SCHEMA_V1;
use okr_core::{Event, Source, normalize};
use okr_pipeline::batch::for_each_event;
use okr_pipeline::retry::Retries;
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::{date, datetime};

fn event(n: usize, received_at: OffsetDateTime) -> Event {
    let body = format!(
        r#"{{"action": "employee_update", "data": {{"id": {n}, "attributes": {{"first_name": "E{n}"}}}}}}"#
    );
    normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLEFORCE).unwrap(),
        &HeaderMap::new(),
        body.as_bytes(),
        received_at,
    )
    .unwrap()
}

fn message(id: &str, body: &str) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.body = Some(body.to_owned());
    message
}

fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

fn lines(gzip: &[u8]) -> Vec<Value> {
    let mut text = String::new();
    GzDecoder::new(gzip).read_to_string(&mut text).unwrap();
    assert!(text.ends_with('\n'));
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn sample(name: &str) -> SqsEvent {
    let path = format!(
        "{}/../../events/warehouse-sink/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn one_undecodable_record_and_one_failed_write_fail_exactly_those_records() {
    let day = datetime!(2026-11-20 09:30 UTC);
    let mut messages: Vec<SqsMessage> = (0..8)
        .map(|n| {
            message(
                &format!("m{n}"),
                &serde_json::to_string(&event(n, day + Duration::from_secs(n as u64))).unwrap(),
            )
        })
        .collect();
    messages.insert(3, message("m-undecodable", "{\"not\": \"an event\"}"));
    // The only event of another day: its object's write fails.
    messages.push(message(
        "m-other-day",
        &serde_json::to_string(&event(99, datetime!(2026-11-21 00:00:01 UTC))).unwrap(),
    ));
    assert_eq!(messages.len(), 10);

    let sink = Arc::new(MemorySink::default());
    sink.fail_keys_containing("date=2026-11-21");
    let response = WarehouseSink::new(sink.clone())
        .handle(batch(messages))
        .await
        .unwrap();
    assert_eq!(failures(&response), ["m-other-day", "m-undecodable"]);

    let objects = sink.objects();
    assert_eq!(objects.len(), 1);
    let (key, body) = objects.iter().next().unwrap();
    assert!(
        key.starts_with("events/v1/date=2026-11-20/part-20261120T093000Z-"),
        "{key}"
    );
    assert!(key.ends_with(".ndjson.gz"));
    let written = lines(body);
    let mut names: Vec<&str> = written
        .iter()
        .map(|e| e["entity"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["E0", "E1", "E2", "E3", "E4", "E5", "E6", "E7"],
        "each good event written once"
    );
}

#[tokio::test]
async fn the_poison_sample_fails_only_the_poison_record() {
    let response = WarehouseSink::new(Arc::new(MemorySink::default()))
        .handle(sample("poison.json"))
        .await
        .unwrap();
    assert_eq!(
        failures(&response),
        ["e661c7c5-2cbe-53e1-a892-6fe1d7855dfd"]
    );
}

#[tokio::test]
async fn a_local_directory_gets_objects_at_the_documented_keys_and_every_line_validates() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WarehouseSink::new(Arc::new(LocalSink::new(dir.path())));
    let response = sink.handle(sample("batch.json")).await.unwrap();
    assert!(response.batch_item_failures.is_empty());

    let partition = dir.path().join("events/v1/date=2026-11-20");
    let files: Vec<_> = std::fs::read_dir(&partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "{files:?}: one object per batch and date, no temporary files left"
    );
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("part-20261120T093000Z-") && name.ends_with(".ndjson.gz"),
        "{name}"
    );

    let schema: Value = serde_json::from_str(JSON_SCHEMA_V1).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let events = lines(&std::fs::read(&files[0]).unwrap());
    assert_eq!(events.len(), 5);
    for event in &events {
        assert!(validator.is_valid(event), "{event}");
    }
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "objective.completed",
            "employee.created",
            "rank_record.updated",
            "key_result.progress_updated",
            "key_result.progress_updated"
        ]
    );

    // The same batch delivered again overwrites its own object: no second copy.
    sink.handle(sample("batch.json")).await.unwrap();
    assert_eq!(std::fs::read_dir(&partition).unwrap().count(), 1);
}

#[test]
fn object_keys_follow_the_batch_not_the_order() {
    let at = datetime!(2026-11-20 09:30:05 UTC);
    let ids = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let key = object_key(date!(2026 - 11 - 20), at, &ids(&["a", "b", "c"]));
    assert!(
        key.starts_with("events/v1/date=2026-11-20/part-20261120T093005Z-"),
        "{key}"
    );
    assert_eq!(
        key,
        object_key(date!(2026 - 11 - 20), at, &ids(&["c", "a", "b"]))
    );
    assert_ne!(
        key,
        object_key(date!(2026 - 11 - 20), at, &ids(&["a", "b"]))
    );
}

#[tokio::test]
async fn ten_thousand_records_make_one_object_with_ten_thousand_lines() {
    let day = datetime!(2026-11-20 00:00 UTC);
    let template = serde_json::to_value(event(0, day)).unwrap();
    let messages: Vec<SqsMessage> = (0..10_000)
        .map(|n| {
            let mut value = template.clone();
            value["id"] = format!("evt_{n:032x}").into();
            message(&format!("m{n}"), &value.to_string())
        })
        .collect();
    let sink = Arc::new(MemorySink::default());
    let response = WarehouseSink::new(sink.clone())
        .handle(batch(messages))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let objects = sink.objects();
    assert_eq!(objects.len(), 1);
    let events = lines(objects.values().next().unwrap());
    assert_eq!(events.len(), 10_000);
    assert_eq!(events[9_999]["id"], format!("evt_{:032x}", 9_999));
}

#[tokio::test]
async fn a_failed_record_without_a_message_id_fails_the_whole_batch() {
    let mut anonymous = message("x", "not json");
    anonymous.message_id = None;
    let result = WarehouseSink::new(Arc::new(MemorySink::default()))
        .handle(batch(vec![anonymous]))
        .await;
    assert!(result.is_err());
}

#[test]
fn warehouse_urls() {
    assert_eq!(
        "s3://okr-bucket/warehouse/prod/".parse::<WarehouseUrl>(),
        Ok(WarehouseUrl::S3 {
            bucket: "okr-bucket".into(),
            prefix: "warehouse/prod".into()
        })
    );
    assert_eq!(
        "s3://okr-bucket".parse::<WarehouseUrl>(),
        Ok(WarehouseUrl::S3 {
            bucket: "okr-bucket".into(),
            prefix: String::new()
        })
    );
    assert_eq!(
        "file:///var/okr".parse::<WarehouseUrl>(),
        Ok(WarehouseUrl::Local("/var/okr".into()))
    );
    assert_eq!(
        ".okr-webhooks/warehouse".parse::<WarehouseUrl>(),
        Ok(WarehouseUrl::Local(".okr-webhooks/warehouse".into()))
    );
    assert!("s3://".parse::<WarehouseUrl>().is_err());
    assert!("gs://bucket/x".parse::<WarehouseUrl>().is_err());
    assert!("".parse::<WarehouseUrl>().is_err());
}

#[tokio::test]
async fn for_each_event_reports_exactly_the_failed_records_and_bounds_concurrency() {
    let day = datetime!(2026-11-20 09:30 UTC);
    let mut messages: Vec<SqsMessage> = (0..8)
        .map(|n| {
            message(
                &format!("m{n}"),
                &serde_json::to_string(&event(n, day)).unwrap(),
            )
        })
        .collect();
    messages.push(message("m-empty", ""));
    let mut no_body = message("m-no-body", "");
    no_body.body = None;
    messages.push(no_body);

    let running = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let handled = AtomicUsize::new(0);
    let journal = Arc::new(okr_pipeline::journal::MemoryJournal::default());
    let journey = okr_pipeline::journal::Journey::new("alerts", journal.clone());
    let response = for_each_event(batch(messages), 3, &journey, |event, context| {
        let (running, peak, handled) = (&running, &peak, &handled);
        async move {
            assert_eq!(context.receive_count, 1);
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            handled.fetch_add(1, Ordering::SeqCst);
            if event.entity.name.as_deref() == Some("E5") {
                Err("the destination refused it".into())
            } else {
                Ok(())
            }
        }
    })
    .await
    .finish(&Retries::default(), None)
    .await
    .unwrap();
    assert_eq!(failures(&response), ["m-empty", "m-no-body", "m5"]);
    assert_eq!(handled.load(Ordering::SeqCst), 8);
    // The failed event's step: retried, with its wait; records that are not events
    // have no journey.
    let steps = journal.all();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(
        (
            steps[0].consumer.as_str(),
            steps[0].outcome.as_str(),
            steps[0].attempt
        ),
        ("alerts", "retry", 1)
    );
    assert!(
        steps[0]
            .detail
            .starts_with("not done in this attempt; again in "),
        "{}",
        steps[0].detail
    );
    let peak = peak.load(Ordering::SeqCst);
    assert!((2..=3).contains(&peak), "peak concurrency {peak}");
}

#[tokio::test]
async fn a_received_at_out_of_range_fails_only_its_record() {
    let day = datetime!(2026-11-20 09:30 UTC);
    let good = serde_json::to_string(&event(1, day)).unwrap();
    let mut odd: Value = serde_json::from_str(&good).unwrap();
    odd["received_at"] = "9999-12-31T23:59:59-01:00".into();
    odd["id"] = "evt_0000000000000000000000000000ffff".into();
    let sink = Arc::new(MemorySink::default());
    let response = WarehouseSink::new(sink.clone())
        .handle(batch(vec![
            message("good", &good),
            message("odd", &odd.to_string()),
        ]))
        .await
        .unwrap();
    assert_eq!(failures(&response), ["odd"]);
    assert_eq!(sink.objects().len(), 1);
}
