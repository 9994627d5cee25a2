//! The directory through `serve`: the seed's PeopleForce hire (John Doe reporting to
//! Ross Kate) fills it with the kept fields only; `directory list | show | unresolved |
//! link | forget` read and change it; a forgotten person stays forgotten when the
//! archive is replayed into the progress queue; a lost directory is rebuilt by a replay.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, eventually, secrets, serve_on};
use okr_core::Source;

const HIRE: &[u8] = include_bytes!("../../events/bodies/peopleforce/employee_create.json");
const KEY_RESULT: &[u8] =
    include_bytes!("../../events/bodies/peoplelogic/key_result_progress.json");

fn directory(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(BIN)
        .arg("directory")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    common::outcome(&output)
}

fn list(data_dir: &Path) -> String {
    let (ok, text) = directory(data_dir, &["list"]);
    assert!(ok, "{text}");
    text
}

#[tokio::test]
async fn the_seeds_hire_fills_the_directory_and_the_commands_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // Slack's stand-in, to read the messages' departments.
    let slack = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    let slack_url = format!("{}/slack", slack.uri());
    let server = serve_on("127.0.0.1", data, &["--slack-webhook-url", &slack_url]).await;
    let secrets = secrets(data);
    common::accepted(&server.base, &secrets, Source::PEOPLEFORCE, HIRE).await;
    common::accepted(&server.base, &secrets, Source::PEOPLELOGIC, KEY_RESULT).await;
    eventually("John Doe in the directory", async || {
        list(data).contains("John Doe")
    })
    .await;

    let table = list(data);
    let john = table.lines().find(|l| l.starts_with("John Doe")).unwrap();
    for field in [
        "john.doe@example.com",
        "IT",
        "Senior Developer",
        "Ross Kate (not in the directory)",
        "yes",
    ] {
        assert!(john.contains(field), "{field} in {john}");
    }
    // Only the kept fields reach the directory's file.
    let stored = std::fs::read(data.join("directory.sqlite")).unwrap();
    let stored = String::from_utf8_lossy(&stored);
    for private in [
        "1978-08-31",
        "johnny.d.private@example.org",
        "+380501234567",
        "T-shirt",
    ] {
        assert!(!stored.contains(private), "{private} in directory.sqlite");
    }

    // The key result's last updater is Sam Okafor, whom the directory does not know.
    eventually("the key result in the read model", async || {
        directory(data, &["unresolved"]).1.contains("Sam Okafor")
    })
    .await;
    let (_, unresolved) = directory(data, &["unresolved"]);
    assert!(
        unresolved.contains("Sam Okafor\t1 key result(s)\tno one in the directory has this name"),
        "{unresolved}"
    );
    let (ok, linked) = directory(data, &["link", "Sam Okafor", "john.doe@example.com"]);
    assert!(ok, "{linked}");
    assert_eq!(linked.trim(), r#"linked "Sam Okafor" to John Doe"#);
    // Sam's next update names the department he is linked to.
    let mut next: serde_json::Value = serde_json::from_slice(KEY_RESULT).unwrap();
    next["currentValue"] = serde_json::json!({"previous": 340, "current": 420});
    next["updatedAt"] = "2025-05-27T09:00:00Z".into();
    let next = serde_json::to_vec(&next).unwrap();
    common::accepted(&server.base, &secrets, Source::PEOPLELOGIC, &next).await;
    eventually("the message naming IT", async || {
        slack.received_requests().await.unwrap().iter().any(|r| {
            String::from_utf8_lossy(&r.body).contains(
                "Reach 500 weekly active teams updated to 80% (from 60%) by Sam Okafor (IT)",
            )
        })
    })
    .await;
    let posted: Vec<String> = slack
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    // The first, before the link, names none; no message carries an address.
    assert!(
        posted
            .iter()
            .any(|p| p.contains("updated to 60% (from 30%) by Sam Okafor\"")),
        "{posted:?}"
    );
    assert!(posted.iter().all(|p| !p.contains("@example")), "{posted:?}");
    let (_, unresolved) = directory(data, &["unresolved"]);
    assert_eq!(
        unresolved.trim(),
        "every key result's owner is in the directory"
    );
    let (ok, show) = directory(data, &["show", "john.doe@example.com"]);
    assert!(ok, "{show}");
    assert!(
        show.contains("John Doe (person#peopleforce#130333)"),
        "{show}"
    );
    assert!(
        show.contains("  key results  1\n    Reach 500 weekly active teams (80%"),
        "{show}"
    );
    // The progress API names the owner's department and, once Ross is in, his team lead.
    let api = |query: &'static str| {
        let base = server.base.clone();
        async move {
            common::client()
                .get(format!("{base}/api/progress?{query}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let page: serde_json::Value =
        serde_json::from_str(&api("kind=key_result&department=it").await).unwrap();
    assert_eq!(page["total"], 1, "{page}");
    let kr = &page["items"][0];
    assert_eq!(kr["owner"], "John Doe", "{kr}");
    assert_eq!(kr["department"], "IT", "{kr}");
    // Ross has no record yet: John's names him.
    assert_eq!(kr["team_lead"], "Ross Kate", "{kr}");
    let none: serde_json::Value =
        serde_json::from_str(&api("kind=key_result&department=Sales").await).unwrap();
    assert_eq!(none["total"], 0, "{none}");
    let csv = api("kind=key_result&format=csv").await;
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",owner,team_lead,department"),
        "{csv}"
    );
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .ends_with(",John Doe,Ross Kate,IT"),
        "{csv}"
    );

    let (ok, missing) = directory(data, &["show", "nobody@example.com"]);
    assert!(
        !ok && missing.contains("no person in the directory is \"nobody@example.com\""),
        "{missing}"
    );
    let (ok, bad) = directory(data, &["link", "Sam Okafor", "nobody@example.com"]);
    assert!(!ok && bad.contains("no person in the directory"), "{bad}");

    // Erasure: gone, and a replay of the archive does not bring John back.
    let (ok, forgot) = directory(data, &["forget", "John.Doe@example.com"]);
    assert!(ok, "{forgot}");
    assert!(forgot.starts_with("forgot 1 person(s)"), "{forgot}");
    assert!(!list(data).contains("John Doe"));
    let replayed = Command::new(BIN)
        .args([
            "replay",
            "--to",
            "progress",
            "--name",
            "after-erasure",
            "--force",
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let said = String::from_utf8_lossy(&replayed.stdout);
    assert!(said.contains("sent 3 event(s) to progress"), "{said}");
    // Ross Kate's own hire, sent after the replay: the progress queue is one queue,
    // taken in order, so once Ross is in, the replayed hire was handled before him.
    let mut ross: serde_json::Value = serde_json::from_slice(HIRE).unwrap();
    ross["data"]["id"] = 5844.into();
    ross["data"]["attributes"]["first_name"] = "Ross".into();
    ross["data"]["attributes"]["last_name"] = "Kate".into();
    ross["data"]["attributes"]["email"] = "ross.kate@example.com".into();
    ross["data"]["reporting_to"] = serde_json::Value::Null;
    let ross = serde_json::to_vec(&ross).unwrap();
    common::accepted(&server.base, &secrets, Source::PEOPLEFORCE, &ross).await;
    eventually("Ross Kate in the directory", async || {
        list(data).contains("Ross Kate")
    })
    .await;
    assert!(!list(data).contains("John Doe"), "{}", list(data));
    let page: serde_json::Value = serde_json::from_str(&api("kind=key_result").await).unwrap();
    assert_eq!(
        page["items"][0]["department"],
        serde_json::Value::Null,
        "{page}"
    );
    let stored = std::fs::read(data.join("directory.sqlite")).unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("john.doe@example.com"));
    drop(server);

    // A lost directory is rebuilt from the archive (without John: his erasure is lost
    // with it, so forget him again after a rebuild; the docs say so).
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("directory.sqlite{suffix}")));
    }
    let server = serve_on("127.0.0.1", data, &[]).await;
    let replayed = Command::new(BIN)
        .args([
            "replay",
            "--to",
            "progress",
            "--name",
            "rebuild",
            "--force",
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    assert!(replayed.status.success());
    eventually("the rebuilt directory", async || {
        list(data).contains("John Doe")
    })
    .await;
    drop(server);
}

/// The dashboard groups key results by their owner's department and team lead, and
/// filters by them, in headless Chromium; the screenshot is docs/dashboard-teams.png.
#[tokio::test]
async fn the_dashboard_groups_key_results_by_department_and_team_lead() {
    use common::browser::chromium;
    use serde_json::{Value, json};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = serve_on("127.0.0.1", data, &[]).await;
    let secrets = secrets(data);
    let seed: Value = serde_json::from_slice(HIRE).unwrap();
    let people = [
        (1, "Cleo", "Park", "Engineering", None),
        (2, "Ross", "Kate", "Engineering", Some((1, "Cleo Park"))),
        (3, "John", "Doe", "Engineering", Some((2, "Ross Kate"))),
        (4, "Mia", "Chen", "Engineering", Some((2, "Ross Kate"))),
        (5, "Ana", "Lima", "Sales", None),
        (6, "Sam", "Okafor", "Sales", Some((5, "Ana Lima"))),
    ];
    for (id, first, last, department, manager) in people {
        let mut body = seed.clone();
        body["data"]["id"] = id.into();
        let attributes = &mut body["data"]["attributes"];
        attributes["first_name"] = first.into();
        attributes["last_name"] = last.into();
        attributes["email"] = format!(
            "{}.{}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        )
        .into();
        body["data"]["reporting_to"] = match manager {
            Some((id, name)) => json!({"id": id, "full_name": name}),
            None => Value::Null,
        };
        body["data"]["department"]["name"] = department.into();
        let body = serde_json::to_vec(&body).unwrap();
        common::accepted(&server.base, &secrets, Source::PEOPLEFORCE, &body).await;
    }
    let key_results = [
        (
            "kr-1",
            "p95 API latency under 200 ms",
            70,
            55,
            "John Doe",
            "ON_TRACK",
        ),
        (
            "kr-2",
            "Ship the partner API",
            20,
            20,
            "Mia Chen",
            "ON_TRACK",
        ),
        (
            "kr-3",
            "Cut onboarding time to 10 minutes",
            45,
            60,
            "Ross Kate",
            "AT_RISK",
        ),
        (
            "kr-4",
            "Close 40 new enterprise deals",
            55,
            40,
            "Sam Okafor",
            "ON_TRACK",
        ),
        (
            "kr-5",
            "Publish 12 customer stories",
            90,
            75,
            "Priya Natarajan",
            "ON_TRACK",
        ),
    ];
    for (id, title, current, previous, by, status) in key_results {
        let body = json!({
            "eventType": "objective.patch", "id": id, "parentId": "o-1", "title": title,
            "startingValue": 0, "targetValue": 100,
            "currentValue": {"previous": previous, "current": current}, "status": status,
            "updatedBy": {"name": by}, "updatedAt": "2026-11-20T09:00:00Z",
            "startDate": "2026-10-01", "dueDate": "2026-12-31",
        });
        let body = serde_json::to_vec(&body).unwrap();
        common::accepted(&server.base, &secrets, Source::PEOPLELOGIC, &body).await;
    }
    let base = server.base.clone();
    eventually("five key results with their departments", async || {
        let csv = common::client()
            .get(format!("{base}/api/progress?kind=key_result&format=csv"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        csv.lines().count() == 6 && csv.contains("Sam Okafor,Ana Lima,Sales")
    })
    .await;

    let browser = chromium(1100, 820).await;
    let client = &browser.client;
    client
        .goto(&format!("{base}/dashboard?group=department"))
        .await
        .unwrap();
    let groups = async || {
        let found = client
            .execute(
                "return [...document.querySelectorAll('section.group')].map(s => [s.querySelector('.title').textContent, s.querySelectorAll('.row[data-key]').length]);",
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value::<Vec<(String, usize)>>(found).unwrap()
    };
    eventually("the departments on the page", async || {
        groups().await.len() == 3
    })
    .await;
    assert_eq!(
        groups().await,
        [
            ("Engineering".to_owned(), 3),
            ("Sales".to_owned(), 1),
            ("No department known".to_owned(), 1)
        ]
    );
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-teams.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot: {}", shot.display());

    // By team lead, then only Ross Kate's team.
    client
        .execute(
            "const s = document.getElementById('sort'); s.value = 'lead'; s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await
        .unwrap();
    let leads: Vec<String> = groups().await.into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        leads,
        ["Ana Lima", "Cleo Park", "Ross Kate", "No team lead known"]
    );
    client
        .execute(
            "const s = document.getElementById('lead'); s.value = 'Ross Kate'; s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(groups().await, [("Ross Kate".to_owned(), 2)]);
}

/// `directory ARGS --stack STACK` against moto: (succeeded, stdout and stderr).
fn on_stack(moto: &okr_webhooks_tests::Moto, stack: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(BIN)
        .arg("directory")
        .args(args)
        .args(["--stack", stack])
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    common::outcome(&output)
}

#[tokio::test]
async fn the_command_reads_and_erases_in_a_deployed_stacks_tables() {
    use okr_aws::directory_dynamodb::DynamoDbDirectory;
    use okr_aws::progress_dynamodb::DynamoDbProgressStore;
    use okr_consumers::progress::ProgressStore;
    use okr_webhooks_tests::{Moto, directory_table, progress_table};

    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let (people_table, progress_table) = (
        directory_table(&dynamodb).await,
        progress_table(&dynamodb).await,
    );
    let stack = common::stack_with_outputs(
        &aws,
        &[
            ("DirectoryTableName", &people_table),
            ("ProgressTableName", &progress_table),
        ],
    )
    .await;
    // What the projection function would have written: the seed's hire, and the seed's
    // key result, updated by Sam Okafor.
    let normalized = |source: Source, body: &[u8]| {
        okr_core::normalize(
            &okr_core::endpoints::Endpoint::of_source(source).unwrap(),
            &http::HeaderMap::new(),
            body,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap()
    };
    let people = DynamoDbDirectory::new(dynamodb.clone(), &people_table);
    let hire = normalized(Source::PEOPLEFORCE, HIRE);
    okr_consumers::directory::apply(&people, std::slice::from_ref(&hire))
        .await
        .unwrap();
    let progress = DynamoDbProgressStore::new(dynamodb.clone(), &progress_table);
    let update = normalized(Source::PEOPLELOGIC, KEY_RESULT);
    for applied in progress
        .apply(vec![update], &okr_core::rules::Thresholds::default())
        .await
    {
        applied.unwrap();
    }

    let (ok, listed) = on_stack(&moto, &stack, &["list"]);
    assert!(ok, "{listed}");
    assert!(listed.contains("John Doe"), "{listed}");
    assert!(
        listed.contains("Ross Kate (not in the directory)"),
        "{listed}"
    );
    let (ok, unresolved) = on_stack(&moto, &stack, &["unresolved"]);
    assert!(ok, "{unresolved}");
    assert!(
        unresolved.starts_with("Sam Okafor\t1 key result(s)"),
        "{unresolved}"
    );
    let (ok, linked) = on_stack(
        &moto,
        &stack,
        &["link", "Sam Okafor", "john.doe@example.com"],
    );
    assert!(ok, "{linked}");
    let (ok, shown) = on_stack(&moto, &stack, &["show", "john.doe@example.com"]);
    assert!(ok, "{shown}");
    assert!(shown.contains("key results  1"), "{shown}");

    // Erasure: gone from the table, and the hire arriving again is skipped.
    let (ok, forgot) = on_stack(&moto, &stack, &["forget", "john.doe@example.com"]);
    assert!(ok, "{forgot}");
    assert!(forgot.starts_with("forgot 1 person(s)"), "{forgot}");
    okr_consumers::directory::apply(&people, &[hire])
        .await
        .unwrap();
    let (ok, listed) = on_stack(&moto, &stack, &["list"]);
    assert!(ok, "{listed}");
    assert!(listed.starts_with("the directory is empty"), "{listed}");
    let items = dynamodb
        .scan()
        .table_name(&people_table)
        .send()
        .await
        .unwrap();
    let raw = format!("{:?}", items.items());
    assert!(!raw.contains("john.doe"), "{raw}");
    assert!(!raw.contains("John Doe"), "{raw}");

    // A stack without the outputs is named, not a panic.
    let (ok, said) = on_stack(&moto, "no-such-stack", &["list"]);
    assert!(!ok);
    assert!(
        said.contains("cannot describe the stack no-such-stack"),
        "{said}"
    );
}
