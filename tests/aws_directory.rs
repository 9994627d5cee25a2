//! The directory's stores keep one contract (memory, SQLite, DynamoDB through moto),
//! and the progress projection's Lambda handler feeds the DynamoDB directory from an
//! SQS batch of HR records: the seed's PeopleForce hire, with nothing of it beyond the
//! directory's fields.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::Client;
use http::HeaderMap;
use okr_aws::directory_dynamodb::DynamoDbDirectory;
use okr_aws::progress_dynamodb::DynamoDbProgressStore;
use okr_consumers::directory::{MemoryDirectory, load};
use okr_consumers::progress::ProgressProjection;
use okr_core::rules::Thresholds;
use okr_core::{Event, Source, normalize};
use okr_local::directory_sqlite::SqliteDirectory;
use okr_webhooks_tests::{Moto, directory_store_contract, directory_table, progress_table};
use time::macros::datetime;

#[tokio::test]
async fn in_memory() {
    directory_store_contract(&MemoryDirectory::default()).await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.sqlite");
    directory_store_contract(&SqliteDirectory::open(&path).unwrap()).await;
    // What was written survives a reopen.
    let reopened = SqliteDirectory::open(&path).unwrap();
    use okr_consumers::directory::DirectoryStore;
    assert_eq!(reopened.entries().await.unwrap().len(), 3);
    // One transaction: a stale write after a fresh one leaves both unwritten.
    let before = reopened.entries().await.unwrap();
    let fresh = okr_consumers::directory::Entry::Link(okr_consumers::directory::Link {
        owner: "Kim Lee".into(),
        person: "person#c#1".into(),
    });
    let stale = before[0].entry.clone();
    assert!(
        !reopened
            .put_all(&[(fresh, None), (stale, Some(before[0].version + 5))])
            .await
            .unwrap()
    );
    assert_eq!(reopened.entries().await.unwrap(), before, "nothing written");
}

fn batch(events: &[Event]) -> SqsEvent {
    let mut batch = SqsEvent::default();
    batch.records = events
        .iter()
        .enumerate()
        .map(|(n, event)| {
            let mut message = SqsMessage::default();
            message.message_id = Some(format!("m{n}"));
            message.body = Some(serde_json::to_string(event).unwrap());
            message
        })
        .collect();
    batch
}

#[tokio::test]
async fn dynamodb_through_moto_and_the_projection_feeds_it() {
    let moto = Moto::start();
    let client = Client::new(&moto.sdk_config().await);
    let table = directory_table(&client).await;
    directory_store_contract(&DynamoDbDirectory::new(client.clone(), &table)).await;

    let table = directory_table(&client).await;
    let directory = Arc::new(DynamoDbDirectory::new(client.clone(), &table));
    let progress = Arc::new(DynamoDbProgressStore::new(
        client.clone(),
        progress_table(&client).await,
    ));
    let projection =
        ProgressProjection::new(progress, Thresholds::default()).with_directory(directory.clone());
    let body = include_bytes!("../events/bodies/peopleforce/employee_create.json");
    let hire = normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLEFORCE).unwrap(),
        &HeaderMap::new(),
        body,
        datetime!(2026-11-20 09:30 UTC),
    )
    .unwrap();
    let response = projection
        .handle(batch(&[hire.clone(), hire]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());

    let people = load(directory.as_ref()).await.unwrap();
    let john = people.find("john.doe@example.com").unwrap();
    assert_eq!(john.label(), "John Doe");
    assert_eq!(john.person.department.as_deref(), Some("IT"));
    assert_eq!(
        john.person.manager.as_ref().unwrap().email.as_deref(),
        Some("ross.kate@example.com")
    );
    let items = client.scan().table_name(&table).send().await.unwrap();
    assert_eq!(items.count(), 1);
    let raw = format!("{:?}", items.items());
    for private in ["1978-08-31", "johnny.d.private", "+380501234567", "T-shirt"] {
        assert!(!raw.contains(private), "{private} reached DynamoDB");
    }
}
