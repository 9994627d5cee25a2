//! The live progress dashboard of `okr-webhooks serve`, in a real browser (headless
//! Chromium through WebDriver), and the progress API over HTTP: a signed key result
//! update moves its bar without a reload, the page asks no other host, and beyond
//! loopback the dashboard and the API need the token.

mod common;

use std::time::{Duration, Instant};

use common::browser::{assert_fits_a_phone, chromium};
use common::{deliver, eventually, secrets, serve_on};
use fantoccini::Locator;
use okr_core::Source;
use serde_json::Value;

const KR: &str = "peoplelogic#a7d4e9c0-2b1f-4e8a-9c3d-5f6a7b8c9d01";

fn body(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../events/bodies/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn progress(base: &str, query: &str) -> Value {
    reqwest::get(format!("{base}/api/progress?{query}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The text of the element `css` selects, or "" while there is none.
async fn text(client: &fantoccini::Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn a_signed_update_moves_its_bar_without_a_reload_and_the_page_asks_no_other_host() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_on("127.0.0.1", dir.path(), &[]).await;
    let base = server.base.as_str();
    let secrets = secrets(dir.path());
    for file in [
        "objective_completed.json",
        "key_result_progress.json",
        "key_result_progress_plain.json",
    ] {
        let body = body(&format!("peoplelogic/{file}"));
        let (status, _) = deliver(
            base,
            &secrets,
            Source::PEOPLELOGIC,
            "peoplelogic",
            &body,
            None,
        )
        .await;
        assert_eq!(status, 202, "{file}");
    }
    eventually("the read model to hold the three", async || {
        progress(base, "").await["total"] == 3
    })
    .await;

    let browser = chromium(1100, 760).await;
    let client = &browser.client;
    client.goto(&format!("{base}/dashboard")).await.unwrap();
    let pct = format!("[data-key=\"{KR}\"] .pct");
    eventually("the key result at 60%", async || {
        text(client, &pct).await == "60%"
    })
    .await;
    // The objective heads its key results; the at-risk one carries its badge.
    let section = text(client, "section.objective").await;
    assert!(
        section.starts_with("Launch the self-serve onboarding flow"),
        "{section}"
    );
    assert!(
        section.contains("Reach 500 weekly active teams"),
        "{section}"
    );
    assert_eq!(
        text(
            client,
            "[data-key=\"peoplelogic#b3c2d1e0-1111-4a2b-8c3d-000000000042\"] .badge"
        )
        .await,
        "at risk"
    );
    client
        .execute("window.sameDocument = true; return true;", vec![])
        .await
        .unwrap();

    // The provider moves it: 340 -> 420 of 100..500 is 80% (the README's next step).
    let update = body("peoplelogic/key_result_progress_next.json");
    let (status, _) = deliver(
        base,
        &secrets,
        Source::PEOPLELOGIC,
        "peoplelogic",
        &update,
        None,
    )
    .await;
    assert_eq!(status, 202);
    let sent = Instant::now();
    while text(client, &pct).await != "80%" {
        assert!(
            sent.elapsed() < Duration::from_secs(15),
            "the bar did not move"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let width = client
        .execute(
            &format!("return document.querySelector('[data-key=\"{KR}\"] .fill').style.width;"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(width, "80%");
    let same = client
        .execute("return window.sameDocument === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same, true, "the page was reloaded");
    // Its sparkline now has two points.
    let points = client
        .execute(
            &format!("return document.querySelector('[data-key=\"{KR}\"] polyline').getAttribute('points').split(' ').length;"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(points, 2);

    // Every request the page made went to this server: the page, its script and the
    // API (the stream, still open, is not listed until it ends; the update came through
    // it); nothing from a CDN, a font host or anywhere else.
    let requested = client
        .execute(
            "return performance.getEntriesByType('navigation')
                .concat(performance.getEntriesByType('resource')).map(e => e.name);",
            vec![],
        )
        .await
        .unwrap();
    let requested: Vec<String> = serde_json::from_value(requested).unwrap();
    for path in ["/dashboard", "/dashboard.js", "/api/progress"] {
        assert!(
            requested
                .iter()
                .any(|url| url.starts_with(&format!("{base}{path}"))),
            "{path} not requested: {requested:?}"
        );
    }
    for url in &requested {
        assert!(
            url.starts_with(&format!("{base}/")),
            "a request elsewhere: {url}"
        );
    }

    // The filters work on the page: a title search, then a status.
    let shown = |script: &'static str| async move {
        client.execute(script, vec![]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let keys = client
            .execute(
                "return [...document.querySelectorAll('.row[data-key]')].map(r => r.dataset.key.split('#')[1]);",
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value::<Vec<String>>(keys).unwrap()
    };
    let searched = shown("const s = document.getElementById('search'); s.value = 'ONBOARDING TIME'; s.dispatchEvent(new Event('input'));").await;
    // The key result, under its objective (shown for context).
    assert_eq!(
        searched,
        [
            "5f0c1a2b-7d3e-4c59-8a61-0b9e2f4d7c18",
            "b3c2d1e0-1111-4a2b-8c3d-000000000042"
        ]
    );
    let on_track = shown("const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); const t = document.getElementById('status'); t.value = 'ON_TRACK'; t.dispatchEvent(new Event('change'));").await;
    assert_eq!(
        on_track,
        [
            "5f0c1a2b-7d3e-4c59-8a61-0b9e2f4d7c18",
            "a7d4e9c0-2b1f-4e8a-9c3d-5f6a7b8c9d01"
        ]
    );
    shown("const t = document.getElementById('status'); t.value = ''; t.dispatchEvent(new Event('change'));").await;

    // A phone's width: nothing wider than the screen.
    assert_fits_a_phone(client).await;
    let phone = client.screenshot().await.unwrap();
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-phone.png"),
        phone,
    )
    .unwrap();
    client.set_window_size(1100, 760).await.unwrap();

    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot: {}", shot.display());

    // Open on loopback, but only to loopback names: a page whose own name was rebound to
    // 127.0.0.1 (DNS rebinding) is refused.
    let rebound = reqwest::Client::new()
        .get(format!("{base}/api/progress"))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let (status, _) = get(&format!("{base}/api/progress?limit=20000"), None).await;
    assert_eq!(status, 400, "a limit over 10,000");
    let (status, _) = get(&format!("{base}/api/progress?kind=team"), None).await;
    assert_eq!(status, 400, "an unknown kind");
    browser.client.clone().close().await.unwrap();
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn beyond_loopback_the_dashboard_and_the_api_need_the_token_and_webhooks_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let token = "dashboard-token-0123456789";
    let server = serve_on("0.0.0.0", dir.path(), &["--dashboard-token", token]).await;
    let base = server.base.as_str();
    for path in ["/dashboard", "/api/progress", "/api/progress/stream"] {
        let (status, body) = get(&format!("{base}{path}"), None).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["error"], "unauthorized", "{path}");
        let (status, _) = get(&format!("{base}{path}"), Some("dashboard-token-wrong")).await;
        assert_eq!(status, 401, "{path}");
    }
    let (status, _) = get(&format!("{base}/dashboard"), Some(token)).await;
    assert_eq!(status, 200);
    // Webhooks are verified by their signatures, as before.
    let secrets = secrets(dir.path());
    let hire = body("peopleforce/employee_create.json");
    let kr = body("peoplelogic/key_result_progress.json");
    let (status, _) = deliver(
        base,
        &secrets,
        Source::PEOPLEFORCE,
        "peopleforce",
        &hire,
        None,
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = deliver(
        base,
        &secrets,
        Source::PEOPLELOGIC,
        "peoplelogic",
        &kr,
        None,
    )
    .await;
    assert_eq!(status, 202);
    let url = format!("{base}/api/progress?token={token}");
    eventually("the key result in the read model", async || {
        get(&url, None).await.1["total"] == 1
    })
    .await;
    // The hire is not an objective or key result: not in the read model.
    let (_, page) = get(&format!("{base}/api/progress"), Some(token)).await;
    assert_eq!(page["items"][0]["title"], "Reach 500 weekly active teams");
    let (status, csv) = get(
        &format!("{base}/api/progress?format=csv&source=peoplelogic"),
        Some(token),
    )
    .await;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap().to_owned();
    assert!(csv.starts_with("source,id,kind,title,"), "{csv}");
    assert!(
        csv.contains("Reach 500 weekly active teams,5f0c1a2b"),
        "{csv}"
    );
    let (status, body) = get(&format!("{base}/api/progress?sort=worst"), Some(token)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_query");
    drop(server);

    // Beyond loopback without a token: closed, and it says how to open it.
    let dir = tempfile::tempdir().unwrap();
    let server = serve_on("0.0.0.0", dir.path(), &[]).await;
    let (status, body) = get(&format!("{}/api/progress", server.base), None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "dashboard_token_required");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--dashboard-token")
    );
}

/// The records as `GET /api/progress` gives them, without their write counts (which
/// depend on how many writes built them).
async fn states(base: &str) -> Vec<Value> {
    let mut page = progress(base, "include_deleted=true").await;
    let mut items = page["items"].take().as_array().cloned().unwrap();
    for item in &mut items {
        item.as_object_mut().unwrap().remove("version");
    }
    items
}

#[tokio::test]
async fn replay_to_progress_rebuilds_the_read_model_live_processing_built() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_on("127.0.0.1", dir.path(), &[]).await;
    let base = server.base.clone();
    let secrets = secrets(dir.path());
    // The key result's newer update before its older one, an objective, a second key
    // result, and a hire (not an objective or key result).
    let deliveries = [
        (
            Source::PEOPLELOGIC,
            "peoplelogic/key_result_progress_next.json",
        ),
        (Source::PEOPLELOGIC, "peoplelogic/key_result_progress.json"),
        (Source::PEOPLELOGIC, "peoplelogic/objective_completed.json"),
        (
            Source::PEOPLELOGIC,
            "peoplelogic/key_result_progress_plain.json",
        ),
        (Source::PEOPLEFORCE, "peopleforce/employee_create.json"),
    ];
    for (source, file) in deliveries {
        let (status, _) =
            deliver(&base, &secrets, source, source.as_str(), &body(file), None).await;
        assert_eq!(status, 202, "{file}");
    }
    eventually("the warehouse to hold all five", async || {
        common::warehouse(dir.path()).len() == 5
    })
    .await;
    eventually("the read model to hold the three", async || {
        progress(&base, "").await["total"] == 3
    })
    .await;
    let live = states(&base).await;
    let kr = live
        .iter()
        .find(|r| r["title"] == "Reach 500 weekly active teams")
        .unwrap();
    assert_eq!(kr["progress"], 80.0);
    assert_eq!(kr["history"].as_array().unwrap().len(), 2);
    drop(server);

    // Lost: the read model's file. Rebuilt from the archive.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("progress.sqlite{suffix}")));
    }
    let server = serve_on("127.0.0.1", dir.path(), &[]).await;
    assert_eq!(progress(&server.base, "").await["total"], 0);
    let replayed = std::process::Command::new(common::BIN)
        .args([
            "replay",
            "--to",
            "progress",
            "--name",
            "rebuild",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&replayed.stdout);
    assert!(
        replayed.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    // The four about key results and objectives, and the hire (for the directory).
    assert!(said.contains("sent 5 event(s) to progress"), "{said}");
    eventually("the rebuilt read model", async || {
        progress(&server.base, "").await["total"] == 3
    })
    .await;
    assert_eq!(states(&server.base).await, live);
}

#[tokio::test]
async fn the_dashboard_command_serves_a_stacks_table_and_follows_its_writes() {
    use okr_aws::progress_dynamodb::DynamoDbProgressStore;
    use okr_consumers::progress::ProgressStore;
    use okr_core::rules::Thresholds;
    use okr_webhooks_tests::{Moto, progress_table};

    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let table = progress_table(&aws_sdk_dynamodb::Client::new(&aws)).await;
    // A stack whose ProgressTableName output names it.
    let stack = common::stack_with_outputs(&aws, &[("ProgressTableName", &table)]).await;
    // What the projection Lambda would have written.
    let store = DynamoDbProgressStore::new(aws_sdk_dynamodb::Client::new(&aws), &table);
    let normalized = |file: &str| {
        okr_core::normalize(
            &okr_core::endpoints::Endpoint::of_source(Source::PEOPLELOGIC).unwrap(),
            &http::HeaderMap::new(),
            &body(file),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap()
    };
    let first = normalized("peoplelogic/key_result_progress.json");
    for outcome in store.apply(vec![first], &Thresholds::default()).await {
        assert!(outcome.unwrap());
    }

    let port = common::free_port();
    let child = std::process::Command::new(common::BIN)
        .args(["dashboard", "--stack", &stack, "--poll-ms", "200", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _running = common::Killed(child);
    let base = format!("http://127.0.0.1:{port}");
    eventually("the dashboard command to answer", async || {
        reqwest::get(format!("{base}/api/progress")).await.is_ok()
    })
    .await;
    let page = progress(&base, "").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["progress"], 60.0);

    // A write to the table reaches a listening page through the stream.
    let mut stream = reqwest::get(format!("{base}/api/progress/stream"))
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let next = normalized("peoplelogic/key_result_progress_next.json");
    for outcome in store.apply(vec![next], &Thresholds::default()).await {
        assert!(outcome.unwrap());
    }
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !seen.contains("\"progress\":80.0") {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk()).await;
        match chunk {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("no update on the stream ({other:?}): {seen}"),
        }
    }
    assert!(seen.starts_with("event: entity\n"), "{seen}");
}

#[test]
fn the_dashboard_command_refuses_an_address_beyond_loopback() {
    let output = std::process::Command::new(common::BIN)
        .args(["dashboard", "--table", "t", "--addr", "0.0.0.0:3001"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("loopback only"), "{said}");
}
