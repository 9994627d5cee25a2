//! A consumer's failed record on SQS (moto) waits its turn in the retry schedule:
//! `ChangeMessageVisibility` with the wait for its receive count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::Client as SqsClient;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use okr_aws::sqs::SqsDefer;
use okr_pipeline::batch::BatchReport;
use okr_pipeline::retry::{Failure, Retries, Schedule};
use okr_webhooks_tests::{Moto, unique};

/// Receive the queue's one message, waiting up to `wait`, as a Lambda SQS event.
async fn receive(sqs: &SqsClient, url: &str, wait: i32) -> Option<SqsEvent> {
    let received = sqs
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(wait)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let message = received.messages?.into_iter().next()?;
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    if let Some(count) = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
    {
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), count.clone());
    }
    let mut event = SqsEvent::default();
    event.records = vec![record];
    Some(event)
}

/// Fail the batch's one record as `failure`, deferred by `retries`.
async fn fail(batch: &SqsEvent, failure: Failure, retries: &Retries) {
    let journey = okr_pipeline::journal::Journey::logged("slack");
    let mut report = BatchReport::new(batch, &journey);
    report.fail(batch.records[0].message_id.as_deref(), failure);
    let response = report.finish(retries, None).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transient_failure_hides_the_record_for_its_receive_counts_wait() {
    let moto = Moto::start();
    let sqs = SqsClient::new(&moto.sdk_config().await);
    let url = sqs
        .create_queue()
        .queue_name(unique("slack"))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "60",
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&url)
        .message_body("{}")
        .send()
        .await
        .unwrap();
    // The schedule's shape with a 2 s first wait: 2 s (±20 %), then 4 s.
    let retries = Retries {
        defer: Arc::new(SqsDefer::new(sqs.clone(), &url)),
        schedule: Schedule::starting_at(Duration::from_secs(2)),
    };

    let first = receive(&sqs, &url, 0).await.expect("the message");
    let failed_at = Instant::now();
    fail(&first, Failure::Transient, &retries).await;
    // Not back before its wait (1.6 s at the least), back well before the 60 s
    // visibility timeout.
    assert!(
        receive(&sqs, &url, 1).await.is_none(),
        "hidden for its wait"
    );
    let second = receive(&sqs, &url, 5).await.expect("back after its wait");
    let waited = failed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1600) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(
        second.records[0].attributes["ApproximateReceiveCount"], "2",
        "the same message, received again"
    );

    // The second receive's wait doubles: 4 s (3.2 s at the least).
    let failed_at = Instant::now();
    fail(&second, Failure::Transient, &retries).await;
    assert!(
        receive(&sqs, &url, 2).await.is_none(),
        "hidden for a longer wait"
    );
    let third = receive(&sqs, &url, 5)
        .await
        .expect("back after the doubled wait");
    assert!(failed_at.elapsed() >= Duration::from_millis(3200));

    // A refusal waits twice the first wait, without jitter: 4 s.
    let failed_at = Instant::now();
    fail(&third, Failure::Refused, &retries).await;
    assert!(
        receive(&sqs, &url, 3).await.is_none(),
        "hidden for its wait"
    );
    receive(&sqs, &url, 5)
        .await
        .expect("back after the refusal's wait");
    assert!(failed_at.elapsed() >= Duration::from_secs(4));
}
