//! A replay from S3 to SQS through moto: only the partitions inside the window are
//! listed or read (every S3 request counted), and each message carries the replay's
//! name, as an attribute and in the event.

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use flate2::Compression;
use flate2::write::GzEncoder;
use okr_aws::s3_archive::S3Archive;
use okr_aws::sqs::SqsQueue;
use okr_consumers::replay::checkpoint::CheckpointFile;
use okr_consumers::replay::select::{Selection, parse_time};
use okr_consumers::replay::{Plan, Target, replay};
use okr_core::routing::{Consumer, NotifyRules};
use okr_core::{Event, Source, normalize};
use okr_pipeline::config::QueueUrls;
use okr_webhooks_tests::{Moto, unique};
use serde_json::Value;

/// Records the URI of every request.
#[derive(Debug, Default, Clone)]
struct Requests(Arc<Mutex<Vec<String>>>);

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let uri = context.request().uri().to_string();
        self.0.lock().unwrap().push(uri);
        Ok(())
    }
}

fn event(id: &str, day: u8) -> Event {
    let body = std::fs::read(format!(
        "{}/../events/bodies/peoplelogic/objective_completed.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let at =
        time::macros::datetime!(2026-11-18 12:00 UTC) + time::Duration::days(i64::from(day) - 18);
    let mut event = normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
        &http::HeaderMap::new(),
        &body,
        at,
    )
    .unwrap();
    event.id = id.to_owned();
    event
}

/// The `n`th event id of `day` (event ids are `evt_` and 32 hex digits).
fn id(day: u8, n: u8) -> String {
    format!("evt_{day:030x}{n:02x}")
}

fn gzip(events: &[Event]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    for event in events {
        serde_json::to_writer(&mut gz, event).unwrap();
        gz.write_all(b"\n").unwrap();
    }
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_reads_only_the_window_and_marks_each_message() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let requests = Requests::default();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .interceptor(requests.clone())
            .build(),
    );
    let bucket = unique("okr-archive");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for day in [18u8, 19, 20] {
        let events = [event(&id(day, 1), day), event(&id(day, 2), day)];
        s3.put_object()
            .bucket(&bucket)
            .key(format!(
                "prod/events/v1/date=2026-11-{day}/part-1.ndjson.gz"
            ))
            .body(ByteStream::from(gzip(&events)))
            .send()
            .await
            .unwrap();
    }
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = sqs
        .create_queue()
        .queue_name(unique("slack"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue = SqsQueue::new(
        sqs.clone(),
        QueueUrls {
            warehouse: String::new(),
            slack: url.clone(),
            alerts: String::new(),
            progress: String::new(),
            subscriptions: String::new(),
        },
    );
    let plan = Plan {
        subscription: None,
        name: "backfill-19th".into(),
        selection: Selection {
            since: Some(parse_time("2026-11-19", false).unwrap()),
            until: Some(parse_time("2026-11-19", true).unwrap()),
            ..Selection::default()
        },
        targets: vec![Consumer::Slack],
        all_types: false,
        force: false,
        rate: None,
        archive: format!("s3://{bucket}/prod"),
        queue_urls: vec![format!("slack={url}")],
    };
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = CheckpointFile::new(dir.path(), &plan.name);
    requests.0.lock().unwrap().clear();
    let archive = S3Archive::new(s3, &bucket, "prod");
    let target = Target::Queues {
        queue: &queue,
        checkpoint: &checkpoint,
    };
    let summary = replay(
        &plan,
        &NotifyRules::default(),
        &archive,
        target,
        None,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.sent, 2);

    let seen = requests.0.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|uri| uri.contains("date%3D2026-11-19") || uri.contains("date=2026-11-19")),
        "{seen:?}"
    );
    for uri in &seen {
        assert!(
            !uri.contains("2026-11-18") && !uri.contains("2026-11-20"),
            "read outside the window: {uri}"
        );
    }
    // One listing of the partitions, one of the 19th, one read.
    assert_eq!(seen.len(), 3, "{seen:?}");

    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let schema: Value = serde_json::from_str(okr_core::event::JSON_SCHEMA_V1).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let mut ids = Vec::new();
    for message in received.messages() {
        let attributes = message.message_attributes().unwrap();
        assert_eq!(attributes["replay"].string_value(), Some("backfill-19th"));
        let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
        assert_eq!(body["replay"]["name"], "backfill-19th");
        assert_eq!(body["replay"]["forced"], false);
        assert!(validator.is_valid(&body), "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    assert_eq!(ids, [id(19, 1), id(19, 2)]);
    let saved = checkpoint.load().unwrap().unwrap();
    assert!(saved.finished && saved.sent == 2, "{saved:?}");
}
