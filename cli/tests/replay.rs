//! `okr-webhooks replay` as a user runs it: over an archive with copies, a corrupt line
//! and three days; gap-filling and --force through a running `serve`; an interrupted
//! replay resumed; a missing archive.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use okr_core::signing::SigningSecrets;
use okr_core::{Event, Source, normalize, sign};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::datetime;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::BIN;

fn body(path: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events/bodies")
            .join(path),
    )
    .unwrap()
}

/// The sample `path` of `source`, normalized as received at `at`.
fn sample_event(source: Source, path: &str, at: OffsetDateTime) -> Event {
    normalize(
        &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
        &http::HeaderMap::new(),
        &body(path),
        at,
    )
    .unwrap()
}

/// The objective-completed sample as event `id`, about `entity`, received at `at`.
fn event(id: &str, entity: &str, at: OffsetDateTime) -> Event {
    let mut event = sample_event(
        Source::PEOPLELOGIC,
        "peoplelogic/objective_completed.json",
        at,
    );
    event.id = id.to_owned();
    event.entity.id = Some(entity.to_owned());
    event
}

/// Write an archive object of `lines` under `root`'s partition of `day`.
fn object(root: &Path, day: &str, name: &str, lines: &[String]) {
    let dir = root.join(format!("events/v1/date={day}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    for line in lines {
        gz.write_all(line.as_bytes()).unwrap();
        gz.write_all(b"\n").unwrap();
    }
    std::fs::write(dir.join(format!("{name}.ndjson.gz")), gz.finish().unwrap()).unwrap();
}

fn line(event: &Event) -> String {
    serde_json::to_string(event).unwrap()
}

fn replay(args: &[&str]) -> Output {
    Command::new(BIN).arg("replay").args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The event ids on `queue` in the data directory's queues, with their count.
fn queued(data_dir: &Path, queue: &str) -> BTreeMap<String, usize> {
    let db = rusqlite::Connection::open(data_dir.join("queues.sqlite")).unwrap();
    let mut statement = db
        .prepare("SELECT event_id FROM messages WHERE queue = ?1")
        .unwrap();
    let mut ids = BTreeMap::new();
    for id in statement
        .query_map([queue], |row| row.get::<_, String>(0))
        .unwrap()
    {
        *ids.entry(id.unwrap()).or_insert(0) += 1;
    }
    ids
}

/// Three days: e1 on the 18th; e2 (twice, in two objects), a corrupt line and e3 on the
/// 19th; e4 (PeopleForce's hire) on the 19th and again on the 20th, where e5 is too.
fn three_days(root: &Path) {
    let day = |d: u8, h: u8| {
        datetime!(2026-11-18 00:00 UTC)
            + time::Duration::days(i64::from(d) - 18)
            + time::Duration::hours(i64::from(h))
    };
    let mut hire = sample_event(
        Source::PEOPLEFORCE,
        "peopleforce/employee_create.json",
        day(19, 23),
    );
    hire.id = "e4".into();
    object(
        root,
        "2026-11-18",
        "part-a",
        &[line(&event("e1", "o1", day(18, 9)))],
    );
    object(
        root,
        "2026-11-19",
        "part-a",
        &[line(&event("e2", "o2", day(19, 8))), line(&hire)],
    );
    object(
        root,
        "2026-11-19",
        "part-b",
        &[
            line(&event("e2", "o2", day(19, 8))),
            "{\"id\": \"half a line".to_owned(),
            line(&event("e3", "o3", day(19, 10))),
        ],
    );
    hire.received_at = day(20, 0) + time::Duration::seconds(3);
    object(
        root,
        "2026-11-20",
        "part-a",
        &[line(&hire), line(&event("e5", "o5", day(20, 7)))],
    );
}

#[test]
fn the_window_and_filters_take_exactly_their_events_once_and_a_corrupt_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    three_days(&archive);
    let from = archive.to_str().unwrap();
    let data = dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    let window = [
        "--from",
        from,
        "--data-dir",
        data_dir,
        "--since",
        "2026-11-19",
        "--until",
        "2026-11-20",
    ];

    // The estimate first: by day, source and type, the copies and the bad line.
    let estimate = stdout(&replay(
        &[&window[..], &["--to", "warehouse", "--dry-run"]].concat(),
    ));
    assert!(
        estimate.contains("would send 4 event(s) to warehouse"),
        "{estimate}"
    );
    assert!(
        estimate.contains("4 event(s) selected, 2 copies"),
        "{estimate}"
    );
    assert!(
        estimate.contains("2026-11-19  peoplelogic  objective.completed               2"),
        "{estimate}"
    );
    assert!(
        estimate.contains("2026-11-19  peopleforce  employee.created                  1"),
        "{estimate}"
    );
    assert!(
        estimate.contains("  events/v1/date=2026-11-19/part-b.ndjson.gz line 2"),
        "{estimate}"
    );
    assert!(
        !data.join("queues.sqlite").exists(),
        "a dry run queues nothing"
    );

    let sent = stdout(&replay(
        &[&window[..], &["--to", "warehouse", "--name", "window"]].concat(),
    ));
    assert!(
        sent.contains("replay window: sent 4 event(s) to warehouse"),
        "{sent}"
    );
    let ids: Vec<(String, usize)> = queued(&data, "warehouse").into_iter().collect();
    let once = |ids: &[&str]| -> Vec<(String, usize)> {
        ids.iter().map(|id| (id.to_string(), 1)).collect()
    };
    assert_eq!(ids, once(&["e2", "e3", "e4", "e5"]));
    assert!(queued(&data, "slack").is_empty());

    // Filters, each on its own replay (so each queues anew).
    let ids_file = dir.path().join("ids.txt");
    std::fs::write(&ids_file, "# the ones to send\ne1\n\ne5\n").unwrap();
    let ids_arg = format!("@{}", ids_file.display());
    let cases: [(&str, Vec<&str>, Vec<&str>); 4] = [
        ("by-type", vec!["--type", "employee.*"], vec!["e4"]),
        (
            "by-source",
            vec!["--source", "peoplelogic", "--until", "2026-11-19"],
            vec!["e1", "e2", "e3"],
        ),
        (
            "by-id",
            vec!["--id", &ids_arg, "--id", "e3"],
            vec!["e1", "e3", "e5"],
        ),
        ("by-entity", vec!["--entity", "o2"], vec!["e2"]),
    ];
    for (name, filter, expected) in cases {
        let data = dir.path().join(name);
        let data_dir = data.to_str().unwrap();
        let base = ["--from", from, "--data-dir", data_dir, "--to", "warehouse"];
        stdout(&replay(&[&base[..], &filter].concat()));
        let ids: Vec<(String, usize)> = queued(&data, "warehouse").into_iter().collect();
        assert_eq!(ids, once(&expected), "{name}");
    }
}

#[test]
fn a_bad_byte_costs_only_its_line_and_a_broken_object_keeps_what_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let at = datetime!(2026-11-21 09:00 UTC);
    let partition = root.join("events/v1/date=2026-11-21");
    std::fs::create_dir_all(&partition).unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    for line in [
        line(&event("e7", "o", at)).into_bytes(),
        b"\xff\xfe not text".to_vec(),
        line(&event("e8", "o", at)).into_bytes(),
    ] {
        gz.write_all(&line).unwrap();
        gz.write_all(b"\n").unwrap();
    }
    std::fs::write(partition.join("part-a.ndjson.gz"), gz.finish().unwrap()).unwrap();
    // A second object cut short: its first line survives.
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(line(&event("e9", "o", at)).as_bytes())
        .unwrap();
    gz.write_all(b"\n").unwrap();
    gz.flush().unwrap();
    let mut cut = gz.finish().unwrap();
    cut.truncate(cut.len() - 6);
    std::fs::write(partition.join("part-b.ndjson.gz"), cut).unwrap();

    let data = dir.path().join("data");
    let out = stdout(&replay(&[
        "--from",
        root.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--to",
        "warehouse",
    ]));
    assert!(out.contains("2 line(s) are not events"), "{out}");
    assert!(
        out.contains("  events/v1/date=2026-11-21/part-a.ndjson.gz line 2"),
        "{out}"
    );
    assert!(
        out.contains("part-b.ndjson.gz: its gzip stream breaks"),
        "{out}"
    );
    let ids: Vec<String> = queued(&data, "warehouse").into_keys().collect();
    assert_eq!(ids, ["e7", "e8", "e9"]);
}

#[test]
fn a_missing_archive_is_a_one_line_error_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let output = replay(&[
        "--from",
        missing.to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--to",
        "slack",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8(output.stderr).unwrap();
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.starts_with("error: no archive at "), "{error}");
}

#[test]
fn an_interrupted_replay_resumes_and_sends_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let at = datetime!(2026-11-19 09:00 UTC);
    for part in 0..6 {
        let lines: Vec<String> = (0..50)
            .map(|n| line(&event(&format!("e{part}-{n:02}"), "o", at)))
            .collect();
        object(&archive, "2026-11-19", &format!("part-{part}"), &lines);
    }
    let data = dir.path().join("data");
    let args = [
        "replay",
        "--from",
        archive.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--to",
        "warehouse",
        "--name",
        "slow",
        "--rate",
        "100/s",
    ];
    let mut first = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    first.kill().unwrap();
    first.wait().unwrap();
    let checkpoint: Value =
        serde_json::from_slice(&std::fs::read(data.join("replays/slow.json")).unwrap()).unwrap();
    let sent_first = checkpoint["sent"].as_u64().unwrap();
    assert!(
        (50..300).contains(&sent_first) && checkpoint["finished"] == false,
        "{checkpoint}"
    );
    // Starting it again under its name is refused: it must be resumed.
    let again = Command::new(BIN).args(args).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume slow"));

    let resumed = stdout(
        &Command::new(BIN)
            .args([
                "replay",
                "--resume",
                "slow",
                "--data-dir",
                data.to_str().unwrap(),
            ])
            .output()
            .unwrap(),
    );
    let sent_then: u64 = resumed
        .split("sent ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{resumed}"));
    assert_eq!(sent_first + sent_then, 300, "{resumed}");
    let ids = queued(&data, "warehouse");
    assert_eq!(ids.len(), 300);
    assert!(ids.values().all(|n| *n == 1), "each once");
}

/// `serve` on `data_dir`, posting to `slack`; its base URL once it answers.
async fn serve(data_dir: &Path, slack: &MockServer) -> (common::Serve, String) {
    let url = format!("{}/slack", slack.uri());
    let server = common::serve_on("127.0.0.1", data_dir, &["--slack-webhook-url", &url]).await;
    let base = server.base.clone();
    (server, base)
}

async fn deliver(base: &str, data_dir: &Path, source: Source, path: &str) {
    let secrets =
        SigningSecrets::parse(&std::fs::read_to_string(data_dir.join("secrets.json")).unwrap())
            .unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let body = body(path);
    let mut request = reqwest::Client::new()
        .post(format!("{base}/webhooks/{}", source.as_str()))
        .body(body.clone());
    for (name, value) in sign(
        okr_core::providers::provider(source).unwrap(),
        &secrets.for_endpoint(source)[0],
        &body,
        "msg_1",
        now,
    )
    .unwrap()
    {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 202);
}

/// How many of Slack's posts carry each text.
async fn posts(slack: &MockServer) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for request in slack.received_requests().await.unwrap_or_default() {
        let post: Value = serde_json::from_slice(&request.body).unwrap();
        *seen
            .entry(post["text"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    seen
}

async fn settle(slack: &MockServer, posts_expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while posts(slack).await.values().sum::<usize>() < posts_expected {
        assert!(Instant::now() < deadline, "{:?}", posts(slack).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing more comes.
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn through_a_running_serve_a_replay_fills_the_gaps_and_force_posts_all_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    let (_serve, base) = serve(dir.path(), &slack).await;
    deliver(
        &base,
        dir.path(),
        Source::PEOPLELOGIC,
        "peoplelogic/objective_completed.json",
    )
    .await;
    deliver(
        &base,
        dir.path(),
        Source::PEOPLEFORCE,
        "peopleforce/employee_create.json",
    )
    .await;
    settle(&slack, 2).await;
    // Two events the warehouse has and Slack never got (their posts were lost).
    let now = OffsetDateTime::now_utc();
    let missing = [
        sample_event(
            Source::PEOPLELOGIC,
            "peoplelogic/key_result_progress.json",
            now,
        ),
        sample_event(Source::PERSCOM, "perscom/awardrecord_created.json", now),
    ];
    let today = now.date().to_string();
    object(
        &dir.path().join("warehouse"),
        &today,
        "part-lost",
        &missing.map(|e| line(&e)),
    );

    let data_dir = dir.path().to_str().unwrap();
    let estimate = stdout(&replay(&[
        "--data-dir",
        data_dir,
        "--to",
        "slack",
        "--dry-run",
    ]));
    assert!(
        estimate.contains("would send 4 event(s) to slack"),
        "{estimate}"
    );
    assert!(
        estimate.contains("already posted to Slack: 2 "),
        "{estimate}"
    );

    stdout(&replay(&[
        "--data-dir",
        data_dir,
        "--to",
        "slack",
        "--name",
        "gaps",
    ]));
    settle(&slack, 4).await;
    let texts = posts(&slack).await;
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert!(texts.values().all(|n| *n == 1), "the gaps only: {texts:?}");

    // Forced: everything once more, and a second time under the same name nothing.
    let force = [
        "--data-dir",
        data_dir,
        "--to",
        "slack",
        "--force",
        "--name",
        "again",
    ];
    stdout(&replay(&force));
    settle(&slack, 8).await;
    let texts = posts(&slack).await;
    assert!(texts.values().all(|n| *n == 2), "all once more: {texts:?}");
    stdout(&replay(&force));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        posts(&slack).await,
        texts,
        "the same name again posts nothing"
    );

    // serve's queues are whole and hold no dead letter.
    let db = rusqlite::Connection::open(dir.path().join("queues.sqlite")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let dead: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE dead_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dead, 0);
}
