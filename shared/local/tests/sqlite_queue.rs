//! The durable SQLite queues of local mode: what is sent survives a reopen, received
//! messages hide for the visibility timeout, failures come back and then move to the
//! dead-letter queue, redrive moves them back, and concurrent sends are grouped.

use std::sync::Arc;
use std::time::Duration;

use okr_core::routing::Consumer;
use okr_local::sqlite_queue::{LocalDeadLetters, SqliteQueue};
use okr_pipeline::queue::dead_letters::DeadLetters;
use okr_pipeline::queue::{Defer, EventQueue, QueueMessage, ReceiveQueue};

fn message(n: usize) -> QueueMessage {
    QueueMessage {
        replay: None,
        traceparent: None,
        event_id: format!("evt_{n:032x}"),
        source: "perscom".into(),
        event_type: "user.created".into(),
        body: format!("{{\"n\": {n}}}").into(),
    }
}

#[tokio::test]
async fn sent_messages_survive_a_reopen_and_duplicates_are_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.sqlite");
    {
        let queue = SqliteQueue::open(&path).unwrap();
        assert!(
            !queue
                .send(Consumer::Slack, &message(1))
                .await
                .unwrap()
                .duplicate
        );
        assert!(
            queue
                .send(Consumer::Slack, &message(1))
                .await
                .unwrap()
                .duplicate
        );
        assert!(
            !queue
                .send(Consumer::Warehouse, &message(1))
                .await
                .unwrap()
                .duplicate
        );
    }
    let queue = SqliteQueue::open(&path).unwrap();
    // The duplicate was acknowledged, not queued a second time.
    assert_eq!(queue.depth(Consumer::Slack).await.unwrap(), (1, 0));
    let batch = queue
        .receive(Consumer::Slack, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(batch.records.len(), 1);
    let record = &batch.records[0];
    assert_eq!(record.body.as_deref(), Some("{\"n\": 1}"));
    assert_eq!(record.attributes["ApproximateReceiveCount"], "1");
    assert_eq!(
        record.message_attributes["event_id"]
            .string_value
            .as_deref(),
        Some(message(1).event_id.as_str())
    );
}

#[tokio::test]
async fn received_messages_hide_until_deleted_or_their_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open(&dir.path().join("q.sqlite")).unwrap();
    for n in 0..3 {
        queue.send(Consumer::Alerts, &message(n)).await.unwrap();
    }
    let first = queue
        .receive(Consumer::Alerts, 2, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(first.records.len(), 2);
    let second = queue
        .receive(Consumer::Alerts, 10, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(second.records.len(), 1, "two are in flight");
    queue
        .delete(
            Consumer::Alerts,
            vec![first.records[0].message_id.clone().unwrap()],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = queue
        .receive(Consumer::Alerts, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        again.records.len(),
        2,
        "the undeleted two are visible again"
    );
    assert!(
        again
            .records
            .iter()
            .all(|r| r.attributes["ApproximateReceiveCount"] == "2")
    );
}

/// The `n` of each record's body `{"n": N}`.
fn numbers(batch: &aws_lambda_events::sqs::SqsEvent) -> Vec<u64> {
    batch
        .records
        .iter()
        .map(|record| {
            let body: serde_json::Value =
                serde_json::from_str(record.body.as_deref().expect("a body")).expect("JSON");
            body["n"].as_u64().expect("n")
        })
        .collect()
}

#[tokio::test]
async fn a_receive_takes_the_oldest_visible_and_after_a_crash_the_dead_runs_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.sqlite");
    {
        let queue = SqliteQueue::open(&path).unwrap();
        for n in 0..3 {
            queue.send(Consumer::Slack, &message(n)).await.unwrap();
        }
        // A run takes the first two and dies with them in flight.
        let taken = queue
            .receive(Consumer::Slack, 2, Duration::from_secs(300))
            .await
            .unwrap();
        assert_eq!(numbers(&taken), [0, 1]);
        // A backlog arrives after them.
        tokio::time::sleep(Duration::from_millis(5)).await;
        for n in 3..6 {
            queue.send(Consumer::Slack, &message(n)).await.unwrap();
        }
    }
    let queue = SqliteQueue::open(&path).unwrap();
    assert_eq!(queue.recover_in_flight().await.unwrap(), 2);
    // What the dead run held goes first, then the rest in arrival order.
    let first = queue
        .receive(Consumer::Slack, 3, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(numbers(&first), [0, 1, 2]);
    let rest = queue
        .receive(Consumer::Slack, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(numbers(&rest), [3, 4, 5]);
}

#[tokio::test]
async fn failures_retry_then_reach_the_dead_letter_queue_and_redrive_brings_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("q.sqlite")).unwrap());
    let dead_letters = LocalDeadLetters::new(queue.clone(), Consumer::Slack);
    queue.send(Consumer::Slack, &message(7)).await.unwrap();
    for receive in 1..=3 {
        let batch = queue
            .receive(Consumer::Slack, 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(batch.records.len(), 1, "receive {receive}");
        let id = batch.records[0].message_id.clone().unwrap();
        let receipt = batch.records[0].receipt_handle.clone().unwrap();
        // Failed, and deferred by no time: seen again at once.
        queue.defer(&receipt, Duration::ZERO).await.unwrap();
        queue.failed(Consumer::Slack, id, 3).await.unwrap();
    }
    assert!(
        queue
            .receive(Consumer::Slack, 10, Duration::from_secs(30))
            .await
            .unwrap()
            .records
            .is_empty()
    );
    let listing = dead_letters.list().await.unwrap();
    assert_eq!(listing.total, 1);
    let dead = listing.letters;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].event_id.as_str(), dead[0].receive_count),
        (message(7).event_id.as_str(), 3)
    );
    assert_eq!(queue.depth(Consumer::Slack).await.unwrap(), (0, 1));

    let redriven = dead_letters.redrive(&|_| {}).await.unwrap();
    assert_eq!(redriven.moved, 1);
    assert_eq!(redriven.to, ["the slack queue"]);
    let batch = queue
        .receive(Consumer::Slack, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(batch.records.len(), 1);
    assert_eq!(batch.records[0].attributes["ApproximateReceiveCount"], "1");
    let listing = dead_letters.list().await.unwrap();
    assert_eq!((listing.total, listing.letters.len()), (0, 0));
}

#[tokio::test]
async fn a_commit_wakes_the_consumer_and_concurrent_sends_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("q.sqlite")).unwrap());
    let waiter = {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move {
            queue
                .wait(Consumer::Warehouse, Duration::from_secs(60))
                .await
        })
    };
    let sends: Vec<_> = (0..500)
        .map(|n| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.send(Consumer::Warehouse, &message(n)).await.unwrap() })
        })
        .collect();
    for send in sends {
        send.await.unwrap();
    }
    assert!(
        waiter.await.unwrap(),
        "woken by a commit, not by the timeout"
    );
    assert_eq!(queue.depth(Consumer::Warehouse).await.unwrap().0, 500);
}

#[tokio::test]
async fn accepted_event_ids_are_forgotten_after_their_time_a_bounded_number_per_pass() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open(&dir.path().join("queues.sqlite")).unwrap();
    for n in 0..3 {
        queue.send(Consumer::Slack, &message(n)).await.unwrap();
    }
    // Within their time nothing is forgotten: a retry is still a duplicate.
    assert_eq!(
        queue
            .forget_accepted(Duration::from_secs(3600), 10)
            .await
            .unwrap(),
        0
    );
    assert!(
        queue
            .send(Consumer::Slack, &message(0))
            .await
            .unwrap()
            .duplicate
    );
    // Past it, at most `limit` a pass, oldest first.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let older_than = Duration::from_millis(10);
    assert_eq!(queue.forget_accepted(older_than, 2).await.unwrap(), 2);
    assert_eq!(queue.forget_accepted(older_than, 2).await.unwrap(), 1);
    assert_eq!(queue.forget_accepted(older_than, 2).await.unwrap(), 0);
    assert!(
        !queue
            .send(Consumer::Slack, &message(0))
            .await
            .unwrap()
            .duplicate
    );
}

#[tokio::test]
async fn a_failed_message_returns_when_its_deferral_ends_or_else_after_its_visibility() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open(&dir.path().join("q.sqlite")).unwrap();
    queue.send(Consumer::Alerts, &message(1)).await.unwrap();
    queue.send(Consumer::Alerts, &message(2)).await.unwrap();
    let visibility = Duration::from_millis(300);
    let batch = queue
        .receive(Consumer::Alerts, 10, visibility)
        .await
        .unwrap();
    assert_eq!(batch.records.len(), 2);
    // The first is deferred for a long time, the second not at all: after the
    // visibility timeout only the second is back.
    let receipt = batch.records[0].receipt_handle.clone().unwrap();
    queue
        .defer(&receipt, Duration::from_secs(3600))
        .await
        .unwrap();
    for record in &batch.records {
        let id = record.message_id.clone().unwrap();
        queue.failed(Consumer::Alerts, id, 25).await.unwrap();
    }
    tokio::time::sleep(visibility + Duration::from_millis(100)).await;
    let again = queue
        .receive(Consumer::Alerts, 10, visibility)
        .await
        .unwrap();
    assert_eq!(again.records.len(), 1);
    assert_eq!(again.records[0].message_id, batch.records[1].message_id);
}

#[tokio::test]
async fn a_queue_database_from_before_traces_gets_the_column_and_keeps_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.sqlite");
    // The messages table as releases before traces created it, with one message waiting.
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE messages (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     queue TEXT NOT NULL,
                     message_id TEXT NOT NULL UNIQUE,
                     event_id TEXT NOT NULL,
                     source TEXT NOT NULL,
                     type TEXT NOT NULL,
                     body TEXT NOT NULL,
                     receive_count INTEGER NOT NULL DEFAULT 0,
                     visible_at INTEGER NOT NULL,
                     dead_at INTEGER
                 );
                 INSERT INTO messages (queue, message_id, event_id, source, type, body, visible_at)
                 VALUES ('slack', 'slack-old', 'evt_old', 'perscom', 'user.created', '{}', 0);",
            )
            .unwrap();
    }
    // Two processes opening it at once (serve, and a replay beside it): both work.
    let (first, second) = tokio::join!(
        tokio::task::spawn_blocking({
            let path = path.clone();
            move || SqliteQueue::open(&path).map(drop)
        }),
        tokio::task::spawn_blocking({
            let path = path.clone();
            move || SqliteQueue::open(&path).map(drop)
        }),
    );
    first.unwrap().unwrap();
    second.unwrap().unwrap();

    let queue = SqliteQueue::open(&path).unwrap();
    let traced = QueueMessage {
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        ..message(2)
    };
    queue.send(Consumer::Slack, &traced).await.unwrap();
    let batch = queue
        .receive(Consumer::Slack, 10, Duration::from_secs(30))
        .await
        .unwrap();
    let carried: Vec<(Option<&str>, Option<&str>)> = batch
        .records
        .iter()
        .map(|r| {
            (
                r.message_attributes["event_id"].string_value.as_deref(),
                r.message_attributes
                    .get("traceparent")
                    .and_then(|a| a.string_value.as_deref()),
            )
        })
        .collect();
    assert_eq!(
        carried,
        [
            (Some("evt_old"), None),
            (
                Some(traced.event_id.as_str()),
                traced.traceparent.as_deref()
            )
        ]
    );
}
