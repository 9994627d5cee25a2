//! `okr-webhooks dlq --queue-url` against SQS (moto): events that failed five times are
//! listed without being taken, shown, and moved back to their queue.

use std::time::Duration;

use assert_cmd::Command;
use aws_sdk_sqs::Client;
use okr_aws::sqs::SqsQueue;
use okr_core::Event;
use okr_core::routing::Consumer;
use okr_pipeline::config::QueueUrls;
use okr_pipeline::queue::{EventQueue, QueueMessage};
use okr_webhooks_tests::{Moto, unique};
use predicates::prelude::*;
use serde_json::Value;

fn okr_webhooks(moto: &Moto) -> Command {
    let mut command = assert_cmd::cargo::cargo_bin_cmd!("okr-webhooks");
    command
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .timeout(Duration::from_secs(60));
    command
}

/// The events of a sample SQS batch for the Slack notifier.
fn sample_events(file: &str) -> Vec<Event> {
    let path = format!(
        "{}/../events/slack-notifier/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let batch: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    batch["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
        .collect()
}

async fn depth(sqs: &Client, url: &str) -> usize {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    attributes.attributes().unwrap()
        [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}

/// Receive what `queue` holds five times without deleting it, as a failing consumer
/// does; the next receive moves it to the dead-letter queue (`maxReceiveCount` 5).
async fn fail_five_times(sqs: &Client, queue: &str) {
    for _ in 0..6 {
        sqs.receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_show_and_redrive_an_sqs_dead_letter_queue() {
    let moto = Moto::start();
    let sqs = Client::new(&moto.sdk_config().await);
    let name = unique("slack");
    let dlq_name = format!("{name}-dlq");
    let dlq = sqs
        .create_queue()
        .queue_name(&dlq_name)
        .send()
        .await
        .unwrap();
    let dlq = dlq.queue_url().unwrap().to_owned();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}"#),
        )
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();

    // Two events sent as ingest sends them, then received five times without being
    // deleted (a consumer failing): SQS moves them to the dead-letter queue.
    let events = sample_events("award_created.json")
        .into_iter()
        .chain(sample_events("employee_created.json"))
        .collect::<Vec<_>>();
    assert_eq!(events.len(), 2);
    let urls = QueueUrls {
        warehouse: queue.clone(),
        slack: queue.clone(),
        alerts: queue.clone(),
        progress: queue.clone(),
        subscriptions: queue.clone(),
    };
    let sender = SqsQueue::new(sqs.clone(), urls);
    for event in &events {
        let message = QueueMessage::from_event(event).unwrap();
        sender.send(Consumer::Slack, &message).await.unwrap();
    }
    fail_five_times(&sqs, &queue).await;
    assert_eq!(depth(&sqs, &queue).await, 0);
    assert_eq!(depth(&sqs, &dlq).await, 2);

    // list: the count and one line per message; listing twice takes nothing away. (SQS
    // cannot peek: a look is a receive, so the second look sees one more.)
    for receives in [5, 6] {
        let output = okr_webhooks(&moto)
            .args(["dlq", "list", "--queue-url", &dlq])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let output = String::from_utf8(output).unwrap();
        let mut lines = output.lines();
        assert_eq!(
            lines.next(),
            Some(format!("{dlq_name}: 2 dead letter(s)").as_str())
        );
        let mut listed: Vec<_> = lines.collect();
        listed.sort();
        assert_eq!(listed.len(), 2, "{output}");
        for event in &events {
            assert!(
                listed.iter().any(|line| line.contains(&format!(
                    " {} {} received {receives} times",
                    event.id, event.event_type
                ))),
                "{event:?} not in {output}"
            );
        }
        assert_eq!(depth(&sqs, &dlq).await, 2, "list must not take messages");
    }

    // show: the events themselves.
    let output = okr_webhooks(&moto)
        .args(["dlq", "show", "--queue-url", &dlq])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut shown: Vec<String> = String::from_utf8(output)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Event>(line).unwrap().id)
        .collect();
    shown.sort();
    let mut ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    assert_eq!(shown, ids);

    // A source queue is not a dead-letter queue: a clear error, nothing moved.
    okr_webhooks(&moto)
        .args(["dlq", "redrive", "--queue-url", &queue])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "is not the dead-letter queue of any queue",
        ));
    assert_eq!(depth(&sqs, &dlq).await, 2);

    // redrive: a message move task back to the source queue, followed until it is done.
    okr_webhooks(&moto)
        .args(["dlq", "redrive", "--queue-url", &dlq])
        .assert()
        .success()
        .stdout(format!("{dlq_name}: moved 2 message(s) back to {name}\n"))
        .stderr(predicate::str::contains("moving"));
    assert_eq!(depth(&sqs, &dlq).await, 0);
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let mut back: Vec<String> = received
        .iter()
        .map(|m| serde_json::from_str::<Event>(m.body().unwrap()).unwrap().id)
        .collect();
    back.sort();
    assert_eq!(back, ids, "the same events are back on their queue");
    for message in &received {
        sqs.delete_message()
            .queue_url(&queue)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }

    // A second redrive reports its own task, not the finished one SQS still lists.
    let message = QueueMessage::from_event(&events[0]).unwrap();
    sender.send(Consumer::Slack, &message).await.unwrap();
    fail_five_times(&sqs, &queue).await;
    assert_eq!(depth(&sqs, &dlq).await, 1);
    okr_webhooks(&moto)
        .args(["dlq", "redrive", "--queue-url", &dlq])
        .assert()
        .success()
        .stdout(format!("{dlq_name}: moved 1 message(s) back to {name}\n"));
    assert_eq!(depth(&sqs, &queue).await, 1);
}

#[test]
fn queue_url_and_local_options_do_not_mix() {
    assert_cmd::cargo::cargo_bin_cmd!("okr-webhooks")
        .args([
            "dlq",
            "list",
            "--queue",
            "slack",
            "--queue-url",
            "https://sqs.us-east-1.amazonaws.com/123456789012/x",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}
