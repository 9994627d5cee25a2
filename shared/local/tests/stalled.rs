//! The stalled check's once-only sends: a check whose send to one destination failed
//! leaves the alert to the next check, which sends only what did not go out; then
//! nothing more.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderMap;
use okr_consumers::directory::{self, MemoryDirectory};
use okr_consumers::progress::ProgressStore;
use okr_consumers::stalled::{StalledCheck, StalledDestinations};
use okr_core::endpoints::Endpoint;
use okr_core::rules::Thresholds;
use okr_core::{Event, Source, normalize};
use okr_local::progress_sqlite::SqliteProgressStore;
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::outbound::mail::{Email, Mailer};
use okr_pipeline::outbound::slack::{SlackMessage, SlackPoster};
use okr_pipeline::outbound::{DeliveryError, Service};
use serde_json::json;
use time::OffsetDateTime;
use tokio::time::Instant;

#[derive(Default)]
struct Mails(Mutex<Vec<Email>>);

#[async_trait]
impl Mailer for Mails {
    async fn send(&self, email: &Email) -> Result<(), DeliveryError> {
        self.0.lock().unwrap().push(email.clone());
        Ok(())
    }
}

/// The alerts channel: down for its first post.
#[derive(Default)]
struct Flaky(Mutex<Vec<String>>, Mutex<bool>);

#[async_trait]
impl SlackPoster for Flaky {
    async fn post(&self, message: &SlackMessage) -> Result<(), DeliveryError> {
        let mut failed = self.1.lock().unwrap();
        if !*failed {
            *failed = true;
            return Err(DeliveryError::unavailable(Service::Slack, "down"));
        }
        self.0.lock().unwrap().push(message.text.clone());
        Ok(())
    }
}

fn event(source: Source, body: serde_json::Value) -> Event {
    normalize(
        &Endpoint::of_source(source).unwrap(),
        &HeaderMap::new(),
        body.to_string().as_bytes(),
        OffsetDateTime::now_utc(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_failed_send_is_retried_alone_at_the_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let progress = Arc::new(SqliteProgressStore::open(&dir.path().join("p.sqlite")).unwrap());
    let people = Arc::new(MemoryDirectory::default());
    let mut hire: serde_json::Value = serde_json::from_str(include_str!(
        "../../../events/bodies/peopleforce/employee_create.json"
    ))
    .unwrap();
    hire["data"]["attributes"]["date_of_birth"] = json!("1978-08-31");
    directory::apply(people.as_ref(), &[event(Source::PEOPLEFORCE, hire)])
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let updated = (now - time::Duration::days(20))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let kr = event(
        Source::PEOPLELOGIC,
        json!({"eventType": "objective.patch", "id": "kr-1", "parentId": "o-1", "title": "Ship the partner API",
               "currentValue": 20, "status": "ON_TRACK", "updatedBy": {"name": "John Doe"},
               "updatedAt": updated}),
    );
    progress.apply(vec![kr], &Thresholds::default()).await;

    let mails = Arc::new(Mails::default());
    let channel = Arc::new(Flaky::default());
    let check = StalledCheck::new(
        progress,
        people,
        Arc::new(MemoryIdempotencyStore::default()),
        StalledDestinations {
            mailer: Some(mails.clone()),
            channel: Some(channel.clone()),
            ..StalledDestinations::default()
        },
        Duration::from_secs(14 * 86_400),
        Duration::from_secs(86_400),
    );
    let deadline = || Instant::now() + Duration::from_secs(60);
    let first = check.run(now, deadline()).await.unwrap();
    assert_eq!((first.sent, first.failed, first.opened), (1, 1, 0));
    // An hour later: the email is not sent again, the channel's post goes out.
    let later = now + time::Duration::hours(1);
    let second = check.run(later, deadline()).await.unwrap();
    assert_eq!(
        (
            second.sent,
            second.already_sent,
            second.failed,
            second.opened
        ),
        (1, 1, 0, 1)
    );
    let third = check
        .run(later + time::Duration::hours(1), deadline())
        .await
        .unwrap();
    assert_eq!(third, Default::default());
    let mails = mails.0.lock().unwrap();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "ross.kate@example.com");
    assert!(!mails[0].text.contains("1978") && !mails[0].html.contains("john.doe@"));
    let posted = channel.0.lock().unwrap();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0].contains("Ship the partner API has had no update for 20 days"),
        "{posted:?}"
    );
    assert!(!posted[0].contains('@'), "{posted:?}");
}
