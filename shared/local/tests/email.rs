//! Email: the recipients document, each recipient's summary (sections, their order, the
//! grouping, what changed since the previous summary), sending once per (recipient,
//! run) with refusals skipped, and alert emails once per trigger and resolve.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use http::HeaderMap;
use okr_consumers::alerts::{Destinations, EmailAlerts, ProgressAlerts};
use okr_consumers::email::recipients::{Recipients, Scope};
use okr_consumers::email::send::{Report, Summaries};
use okr_consumers::progress::ProgressStore;
use okr_core::rules::Thresholds;
use okr_core::{Event, Source, normalize};
use okr_local::progress_sqlite::SqliteProgressStore;
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::outbound::mail::{Email, Mailer};
use okr_pipeline::outbound::{DeliveryError, Service};
use okr_pipeline::secrets::{SecretCache, StaticSecret};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::time::Instant;

/// A mailer that keeps what it is given; refuses addresses containing `refuse`, fails
/// the first send to each address in `flaky`, and throttles the first to each in
/// `throttled` (as SES's `TooManyRequestsException`).
#[derive(Default)]
struct Captured {
    sent: Mutex<Vec<Email>>,
    refuse: Option<&'static str>,
    flaky: Mutex<Vec<String>>,
    throttled: Mutex<Vec<String>>,
}

#[async_trait]
impl Mailer for Captured {
    async fn send(&self, email: &Email) -> Result<(), DeliveryError> {
        if self.refuse.is_some_and(|r| email.to.contains(r)) {
            return Err(DeliveryError::Refused {
                service: Service::Email,
                status: 400,
                reason: "MessageRejected: the address is on the suppression list".into(),
            });
        }
        let mut throttled = self.throttled.lock().unwrap();
        if let Some(at) = throttled.iter().position(|a| *a == email.to) {
            throttled.remove(at);
            return Err(DeliveryError::RateLimited {
                service: Service::Email,
                retry_after: None,
            });
        }
        drop(throttled);
        let mut flaky = self.flaky.lock().unwrap();
        if let Some(at) = flaky.iter().position(|a| *a == email.to) {
            flaky.remove(at);
            return Err(DeliveryError::unavailable(
                Service::Email,
                "connection reset",
            ));
        }
        self.sent.lock().unwrap().push(email.clone());
        Ok(())
    }
}

impl Captured {
    fn to(&self, address: &str) -> Vec<Email> {
        let sent = self.sent.lock().unwrap();
        sent.iter().filter(|e| e.to == address).cloned().collect()
    }
}

fn seed(path: &str) -> Event {
    let body = std::fs::read(format!(
        "{}/../../events/bodies/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let source: Source = path.split('/').next().unwrap().parse().unwrap();
    normalize(
        &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
        &HeaderMap::new(),
        &body,
        datetime!(2025-06-03 0:00 UTC),
    )
    .unwrap()
}

fn recipients(doc: Value) -> Arc<SecretCache<Recipients>> {
    let parsed = Recipients::parse(&doc.to_string()).unwrap();
    Arc::new(SecretCache::new(
        Arc::new(StaticSecret(parsed)),
        Duration::from_secs(60),
    ))
}

struct Setup {
    store: Arc<SqliteProgressStore>,
    mailer: Arc<Captured>,
    summaries: Summaries,
    /// What was sent and each run's state.
    states: Arc<MemoryIdempotencyStore>,
    _dir: tempfile::TempDir,
}

fn setup(doc: Value, mailer: Captured) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteProgressStore::open(&dir.path().join("progress.sqlite")).unwrap());
    let mailer = Arc::new(mailer);
    let states = Arc::new(MemoryIdempotencyStore::default());
    let summaries = Summaries::new(
        store.clone(),
        recipients(doc),
        mailer.clone(),
        states.clone(),
        Duration::from_secs(14 * 24 * 3600),
    );
    Setup {
        store,
        mailer,
        summaries,
        states,
        _dir: dir,
    }
}

async fn apply(store: &SqliteProgressStore, paths: &[&str]) {
    let events = paths.iter().map(|p| seed(p)).collect();
    for applied in store.apply(events, &Thresholds::default()).await {
        applied.unwrap();
    }
}

async fn run(summaries: &Summaries, at: OffsetDateTime) -> Report {
    summaries
        .send(at, at.date(), Instant::now() + Duration::from_secs(60))
        .await
        .unwrap()
}

/// Where each of `needles` is in `text`, asserting each is there.
fn positions(text: &str, needles: &[&str]) -> Vec<usize> {
    needles
        .iter()
        .map(|n| {
            text.find(n)
                .unwrap_or_else(|| panic!("{n:?} not in:\n{text}"))
        })
        .collect()
}

fn ascending(positions: &[usize]) -> bool {
    positions.windows(2).all(|w| w[0] < w[1])
}

const MONDAY_W24: OffsetDateTime = datetime!(2025-06-09 08:00 UTC);
const MONDAY_W25: OffsetDateTime = datetime!(2025-06-16 08:00 UTC);

#[tokio::test]
async fn the_seed_updates_land_in_sections_most_urgent_first_and_the_next_summary_says_what_moved()
{
    let s = setup(
        json!({"recipients": [{"address": "cto@example.com", "scope": "all"}]}),
        Captured::default(),
    );
    apply(
        &s.store,
        &[
            "peoplelogic/objective_completed.json",
            "peoplelogic/key_result_progress.json",
            "peoplelogic/key_result_progress_plain.json",
            "peopleforce/employee_create.json",
        ],
    )
    .await;
    let report = run(&s.summaries, MONDAY_W24).await;
    assert_eq!((report.recipients, report.sent), (1, 1));
    let first = &s.mailer.to("cto@example.com")[0];
    assert_eq!(
        first.subject,
        "OKR summary, week 24: 1 completed, 0 behind pace, 1 at risk, 1 stalled"
    );
    let text = &first.text;
    // Sections in order, each item in its own, under its objective.
    let at = positions(
        text,
        &[
            "NEEDS ATTENTION",
            "  Launch the self-serve onboarding flow\n    - KR Cut onboarding time to 10 minutes: 50% - at risk",
            "STALLED",
            "    - KR Reach 500 weekly active teams: 60% - no update for 19 days",
            "PROGRESS MOVED\n  None.",
            "COMPLETED",
            "    - The objective: completed",
        ],
    );
    assert!(ascending(&at), "{text}");
    assert!(text.contains(
        "The first summary: everything is news. 3 objectives and key results in your scope."
    ));
    // The HTML part has the same sections, in the same order.
    let html = &first.html;
    let at = positions(
        html,
        &[
            ">Needs attention<",
            ">Stalled<",
            ">Progress moved<",
            ">Completed<",
        ],
    );
    assert!(ascending(&at));

    // A week later: the key result moved 60% -> 80% (an update the providers stamped
    // before the first summary, delivered after it); the objective's completion was news
    // last week, not this one.
    apply(&s.store, &["peoplelogic/key_result_progress_next.json"]).await;
    run(&s.summaries, MONDAY_W25).await;
    let second = &s.mailer.to("cto@example.com")[1];
    assert_eq!(
        second.subject,
        "OKR summary, week 25: 0 completed, 0 behind pace, 1 at risk"
    );
    let at = positions(
        &second.text,
        &[
            "Since 2025-06-09 08:00 UTC.",
            "NEEDS ATTENTION",
            "KR Cut onboarding time to 10 minutes: 50% - at risk",
            "STALLED\n  None.",
            "PROGRESS MOVED",
            "    - KR Reach 500 weekly active teams: 60% -> 80% (+20)",
            "COMPLETED\n  None.",
        ],
    );
    assert!(ascending(&at), "{}", second.text);
}

#[tokio::test]
async fn scopes_choose_by_source_objective_and_title_and_no_personal_data_reaches_a_summary() {
    let objective = "5f0c1a2b-7d3e-4c59-8a61-0b9e2f4d7c18";
    let s = setup(
        json!({"recipients": [
            {"address": "people@example.com", "scope": {"source": "peopleforce"}},
            {"address": "onboarding@example.com", "scope": {"objectives": [objective]}},
            {"address": "teams@example.com", "scope": {"titles": ["reach *"]}},
            {"address": "launch@example.com", "scope": {"titles": ["*SELF-SERVE*"]}},
            {"address": "pager@example.com", "scope": "all", "summary": false, "alerts": true},
        ]}),
        Captured::default(),
    );
    apply(
        &s.store,
        &[
            "peoplelogic/objective_completed.json",
            "peoplelogic/key_result_progress.json",
            "peoplelogic/key_result_progress_plain.json",
            "peopleforce/employee_create.json",
            "perscom/user_created.json",
        ],
    )
    .await;
    let report = run(&s.summaries, MONDAY_W24).await;
    assert_eq!(
        (report.recipients, report.sent),
        (4, 4),
        "summary: false gets none"
    );
    let body = |to: &str| s.mailer.to(to)[0].text.clone();
    assert!(body("people@example.com").contains("Nothing in your scope yet."));
    assert!(body("onboarding@example.com").contains("3 objectives and key results"));
    // A title pattern, any case: the key result's own title...
    let teams = body("teams@example.com");
    assert!(
        teams.contains("1 objective or key result in your scope."),
        "{teams}"
    );
    assert!(teams.contains("Reach 500 weekly active teams"));
    // ... or its objective's.
    assert!(body("launch@example.com").contains("3 objectives and key results"));
    assert!(s.mailer.to("pager@example.com").is_empty());

    let hr = std::fs::read_to_string(format!(
        "{}/../../events/bodies/peopleforce/employee_create.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(hr.contains("1978-08-31") && hr.contains("johnny.d.private@example.org"));
    for email in s.mailer.sent.lock().unwrap().iter() {
        for personal in [
            "1978-08-31",
            "johnny.d.private@example.org",
            "+380501234567",
            "John",
            "Doe",
            "Sam Okafor",
            "Priya Raman",
        ] {
            assert!(
                !email.text.contains(personal) && !email.html.contains(personal),
                "{personal} in {}",
                email.subject
            );
        }
    }
}

#[tokio::test]
async fn a_retried_run_sends_only_what_it_had_not_and_a_refused_address_does_not_stop_the_others() {
    let mailer = Captured {
        refuse: Some("bounce"),
        flaky: Mutex::new(vec!["flaky@example.com".to_owned()]),
        ..Captured::default()
    };
    let s = setup(
        json!({"recipients": [
            {"address": "bounce@example.com", "scope": "all"},
            {"address": "cto@example.com", "scope": "all"},
            {"address": "flaky@example.com", "scope": "all"},
            {"address": "lead@example.com", "scope": "all"},
        ]}),
        mailer,
    );
    apply(&s.store, &["peoplelogic/key_result_progress.json"]).await;
    let first = run(&s.summaries, MONDAY_W24).await;
    assert_eq!(
        first,
        Report {
            recipients: 4,
            sent: 2,
            already_sent: 0,
            refused: 1,
            failed: 1
        }
    );
    // The schedule retries the run (same scheduled time): only the failed one goes out.
    let retry = run(&s.summaries, MONDAY_W24).await;
    assert_eq!(
        retry,
        Report {
            recipients: 4,
            sent: 1,
            already_sent: 2,
            refused: 1,
            failed: 0
        }
    );
    for to in ["cto@example.com", "flaky@example.com", "lead@example.com"] {
        assert_eq!(s.mailer.to(to).len(), 1, "{to}");
    }
    // The retry covered the same window as the first try (the first summary), not one
    // since the first try.
    let flaky = &s.mailer.to("flaky@example.com")[0];
    assert_eq!(flaky.text, s.mailer.to("cto@example.com")[0].text);
    // The next run is a new one.
    let next = run(&s.summaries, MONDAY_W25).await;
    assert_eq!(next.sent, 3);
}

#[tokio::test]
async fn a_throttled_send_waits_and_goes_out_in_the_same_run() {
    let mailer = Captured {
        throttled: Mutex::new(vec!["cto@example.com".to_owned()]),
        ..Captured::default()
    };
    let s = setup(
        json!({"recipients": [{"address": "cto@example.com", "scope": "all"}]}),
        mailer,
    );
    apply(&s.store, &["peoplelogic/key_result_progress.json"]).await;
    let started = std::time::Instant::now();
    let report = run(&s.summaries, MONDAY_W24).await;
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(s.mailer.to("cto@example.com").len(), 1);
    // It waited (a second at least) rather than failing the run.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[test]
fn the_recipients_document_names_a_bad_entry_by_its_place_never_its_address() {
    let parsed = Recipients::parse(
        r#"{"recipients": [{"address": "a@example.com", "scope": "all"},
            {"address": "b@example.com", "scope": {"source": "peoplelogic"}, "alerts": true, "summary": false}]}"#,
    )
    .unwrap();
    assert_eq!(parsed.listed[1].scope, Scope::Source(Source::PEOPLELOGIC));
    assert!(parsed.listed[1].alerts && !parsed.listed[1].summary);
    assert!(!parsed.listed[0].alerts && parsed.listed[0].summary);
    assert_ne!(parsed.listed[0].id(), parsed.listed[1].id());
    assert!(!parsed.listed[0].id().contains("example"));
    for (doc, error) in [
        (
            r#"{"recipients": [{"address": "secret.person@example.com"}]}"#,
            "recipient 1: needs a \"scope\"",
        ),
        (
            r#"{"recipients": [{"address": "a@b.c", "scope": "all"}, {"address": "not an address", "scope": "all"}]}"#,
            "recipient 2: its \"address\" is not an email address",
        ),
        (
            r#"{"recipients": [{"address": "secret.person@example.com", "scope": {"team": "x"}}]}"#,
            "recipient 1: \"scope\" must be",
        ),
        (
            r#"{"recipients": [{"address": "secret.person@example.com", "scope": {"source": "Jira Cloud"}}]}"#,
            "recipient 1: \"source\" must be a tool's name",
        ),
        (
            r#"{"recipients": [{"address": "secret.person@example.com", "scope": "all", "alerts": "yes"}]}"#,
            "recipient 1: \"alerts\" must be true or false",
        ),
        (
            r#"{"recipients": [{"address": "secret.person@example.com", "scope": "all"}, {"address": "Secret.Person@example.com", "scope": {"source": "perscom"}}]}"#,
            "recipient 2: the same address as recipient 1",
        ),
        (r#"{"people": []}"#, "expected {\"recipients\": [...]}"),
        (
            r#"{"recipients": [{"address": "secret.person@example.com""#,
            "not JSON",
        ),
    ] {
        let message = Recipients::parse(doc).unwrap_err();
        assert!(message.starts_with(error), "{message}");
        assert!(
            !message.to_lowercase().contains("secret.person"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn the_html_part_has_inline_styles_only_no_remote_resources_and_escapes_titles() {
    let s = setup(
        json!({"recipients": [{"address": "cto@example.com", "scope": "all"}]}),
        Captured::default(),
    );
    let mut body: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../../events/bodies/peoplelogic/key_result_progress_plain.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    body["title"] = json!("<script>alert(1)</script> & <img src=https://evil.example/x.png>");
    let event = normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
        &HeaderMap::new(),
        body.to_string().as_bytes(),
        MONDAY_W24,
    )
    .unwrap();
    for applied in s.store.apply(vec![event], &Thresholds::default()).await {
        applied.unwrap();
    }
    run(&s.summaries, MONDAY_W24).await;
    let html = s.mailer.to("cto@example.com")[0].html.clone();
    assert!(html.contains(
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=https://evil.example/x.png&gt;"
    ));
    for banned in [
        "<script", "<img", "<link", "<style", "url(", "src=\"", "href=",
    ] {
        assert!(!html.contains(banned), "{banned} in the HTML part");
    }
    assert!(
        !html.contains("http://")
            && !html
                .replace("https://evil.example/x.png", "")
                .contains("https://")
    );
}

fn sample(name: &str) -> SqsEvent {
    let path = format!(
        "{}/../../events/progress-alerts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn alert_emails_trigger_then_resolve_once_each_across_a_duplicate_delivery_to_the_scope() {
    let mailer = Arc::new(Captured {
        refuse: Some("bounce"),
        ..Captured::default()
    });
    let doc = json!({"recipients": [
        {"address": "lead@example.com", "scope": {"titles": ["raise activation*"]}, "alerts": true},
        {"address": "bounce@example.com", "scope": "all", "alerts": true},
        {"address": "cto@example.com", "scope": "all"},
        {"address": "hr@example.com", "scope": {"source": "peopleforce"}, "alerts": true},
    ]});
    let alerts = ProgressAlerts::new(
        Destinations {
            slack: None,
            pagerduty: None,
            email: Some(EmailAlerts {
                mailer: mailer.clone(),
                recipients: recipients(doc),
            }),
        },
        Arc::new(MemoryIdempotencyStore::default()),
        Thresholds::default(),
        Duration::from_secs(24 * 3600),
    );
    let handle = |name: &'static str| {
        let alerts = &alerts;
        async move {
            let response = alerts
                .handle(sample(name), Instant::now() + Duration::from_secs(60))
                .await
                .unwrap();
            // The refused address is skipped, not a failed record.
            assert!(
                response.batch_item_failures.is_empty(),
                "{name}: {response:?}"
            );
        }
    };
    for name in [
        "behind_pace.json",
        "behind_pace.json",
        "recovered.json",
        "recovered.json",
        "completed.json",
    ] {
        handle(name).await;
    }
    let lead = mailer.to("lead@example.com");
    let subjects: Vec<&str> = lead.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "[OKR alert] KR Raise activation to 40% is behind pace: 32% done with 68.2% of the period gone",
            "[OKR alert resolved] KR Raise activation to 40% is back on pace (70%)",
        ]
    );
    assert!(lead[0].text.contains("Rule: behind pace") && lead[0].html.contains("behind pace"));
    // Not an alert recipient, or not in scope: nothing.
    assert!(mailer.to("cto@example.com").is_empty());
    assert!(mailer.to("hr@example.com").is_empty());
    let counts: HashMap<String, usize> =
        mailer
            .sent
            .lock()
            .unwrap()
            .iter()
            .fold(HashMap::new(), |mut m, e| {
                *m.entry(e.to.clone()).or_default() += 1;
                m
            });
    assert_eq!(counts.len(), 1, "{counts:?}");
}

#[tokio::test]
async fn the_runs_record_keeps_each_run_with_the_one_before_it_even_when_retried_after_a_later_one()
{
    use okr_consumers::email::schedule::window;
    let store = MemoryIdempotencyStore::default();
    let previous = async |at: OffsetDateTime, record: bool| {
        window(&store, at, at.date(), record)
            .await
            .unwrap()
            .previous
    };
    assert_eq!(previous(MONDAY_W24, true).await, None, "the first run");
    assert_eq!(previous(MONDAY_W25, true).await, Some(MONDAY_W24));
    // A retry of the first run after the second: still the first.
    assert_eq!(previous(MONDAY_W24, true).await, None);
    // A manual run in between, then a late retry of the second: the retry keeps its
    // first try's window.
    let wednesday = datetime!(2025-06-11 12:00 UTC);
    assert_eq!(previous(wednesday, true).await, Some(MONDAY_W24));
    assert_eq!(previous(MONDAY_W25, true).await, Some(MONDAY_W24));
    // A dry run records nothing.
    let w26 = datetime!(2025-06-23 08:00 UTC);
    assert_eq!(previous(w26, false).await, Some(MONDAY_W25));
    assert_eq!(
        previous(datetime!(2025-06-24 08:00 UTC), false).await,
        Some(MONDAY_W25)
    );
}

#[tokio::test]
async fn a_large_read_models_state_is_kept_in_parts_that_fit_a_dynamodb_item() {
    use okr_consumers::email::baseline::{Baseline, Seen, keep, load};
    use okr_pipeline::idempotency::StateStore;
    // 30,000 key results with random ids: a state that gzip cannot shrink under 400 KB.
    let records = (0..30_000u32)
        .map(|n| {
            let id = format!(
                "{:032x}",
                u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
            );
            let seen = Seen {
                progress: Some(f64::from(n % 101)),
                completed: n % 7 == 0,
            };
            (format!("peoplelogic#{id}"), seen)
        })
        .collect();
    let baseline = Baseline(records);
    let store = MemoryIdempotencyStore::default();
    keep(&store, MONDAY_W24, &baseline).await.unwrap();
    // (Not assert_eq!: a failure would print 30,000 records.)
    assert!(load(&store, MONDAY_W24).await.unwrap() == Some(baseline.clone()));
    let now = OffsetDateTime::now_utc();
    let key = format!("summary-state:baseline:{}", MONDAY_W24.unix_timestamp());
    let manifest: Value =
        serde_json::from_str(&store.load_state(&key, now).await.unwrap().unwrap().value).unwrap();
    let parts = manifest["parts"].as_u64().unwrap();
    assert!(parts > 1, "{parts} part(s)");
    for part in 0..parts {
        let part_key = format!("{key}:{}:{part}", manifest["by"].as_str().unwrap());
        let stored = store.load_state(&part_key, now).await.unwrap().unwrap();
        assert!(stored.value.len() <= 300_000);
    }
    // A retry keeps what the first try saw.
    keep(&store, MONDAY_W24, &Baseline::default())
        .await
        .unwrap();
    assert!(load(&store, MONDAY_W24).await.unwrap() == Some(baseline));
}

/// A run's state is kept while a recipient measures from it, shared by those who heard
/// the same run, and dropped once nobody does; a late retry of a run sends nothing to a
/// recipient who has heard a later one.
#[tokio::test]
async fn a_runs_state_is_kept_while_a_recipient_needs_it_and_dropped_after() {
    use okr_consumers::email::baseline::load;
    let s = setup(
        json!({"recipients": [
            {"address": "cto@example.com", "scope": "all"},
            {"address": "lead@example.com", "scope": "all"},
        ]}),
        Captured::default(),
    );
    let kept = async |at: OffsetDateTime| load(s.states.as_ref(), at).await.unwrap().is_some();
    apply(&s.store, &["peoplelogic/key_result_progress.json"]).await;
    assert_eq!(run(&s.summaries, MONDAY_W24).await.sent, 2);
    // Week 25 fails for the lead: the lead still measures from week 24.
    s.mailer
        .flaky
        .lock()
        .unwrap()
        .push("lead@example.com".to_owned());
    apply(&s.store, &["peoplelogic/key_result_progress_next.json"]).await;
    let w25 = run(&s.summaries, MONDAY_W25).await;
    assert_eq!((w25.sent, w25.failed), (1, 1));
    assert!(kept(MONDAY_W24).await, "the lead measures from week 24");
    assert!(kept(MONDAY_W25).await, "the CTO measures from week 25");
    // Week 26 reaches both: weeks 24 and 25 are nobody's any more.
    let w26 = datetime!(2025-06-23 08:00 UTC);
    assert_eq!(run(&s.summaries, w26).await.sent, 2);
    assert!(!kept(MONDAY_W24).await && !kept(MONDAY_W25).await);
    assert!(kept(w26).await);
    let lead = &s.mailer.to("lead@example.com")[1];
    assert!(
        lead.text.contains("Since 2025-06-09 08:00 UTC.") && lead.text.contains("60% -> 80% (+20)"),
        "{}",
        lead.text
    );
    // A late retry of week 25 (the lead's failed summary): the lead has heard week 26.
    let retry = run(&s.summaries, MONDAY_W25).await;
    assert_eq!((retry.sent, retry.already_sent), (0, 2));
    assert_eq!(s.mailer.to("lead@example.com").len(), 2);
}

/// Upgrading from a release without the recipients' records: a recipient without one
/// measures from the latest run whose summary the guard recorded as sent to them, so
/// the upgrade repeats nothing.
#[tokio::test]
async fn without_a_record_a_recipient_measures_from_the_last_summary_the_guard_saw_sent() {
    use okr_consumers::email::recipients::Recipients;
    use okr_pipeline::idempotency::{StateStore, StateWrite};
    let s = setup(
        json!({"recipients": [{"address": "cto@example.com", "scope": "all"}]}),
        Captured::default(),
    );
    apply(
        &s.store,
        &[
            "peoplelogic/objective_completed.json",
            "peoplelogic/key_result_progress.json",
        ],
    )
    .await;
    assert_eq!(run(&s.summaries, MONDAY_W24).await.sent, 1);
    // As 0.5.0 left it: no record of who heard what.
    let id =
        Recipients::parse(r#"{"recipients": [{"address": "cto@example.com", "scope": "all"}]}"#)
            .unwrap()
            .listed[0]
            .id();
    let key = format!("summary-state:heard:{id}");
    let now = OffsetDateTime::now_utc();
    let stored = s.states.load_state(&key, now).await.unwrap().unwrap();
    let gone = StateWrite {
        key: &key,
        expected: Some(stored.version),
        value: "",
        now,
        keep: Duration::ZERO,
    };
    assert!(s.states.save_state(&gone).await.unwrap());
    apply(&s.store, &["peoplelogic/key_result_progress_next.json"]).await;
    assert_eq!(run(&s.summaries, MONDAY_W25).await.sent, 1);
    let second = &s.mailer.to("cto@example.com")[1];
    assert!(
        second.text.contains("Since 2025-06-09 08:00 UTC.")
            && second.text.contains("60% -> 80% (+20)")
            && second.text.contains("COMPLETED\n  None."),
        "{}",
        second.text
    );
}

/// The seed's hire in a directory that can be made unreadable.
#[derive(Default)]
struct Unreliable {
    people: okr_consumers::directory::MemoryDirectory,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl okr_consumers::directory::DirectoryStore for Unreliable {
    async fn entries(
        &self,
    ) -> Result<Vec<okr_consumers::directory::Versioned>, okr_consumers::directory::DirectoryError>
    {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(okr_consumers::directory::DirectoryError::new(
                "the table is unavailable",
            ));
        }
        self.people.entries().await
    }
    async fn put(
        &self,
        entry: &okr_consumers::directory::Entry,
        expected: Option<u64>,
    ) -> Result<bool, okr_consumers::directory::DirectoryError> {
        self.people.put(entry, expected).await
    }
    async fn remove(&self, key: &str) -> Result<(), okr_consumers::directory::DirectoryError> {
        self.people.remove(key).await
    }
}

#[tokio::test]
async fn a_directory_that_cannot_be_read_holds_back_only_the_summaries_by_the_org_chart() {
    let doc = json!({"recipients": [
        {"address": "cto@example.com", "scope": "all"},
        {"address": "ross.kate@example.com", "scope": {"reports": "direct"}},
    ]});
    let setup = setup(doc, Captured::default());
    apply(&setup.store, &["peoplelogic/key_result_progress.json"]).await;
    let directory = Arc::new(Unreliable::default());
    okr_consumers::directory::apply(
        &directory.people,
        &[seed("peopleforce/employee_create.json")],
    )
    .await
    .unwrap();
    let summaries = setup.summaries.with_directory(directory.clone());
    let at = datetime!(2025-06-09 08:00 UTC);

    directory
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let report = run(&summaries, at).await;
    assert_eq!(
        (report.recipients, report.sent, report.failed),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!(setup.mailer.to("cto@example.com").len(), 1);
    assert!(setup.mailer.to("ross.kate@example.com").is_empty());

    // The retry, with the directory back: Ross's only.
    directory
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let report = run(&summaries, at).await;
    assert_eq!(
        (report.sent, report.already_sent, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(setup.mailer.to("cto@example.com").len(), 1);
    assert_eq!(setup.mailer.to("ross.kate@example.com").len(), 1);
}
