//! The dashboard with 5,000 key results (100 objectives of 50), in headless Chromium
//! against `okr-webhooks serve` (release): the first render (navigation start to the
//! list on screen, the page's own `rendered` mark), and how long after the 202 of a key
//! result update its new percentage is on the page, over 20 updates.
//! `cargo bench -p okr-webhooks-cli --bench dashboard` (docs/dashboard.md).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{deliver, secrets, serve_on};
use futures::StreamExt;
use okr_core::Source;
use okr_core::signing::SigningSecrets;
use serde_json::{Value, json};

const OBJECTIVES: usize = 100;
const PER_OBJECTIVE: usize = 50;
const UPDATES: usize = 20;
const RENDERS: usize = 5;

fn key_result(n: usize, current: usize, day: usize) -> Vec<u8> {
    json!({
        "eventType": "objective.patch", "id": format!("kr-{n}"),
        "parentId": format!("o-{}", n / PER_OBJECTIVE), "title": format!("Key result number {n}"),
        "startingValue": 0, "targetValue": 100,
        "currentValue": {"previous": current.saturating_sub(5), "current": current},
        "status": {"previous": "ON_TRACK", "current": if n.is_multiple_of(9) { "AT_RISK" } else { "ON_TRACK" }},
        "updatedBy": {"id": "u-1", "name": "Sam Okafor"},
        "updatedAt": format!("2025-05-{day:02}T09:00:00Z"),
        "startDate": "2025-04-01", "dueDate": "2025-06-30",
    })
    .to_string()
    .into_bytes()
}

fn objective(n: usize) -> Vec<u8> {
    json!({"eventType": "objective.post", "id": format!("o-{n}"), "title": format!("Objective {n}"),
           "status": "ON_TRACK", "updatedAt": "2025-05-01T09:00:00Z"})
    .to_string()
    .into_bytes()
}

async fn send(base: &str, secrets: &SigningSecrets, body: Vec<u8>) {
    let (status, _) = deliver(
        base,
        secrets,
        Source::PEOPLELOGIC,
        "peoplelogic",
        &body,
        None,
    )
    .await;
    assert_eq!(status, 202);
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_on("127.0.0.1", dir.path(), &[]).await;
    let base = server.base.as_str();
    let secrets = secrets(dir.path());
    let bodies: Vec<Vec<u8>> = (0..OBJECTIVES)
        .map(objective)
        .chain((0..OBJECTIVES * PER_OBJECTIVE).map(|n| key_result(n, 10 + n % 80, 10)))
        .collect();
    let started = Instant::now();
    futures::stream::iter(bodies)
        .for_each_concurrent(32, |body| send(base, &secrets, body))
        .await;
    let sent = started.elapsed();
    let total = OBJECTIVES * (PER_OBJECTIVE + 1);
    loop {
        let page: Value = reqwest::get(format!("{base}/api/progress?limit=1"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["total"] == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{total} objectives and key results: delivered (202) in {:.1} s, all in the read model after {:.1} s",
        sent.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let browser = common::browser::chromium(1280, 900).await;
    let client = &browser.client;
    let mut renders = Vec::new();
    for _ in 0..RENDERS {
        client.goto(&format!("{base}/dashboard")).await.unwrap();
        let at = client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const look = () => {
                   const mark = performance.getEntriesByName('rendered')[0];
                   if (mark && document.querySelectorAll('.row.kr').length >= 5000) done(mark.startTime);
                   else setTimeout(look, 10);
                 };
                 look();",
                vec![],
            )
            .await
            .unwrap();
        renders.push(at.as_f64().unwrap());
    }
    println!(
        "first render of {total}: median {:.0} ms over {RENDERS} loads (each: {})",
        median(renders.clone()),
        renders
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut latencies = Vec::new();
    for i in 0..UPDATES {
        let n = i * 250;
        let expected = format!("{}%", 91 + i % 9);
        let watch = client.execute_async(
            "const [key, want, done] = arguments;
             const cell = () => document.querySelector('[data-key=\"' + key + '\"] .pct');
             const check = () => { if (cell() && cell().textContent === want) { done(Date.now()); return true; } return false; };
             if (!check()) new MutationObserver((_, observer) => { if (check()) observer.disconnect(); })
               .observe(document.getElementById('list'), {subtree: true, childList: true, characterData: true});",
            vec![json!(format!("peoplelogic#kr-{n}")), json!(expected)],
        );
        let update = async {
            send(base, &secrets, key_result(n, 91 + i % 9, 20 + i % 8)).await;
            now_ms()
        };
        let (seen, answered) = tokio::join!(watch, update);
        let seen = seen.unwrap().as_f64().unwrap();
        latencies.push(seen - answered);
    }
    println!(
        "update on the page after its 202: p50 {:.0} ms, max {:.0} ms over {UPDATES}",
        median(latencies.clone()),
        latencies.iter().cloned().fold(f64::MIN, f64::max)
    );
    browser.client.clone().close().await.unwrap();
}
