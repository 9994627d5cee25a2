//! The delivery inspector's page in headless Chromium, over `serve` with a Slack
//! stand-in: an event Slack refused until it dead-lettered, a refused delivery arriving
//! live, the filters, a retry to Slack (posted once, and once only when clicked again),
//! a filtered re-send with its count first; and the send-again API refusing what a page
//! on another site could send.

mod common;

use common::browser::chromium;
use common::{accepted, eventually, secrets, serve_on};
use fantoccini::{Client, Locator};
use okr_core::Source;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY_RESULT: &[u8] =
    include_bytes!("../../events/bodies/peoplelogic/key_result_progress.json");
/// The key result's line in its Slack message.
const KR_LINE: &str = "KR Reach 500 weekly active teams updated to 60%";

/// The text of the element `css` selects, or "" while there is none.
async fn text(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The texts of the elements `css` selects.
async fn texts(client: &Client, css: &str) -> Vec<String> {
    let mut found = Vec::new();
    for element in client.find_all(Locator::Css(css)).await.unwrap() {
        found.push(element.text().await.unwrap_or_default());
    }
    found
}

/// Set the filter `id` to `value` as a person does (an input event).
async fn set(client: &Client, id: &str, value: &str) {
    let script = format!(
        "const e = document.getElementById({id:?}); e.value = {value:?}; e.dispatchEvent(new Event('input'));"
    );
    client.execute(&script, vec![]).await.unwrap();
}

/// Choose "refused" in the outcome filter, as a person does.
async fn choose_refused(client: &Client) {
    let outcome = client.find(Locator::Id("outcome")).await.unwrap();
    outcome.select_by_value("refused").await.unwrap();
    // The page filters on `input`: sent again in case the driver fired only `change`.
    let script = "document.getElementById('outcome').dispatchEvent(new Event('input'));";
    client.execute(script, vec![]).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Slack's posts since the `from`th request that carry the key result's line.
async fn kr_posts(slack: &MockServer, from: usize) -> usize {
    let requests = slack.received_requests().await.unwrap();
    requests[from..]
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(KR_LINE))
        .count()
}

/// The outcome of the last of Slack's steps in `event_id`'s journey.
async fn last_slack_step(base: &str, event_id: &str) -> Option<String> {
    outcomes(base, event_id, "slack").await.pop()
}

/// The outcomes of `consumer`'s steps in `event_id`'s journey, from the API.
async fn outcomes(base: &str, event_id: &str, consumer: &str) -> Vec<String> {
    let journey: Value = reqwest::get(format!("{base}/api/events/{event_id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    journey["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["consumer"] == consumer)
        .map(|s| s["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_page_lists_live_filters_shows_a_journey_retries_once_and_resends_what_it_counted() {
    let dir = tempfile::tempdir().unwrap();
    let slack = MockServer::start().await;
    // 404 no_service: refused, retried every 100 ms until the 25th receive.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_service"))
        .mount(&slack)
        .await;
    let slack_url = format!("{}/slack", slack.uri());
    let server = serve_on(
        "127.0.0.1",
        dir.path(),
        &["--retry-base-ms", "50", "--slack-webhook-url", &slack_url],
    )
    .await;
    let base = server.base.as_str();
    let secrets = secrets(dir.path());
    let answer = accepted(base, &secrets, Source::PEOPLELOGIC, KEY_RESULT).await;
    let id = answer["event_id"].as_str().unwrap().to_owned();
    eventually(
        "the key result to reach Slack's dead-letter queue",
        async || last_slack_step(base, &id).await.as_deref() == Some("dead_lettered"),
    )
    .await;
    // Slack is fixed.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .with_priority(1)
        .mount(&slack)
        .await;
    let fixed_at = slack.received_requests().await.unwrap().len();

    let browser = chromium(1200, 900).await;
    let client = &browser.client;
    client.goto(&format!("{base}/deliveries")).await.unwrap();
    eventually("the delivery listed", async || {
        texts(client, "#rows tr").await.len() == 1
    })
    .await;
    assert!(text(client, "#live").await == "live");

    // A delivery arrives while the page is open: the seed's hire, signed over another
    // body. It shows without a reload.
    common::tampered_hire(base, &secrets).await;
    eventually("the refused delivery to show", async || {
        texts(client, "#rows tr").await.len() == 2
    })
    .await;
    let rows = texts(client, "#rows tr").await;
    assert!(
        rows[0].contains("peopleforce") && rows[0].contains("refused wrong_signature"),
        "{rows:?}"
    );
    assert!(rows[1].contains(&id), "{rows:?}");

    // The filters.
    choose_refused(client).await;
    eventually("only the refused one", async || {
        let rows = texts(client, "#rows tr").await;
        rows.len() == 1 && rows[0].contains("refused")
    })
    .await;
    set(client, "outcome", "").await;
    set(client, "type", "key_result.progress_updated").await;
    eventually("only the key result", async || {
        let rows = texts(client, "#rows tr").await;
        rows.len() == 1 && rows[0].contains(&id)
    })
    .await;

    // Its journey: refused by Slack 25 times, the last to the dead-letter queue.
    click(client, &format!("button.event[data-id='{id}']")).await;
    eventually("the journey", async || {
        texts(client, "#steps tr")
            .await
            .iter()
            .any(|s| s.contains("dead_lettered"))
    })
    .await;
    // No trace named: none is exported here, and the sender sent none (an id no
    // tracing system has would only mislead).
    assert_eq!(texts(client, "#event-trace").await, [""]);
    // Slack's run of refusals is one row: its count and attempts.
    let steps = texts(client, "#steps tr").await;
    assert!(
        steps[0].contains("ingest") && steps[0].contains("enqueued"),
        "{steps:?}"
    );
    let slack_rows: Vec<&String> = steps.iter().filter(|s| s.contains(" slack ")).collect();
    assert!(
        steps.iter().any(|s| s.contains("refused ×")
            && s.contains("–24")
            && s.contains("Slack refused it: 404 no_service")),
        "{steps:?}"
    );
    assert!(
        steps.iter().any(|s| s.contains("dead_lettered")
            && s.contains(" 25 ")
            && s.contains("receive 25 of 25")),
        "{steps:?}"
    );
    // (Two, or three when another consumer's step came between the first two.)
    assert!((2..=3).contains(&slack_rows.len()), "{slack_rows:?}");
    assert_eq!(
        texts(client, "#retry button").await,
        ["Retry to slack", "Retry to alerts", "Retry to progress"]
    );

    // Retry it to Slack: posted once; a second click posts nothing more.
    click(client, "button.retry-to[data-to='slack']").await;
    eventually("the retried post", async || {
        kr_posts(&slack, fixed_at).await == 1
    })
    .await;
    eventually("the retry's note", async || {
        text(client, "#retry-note")
            .await
            .starts_with("Sent again to slack (replay page-")
    })
    .await;
    eventually("the posted step on the page", async || {
        texts(client, "#steps tr")
            .await
            .iter()
            .any(|s| s.contains("posted") && s.contains("[replay page-"))
    })
    .await;
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("deliveries.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot: {}", shot.display());

    click(client, "button.retry-to[data-to='slack']").await;
    eventually("the second retry skipped", async || {
        last_slack_step(base, &id).await.as_deref() == Some("skipped")
    })
    .await;
    assert_eq!(
        kr_posts(&slack, fixed_at).await,
        1,
        "posted once, not twice"
    );

    // Everything the filters match, to Slack: the count first, then the send.
    click(client, "#count").await;
    eventually("the count", async || {
        !text(client, "#resend-note").await.is_empty()
    })
    .await;
    assert_eq!(
        text(client, "#resend-note").await,
        "1 event(s) would go to slack (1 posted already: Slack skips them)."
    );
    assert_eq!(text(client, "#send").await, "Send 1");
    let skipped_before = outcomes(base, &id, "slack").await.len();
    click(client, "#send").await;
    eventually("the send", async || {
        text(client, "#resend-note")
            .await
            .starts_with("Sent 1 event(s) to slack (replay page-")
    })
    .await;
    eventually("the re-sent event's step", async || {
        outcomes(base, &id, "slack").await.len() == skipped_before + 1
    })
    .await;
    assert_eq!(
        outcomes(base, &id, "slack").await.last().unwrap(),
        "skipped"
    );
    assert_eq!(kr_posts(&slack, fixed_at).await, 1);

    // Refused deliveries never became events: nothing to count.
    set(client, "type", "").await;
    choose_refused(client).await;
    click(client, "#count").await;
    assert_eq!(
        text(client, "#resend-note").await,
        "refused deliveries never became events: nothing to send again."
    );
}

#[tokio::test]
async fn sending_again_takes_only_json_from_this_servers_own_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_on("127.0.0.1", dir.path(), &[]).await;
    let base = server.base.as_str();
    let http = reqwest::Client::new();
    let url = format!("{base}/api/replays");
    let body = json!({"to": "slack", "dry_run": true}).to_string();
    // POST `body` as JSON with `headers`: the status and the answer.
    let post = |headers: Vec<(&'static str, String)>, body: String| {
        let mut request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // A form another site posts: not JSON.
    let form = http
        .post(&url)
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    assert_eq!(
        form.json::<Value>().await.unwrap()["error"],
        "json_required"
    );
    // A page elsewhere that managed a JSON body: its origin gives it away.
    for (name, value) in [
        ("origin", "http://attacker.example"),
        ("origin", "null"),
        ("origin", "http://127.0.0.1:1"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let (status, answer) = post(vec![(name, value.into())], body.clone()).await;
        assert_eq!(
            (status, &answer["error"]),
            (403, &json!("cross_site")),
            "{name}"
        );
    }
    // This server's own page (or curl): answered. Nothing is archived yet.
    let own = vec![
        ("origin", base.to_owned()),
        ("sec-fetch-site", "same-origin".to_owned()),
    ];
    let (status, answer) = post(own, body.clone()).await;
    assert_eq!(
        (status, &answer["error"]),
        (409, &json!("no_archive")),
        "{answer}"
    );
    // A bad request is a 400 with its reason; the page reaches back 14 days at most
    // (Slack remembers its posts for 15).
    for (bad, reason) in [
        (json!({"to": "warehouse"}), "to: slack, alerts or progress"),
        (
            json!({"to": "slack", "since": "2020-01-01"}),
            "since: within the last 14 days",
        ),
    ] {
        let (status, answer) = post(Vec::new(), bad.to_string()).await;
        assert_eq!((status, &answer["error"]), (400, &json!("invalid_replay")));
        assert!(
            answer["message"].as_str().unwrap().starts_with(reason),
            "{answer}"
        );
    }
}
