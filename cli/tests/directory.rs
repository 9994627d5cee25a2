//! The directory through `serve`: the seed's PeopleForce hire (John Doe reporting to
//! Ross Kate) fills it with the kept fields only; `directory list | show | unresolved |
//! link | forget` read and change it; a forgotten person stays forgotten when the
//! archive is replayed into the progress queue; a lost directory is rebuilt by a replay.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, deliver, eventually, secrets, serve_on};
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
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
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
    let server = serve_on("127.0.0.1", data, &[]).await;
    let secrets = secrets(data);
    let (status, _) = deliver(
        &server.base,
        &secrets,
        Source::PEOPLEFORCE,
        "peopleforce",
        HIRE,
        None,
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = deliver(
        &server.base,
        &secrets,
        Source::PEOPLELOGIC,
        "peoplelogic",
        KEY_RESULT,
        None,
    )
    .await;
    assert_eq!(status, 202);
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
        show.contains("  key results  1\n    Reach 500 weekly active teams (60%"),
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
    assert_eq!(kr["team_lead"], serde_json::Value::Null, "{kr}");
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
        csv.lines().nth(1).unwrap().ends_with(",John Doe,,IT"),
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
    assert!(said.contains("sent 2 event(s) to progress"), "{said}");
    // Ross Kate's own hire, sent after the replay: the progress queue is one queue,
    // taken in order, so once Ross is in, the replayed hire was handled before him.
    let mut ross: serde_json::Value = serde_json::from_slice(HIRE).unwrap();
    ross["data"]["id"] = 5844.into();
    ross["data"]["attributes"]["first_name"] = "Ross".into();
    ross["data"]["attributes"]["last_name"] = "Kate".into();
    ross["data"]["attributes"]["email"] = "ross.kate@example.com".into();
    ross["data"]["reporting_to"] = serde_json::Value::Null;
    let ross = serde_json::to_vec(&ross).unwrap();
    let (status, _) = deliver(
        &server.base,
        &secrets,
        Source::PEOPLEFORCE,
        "peopleforce",
        &ross,
        None,
    )
    .await;
    assert_eq!(status, 202);
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
