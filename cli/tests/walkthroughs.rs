//! The docs' walk-throughs, run as written: every ```sh block of the README and docs/ is
//! marked, just above it, with `<!-- walkthrough: NAME -->` (run here, line by line, as
//! a user would type it), `<!-- aws-only -->` (needs an AWS account) or
//! `<!-- not-run: REASON -->`. An unmarked block fails the test, so a new block is
//! either run or says why not.
//!
//! Each line runs with `bash` from the directory the docs say, with the `okr-webhooks`
//! cargo built first on PATH. Installs (`cargo install`, `pip install`) are the test
//! command's job (tests/run.sh) and are not repeated here. Long-running commands
//! (servers, stand-ins, `cargo lambda watch`) start in the background and are waited for
//! on the port the docs give; everything started is stopped at the end, also when the
//! test fails. Then what each block's comments promise is checked: the answers printed,
//! what the stand-ins received, what landed in the warehouse.
//!
//! The ports are the docs' (3000, 4318, 5000, 5001, 9000): the walk-throughs run one after
//! another in this one test.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::BIN;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A ```sh block and the marker above it, or a ```json block a walk-through writes to
/// a file (`<!-- walkthrough: NAME/STEP writes PATH -->`).
struct Block {
    file: String,
    marker: Marker,
    lines: Vec<String>,
    /// Where a ```json block's text goes.
    writes: Option<String>,
}

#[derive(Debug, PartialEq)]
enum Marker {
    /// `walkthrough: NAME/STEP`: the blocks of one walk-through run in STEP order.
    Walkthrough(String, u32),
    AwsOnly,
    NotRun,
}

/// Every ```sh block of the README and docs/, with its marker; panics naming any
/// unmarked one.
fn blocks() -> Vec<Block> {
    let mut files = vec![PathBuf::from(REPO).join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(REPO).join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut blocks = Vec::new();
    let mut unmarked = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let mut at = 0;
        while at < lines.len() {
            // Fences may be indented (a block inside a list item).
            let fence = lines[at].trim();
            if fence != "```sh" && fence != "```json" {
                at += 1;
                continue;
            }
            let above = lines[..at]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim())
                .unwrap_or_default();
            let walkthrough = above
                .strip_prefix("<!-- walkthrough: ")
                .and_then(|r| r.strip_suffix(" -->"))
                .and_then(|r| r.split_once('/'));
            let (walkthrough, writes) = match walkthrough {
                Some((name, rest)) => match rest.split_once(" writes ") {
                    Some((step, path)) => (Some((name, step)), Some(path.to_owned())),
                    None => (Some((name, rest)), None),
                },
                None => (None, None),
            };
            let marker = if let Some((name, step)) = walkthrough {
                Some(Marker::Walkthrough(
                    name.to_owned(),
                    step.parse().expect("walkthrough: NAME/STEP"),
                ))
            } else if above == "<!-- aws-only -->" {
                Some(Marker::AwsOnly)
            } else if above.starts_with("<!-- not-run: ") && above.ends_with(" -->") {
                Some(Marker::NotRun)
            } else {
                None
            };
            let end = at + lines[at..].iter().position(|l| l.trim() == "```").unwrap();
            if fence == "```json" {
                // Data, not commands: run only when a walk-through writes it.
                if let (Some(marker), Some(path)) = (marker, writes) {
                    blocks.push(Block {
                        file: name.clone(),
                        marker,
                        lines: lines[at + 1..end].iter().map(|l| l.to_string()).collect(),
                        writes: Some(path),
                    });
                }
                at = end + 1;
                continue;
            }
            // One command per line, a line ending in `\` continued on the next.
            let mut body: Vec<String> = Vec::new();
            let mut continued = false;
            for line in &lines[at + 1..end] {
                match body.last_mut() {
                    Some(last) if continued => {
                        last.pop();
                        last.push(' ');
                        last.push_str(line.trim());
                    }
                    _ => body.push(line.trim().to_owned()),
                }
                continued = line.trim_end().ends_with('\\');
            }
            match marker {
                Some(marker) => blocks.push(Block {
                    file: name.clone(),
                    marker,
                    lines: body,
                    writes: None,
                }),
                None => unmarked.push(format!("{name}:{}", at + 1)),
            }
            at = end + 1;
        }
    }
    assert!(
        unmarked.is_empty(),
        "```sh blocks without a walkthrough, aws-only or not-run marker: {unmarked:?}"
    );
    blocks
}

/// What a command printed (stdout and stderr) and how it ended.
#[derive(Debug)]
struct Step {
    command: String,
    output: String,
    success: bool,
}

/// Processes started in the background, each with its log, stopped (with everything
/// they started) when dropped.
struct Background {
    started: Vec<(String, Child, PathBuf)>,
    logs: tempfile::TempDir,
}

impl Drop for Background {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.started {
            okr_webhooks_tests::kill_tree(child);
        }
    }
}

impl Background {
    fn new() -> Background {
        Background {
            started: Vec::new(),
            logs: tempfile::tempdir().unwrap(),
        }
    }

    /// What the background command starting with `command` has printed so far.
    fn log(&self, command: &str) -> String {
        let (_, _, log) = self
            .started
            .iter()
            .find(|(c, _, _)| c.starts_with(command))
            .unwrap_or_else(|| panic!("{command} was not started"));
        std::fs::read_to_string(log).unwrap_or_default()
    }
}

/// `line` without its trailing `# comment` (the docs' lines have no `#` otherwise).
fn command_of(line: &str) -> &str {
    match line.find(" #") {
        Some(at) => line[..at].trim(),
        None => line.trim(),
    }
}

/// The port a long-running command of the docs listens on, if the line is one (after
/// any `NAME=value` it sets first).
fn long_running(line: &str) -> Option<u16> {
    let mut command = command_of(line).trim_end_matches('&').trim();
    while let Some((first, rest)) = command.split_once(' ')
        && first.contains('=')
    {
        command = rest.trim_start();
    }
    if command.contains("tests/moto_server.py") {
        Some(5000)
    } else if command.contains("tests/http_standin.py") {
        Some(5001)
    } else if command.contains("tests/otlp_collector.py") {
        Some(4318)
    } else if command.contains("tests/subscription_receiver.py") {
        Some(5002)
    } else if command.contains("cargo lambda watch") {
        Some(9000)
    } else if command.starts_with("okr-webhooks serve") {
        Some(3000)
    } else if command.starts_with("python3 -m aiosmtpd") {
        Some(2525)
    } else {
        None
    }
}

/// A line the test command (tests/run.sh) already did.
fn is_install(line: &str) -> bool {
    ["cargo install ", "pip install ", "python3 -m pip install "]
        .iter()
        .any(|p| line.starts_with(p))
}

/// The shell the lines run in: the docs' directory, and `okr-webhooks` on PATH.
fn shell(script: &str, dir: &Path) -> Command {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .args(["-o", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SAM_CLI_TELEMETRY", "0")
        .env("TZ", "UTC")
        // What the servers print reaches their logs as it would a terminal.
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    command
}

/// Run the blocks' lines in `dir`, as typed (`pause` after each, as a person takes
/// between commands): the background ones started and waited for, the files written.
fn run(blocks: &[&Block], dir: &Path, background: &mut Background, pause: Duration) -> Vec<Step> {
    let mut steps = Vec::new();
    for block in blocks {
        if let Some(path) = &block.writes {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, block.lines.join("\n")).unwrap();
            continue;
        }
        for line in &block.lines {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || is_install(line) {
                continue;
            }
            if let Some(port) = long_running(line) {
                let command = command_of(line).trim_end_matches('&').trim().to_owned();
                assert!(
                    std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
                    "{}: port {port}, which `{command}` listens on, is taken by another process",
                    block.file
                );
                let log = background
                    .logs
                    .path()
                    .join(format!("{}.log", background.started.len()));
                let out = File::create(&log).unwrap();
                let child = shell(&command, dir)
                    .stdout(out.try_clone().unwrap())
                    .stderr(out)
                    .spawn()
                    .unwrap();
                background
                    .started
                    .push((command.clone(), child, log.clone()));
                let deadline = Instant::now() + Duration::from_secs(120);
                while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                    let (_, child, _) = background.started.last_mut().unwrap();
                    let exited = child.try_wait().unwrap();
                    assert!(
                        exited.is_none() && Instant::now() < deadline,
                        "{}: `{command}` did not listen on {port} ({exited:?}): {}",
                        block.file,
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            assert!(
                !command_of(line).ends_with('&'),
                "{}: `{line}` runs in the background, but the test does not know its port",
                block.file
            );
            let output = shell(line, dir).output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            eprintln!("$ {line}\n{text}");
            std::thread::sleep(pause);
            steps.push(Step {
                command: line.to_owned(),
                output: text,
                success: output.status.success(),
            });
        }
    }
    steps
}

/// The outputs of the steps whose command contains `needle`, in order, each asserted
/// to have succeeded.
fn outputs<'a>(steps: &'a [Step], needle: &str) -> Vec<&'a str> {
    let found: Vec<&Step> = steps
        .iter()
        .filter(|s| s.command.contains(needle))
        .collect();
    assert!(!found.is_empty(), "no step runs {needle}");
    for step in &found {
        assert!(step.success, "`{}` failed:\n{}", step.command, step.output);
    }
    found.iter().map(|s| s.output.as_str()).collect()
}

fn walkthrough<'a>(blocks: &'a [Block], name: &str) -> Vec<&'a Block> {
    let mut found: Vec<(u32, &Block)> = blocks
        .iter()
        .filter_map(|b| match &b.marker {
            Marker::Walkthrough(n, step) if n == name => Some((*step, b)),
            _ => None,
        })
        .collect();
    assert!(
        !found.is_empty(),
        "no block is marked walkthrough: {name}/N"
    );
    found.sort_by_key(|(step, _)| *step);
    found.into_iter().map(|(_, b)| b).collect()
}

/// Wait up to 30 s for `check` to hold on the background command's output.
fn wait_for(background: &Background, command: &str, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = background.log(command);
        if check(&log) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}; {command} printed:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A directory to run the local walk-throughs from, as "from this directory" (the
/// repository) says, but with a data directory of its own: the paths the docs use
/// (`events/`, `tests/`) link to the repository's.
fn checkout_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["events", "tests"] {
        std::os::unix::fs::symlink(Path::new(REPO).join(name), dir.path().join(name)).unwrap();
    }
    dir
}

#[test]
fn every_documented_walk_through_runs_as_written() {
    let blocks = blocks();
    for file in [
        "README.md",
        "ingest.md",
        "slack-notifier.md",
        "progress-alerts.md",
        "warehouse.md",
        "email.md",
        "writing-a-scheme.md",
        "directory.md",
        "deliveries.md",
        "subscriptions.md",
    ] {
        assert!(
            blocks
                .iter()
                .any(|b| b.file == file && matches!(b.marker, Marker::Walkthrough(..))),
            "{file} has no walk-through the test runs"
        );
    }
    try_it_in_one_minute(&blocks);
    email_through_an_smtp_server(&blocks);
    the_functions_on_the_local_stack(&blocks);
    the_warehouse_sink_alone(&blocks);
    a_declared_scheme_and_mapping(&blocks);
    the_directory(&blocks);
    the_delivery_log(&blocks);
    traces_to_a_collector(&blocks);
    a_subscription_to_a_receiver(&blocks);
}

/// docs/subscriptions.md: a subscription added while `serve` runs; the receiver,
/// verifying with the Python `standardwebhooks` library, gets the key result update once;
/// `test` sends it a signed sample.
fn a_subscription_to_a_receiver(blocks: &[Block]) {
    let dir = checkout_dir();
    let mut background = Background::new();
    let steps = run(
        &walkthrough(blocks, "subscriptions"),
        dir.path(),
        &mut background,
        Duration::from_millis(100),
    );
    let id = "evt_226fbbf4a2be0195304aa13df2064d2e";
    assert_eq!(
        outputs(&steps, "okr-webhooks send")[0].trim(),
        format!("202 {id}")
    );
    let receiver = "python3 tests/subscription_receiver.py";
    wait_for(&background, receiver, "the event and the sample", |log| {
        log.lines().filter(|l| l.starts_with("verified ")).count() >= 2
    });
    let log = background.log(receiver);
    let verified: Vec<&str> = log.lines().filter(|l| l.starts_with("verified ")).collect();
    assert!(
        verified.iter().any(|l| l.starts_with(&format!(
            "verified {id} key_result.progress_updated key_result "
        ))),
        "{log}"
    );
    assert!(
        verified
            .iter()
            .any(|l| l.contains(" objective.completed objective ")),
        "{log}"
    );
    assert_eq!(verified.len(), 2, "each once: {log}");
    let tested = outputs(&steps, "okr-webhooks subscriptions test")[0];
    assert!(tested.starts_with("sent test_"), "{tested}");
    assert!(tested.contains("(objective.completed): 200 OK"), "{tested}");
    let listed = outputs(&steps, "okr-webhooks subscriptions list")[0];
    assert!(
        listed.starts_with(
            "okrs  http://127.0.0.1:5002/okr-events  on  types=key_result.* endpoints=all kinds=all"
        ),
        "{listed}"
    );
}

/// docs/deliveries.md, "Traces": `serve` exporting to the stand-in collector, one
/// delivery is one trace of ingest's span and one span per consumer, its children.
fn traces_to_a_collector(blocks: &[Block]) {
    let dir = checkout_dir();
    let mut background = Background::new();
    let steps = run(
        &walkthrough(blocks, "traces"),
        dir.path(),
        &mut background,
        Duration::from_millis(100),
    );
    let sent = outputs(&steps, "okr-webhooks send")[0];
    let id = "evt_226fbbf4a2be0195304aa13df2064d2e";
    assert_eq!(sent.trim(), format!("202 {id}"));
    // The exporter sends every 5 seconds.
    let collector = "python3 tests/otlp_collector.py";
    wait_for(&background, collector, "five spans", |log| {
        log.lines().count() >= 5
    });
    let log = background.log(collector);
    let spans: Vec<Vec<&str>> = log
        .lines()
        .map(|line| line.split("  ").map(str::trim).collect())
        .collect();
    assert_eq!(spans.len(), 5, "{log}");
    // trace T, span S, <- parent, service, name, outcome, event id
    let root: Vec<&Vec<&str>> = spans.iter().filter(|s| s[2] == "<- root").collect();
    assert_eq!(root.len(), 1, "{log}");
    let root = root[0];
    assert_eq!(
        root[3..],
        ["okr-webhooks", "POST /webhooks/{endpoint}", "enqueued", id],
        "{log}"
    );
    let mut consumers: Vec<(&str, &str)> = Vec::new();
    for span in spans.iter().filter(|s| s[2] != "<- root") {
        assert_eq!(span[0], root[0], "one trace: {log}");
        assert_eq!(
            span[2],
            format!("<- {}", root[1].trim_start_matches("span ")),
            "{log}"
        );
        assert_eq!(span[6], id, "{log}");
        consumers.push((span[4], span[5]));
    }
    consumers.sort();
    assert_eq!(
        consumers,
        [
            ("process alerts", "judged"),
            ("process progress", "applied"),
            ("process slack", "posted"),
            ("process warehouse", "stored"),
        ],
        "{log}"
    );
}

/// docs/deliveries.md: a signed delivery and one signed with another secret, as the
/// `deliveries` command and `/api/deliveries` list them.
fn the_delivery_log(blocks: &[Block]) {
    let dir = checkout_dir();
    let mut background = Background::new();
    let steps = run(
        &walkthrough(blocks, "deliveries"),
        dir.path(),
        &mut background,
        // The consumers' steps are written as they finish, in the background.
        Duration::from_millis(700),
    );
    let sent = outputs(&steps, "okr-webhooks send")[0];
    assert!(sent.starts_with("202 evt_"), "{sent}");
    let refused = outputs(&steps, "curl -s http://127.0.0.1:3000/webhooks/peoplelogic")[0];
    assert!(
        refused.contains(r#""error":"invalid_signature""#),
        "{refused}"
    );
    // The first is the table; the second, with --json.
    let listed = outputs(&steps, "okr-webhooks deliveries");
    let lines: Vec<&str> = listed[0].lines().collect();
    assert_eq!(lines.len(), 2, "{}", listed[0]);
    assert!(
        lines[0].contains("\tpeoplelogic\tPOST 401\trefused (wrong_signature)"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\tpeoplelogic\tPOST 202\taccepted\tevt_")
            && lines[1].ends_with(" key_result.progress_updated"),
        "{}",
        lines[1]
    );
    let json = outputs(&steps, "okr-webhooks deliveries --outcome refused --json")[0];
    let refused: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(refused["reason"], "wrong_signature");
    let api = outputs(&steps, "curl -s 'http://127.0.0.1:3000/api/deliveries")[0];
    let page: serde_json::Value = serde_json::from_str(api.trim()).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["outcome"], "accepted");
    // The journey: the id in the docs is the one `send` printed.
    let id = "evt_226fbbf4a2be0195304aa13df2064d2e";
    assert_eq!(page["items"][0]["event_id"], id);
    let journey = outputs(&steps, &format!("okr-webhooks deliveries --event {id}"))[0];
    let lines: Vec<&str> = journey.lines().collect();
    assert!(lines[0].contains("\tPOST 202\taccepted\t"), "{journey}");
    assert_eq!(lines[1], "journey:", "{journey}");
    for expected in [
        "\tingest\tenqueued (attempt 1)\tto warehouse, slack, alerts, progress",
        "\twarehouse\tstored (attempt 1)\tevents/v1/date=",
        "\tprogress\tapplied (attempt 1)\tthe read model changed",
        "\talerts\tjudged (attempt 1)\tno alert opens or resolves",
        "\tslack\tposted (attempt 1)\tone message",
    ] {
        assert_eq!(
            lines.iter().filter(|l| l.contains(expected)).count(),
            1,
            "{expected} in {journey}"
        );
    }
    assert_eq!(lines.len(), 7, "{journey}");
    let api = outputs(
        &steps,
        &format!("curl -s http://127.0.0.1:3000/api/events/{id}"),
    )[0];
    let api: serde_json::Value = serde_json::from_str(api.trim()).unwrap();
    assert_eq!(api["event_id"], id);
    assert_eq!(api["deliveries"].as_array().unwrap().len(), 1, "{api}");
    let api_steps = api["steps"].as_array().unwrap();
    assert_eq!(api_steps.len(), 5, "{api}");
    for step in api_steps {
        for field in ["consumer", "outcome", "time", "attempt"] {
            assert!(!step[field].is_null(), "{field} in {step}");
        }
    }
    // The page's send again, counted: the key result is in the warehouse, and posted.
    let counted = outputs(&steps, "curl -s http://127.0.0.1:3000/api/replays")[0];
    let counted: serde_json::Value = serde_json::from_str(counted.trim()).unwrap();
    assert_eq!(counted["dry_run"], true, "{counted}");
    assert_eq!(
        (
            &counted["selected"],
            &counted["sent"],
            &counted["already_posted"]
        ),
        (&1.into(), &1.into(), &1.into()),
        "{counted}"
    );
    assert!(counted["name"].as_str().unwrap().starts_with("page-"));
    // Capture: on, the same refusal again keeps its body (the first did not), listed,
    // off.
    let captures = outputs(&steps, "okr-webhooks deliveries capture");
    assert_eq!(captures.len(), 3);
    assert!(
        captures[0].starts_with("peoplelogic: capturing the bodies of refused deliveries until "),
        "{}",
        captures[0]
    );
    assert!(
        captures[1].starts_with("peoplelogic\tuntil "),
        "{}",
        captures[1]
    );
    assert!(
        captures[2].starts_with("peoplelogic: no longer capturing refused bodies"),
        "{}",
        captures[2]
    );
    let again = outputs(&steps, "curl -s http://127.0.0.1:3000/webhooks/peoplelogic")[1];
    assert!(again.contains(r#""error":"invalid_signature""#), "{again}");
    let refused = outputs(&steps, "okr-webhooks deliveries --outcome refused");
    let table: Vec<&str> = refused[1].lines().collect();
    assert_eq!(table.len(), 2, "{}", refused[1]);
    let size = std::fs::metadata(
        dir.path()
            .join("events/bodies/peoplelogic/key_result_progress.json"),
    )
    .unwrap()
    .len();
    assert!(
        table[0].ends_with(&format!(
            "\trefused (wrong_signature)\tbody captured ({size} bytes; --json shows it)"
        )),
        "{}",
        table[0]
    );
    assert!(
        table[1].ends_with("\trefused (wrong_signature)"),
        "{}",
        table[1]
    );
}

/// docs/directory.md: the seed's hire and a key result through `serve`, the directory
/// listed, the unresolved owner linked, shown, forgotten.
fn the_directory(blocks: &[Block]) {
    let dir = checkout_dir();
    let mut background = Background::new();
    let steps = run(
        &walkthrough(blocks, "directory"),
        dir.path(),
        &mut background,
        Duration::from_millis(1500),
    );
    for sent in outputs(&steps, "okr-webhooks send") {
        assert!(sent.starts_with("202 evt_"), "{sent}");
    }
    let lists = outputs(&steps, "okr-webhooks directory list");
    let john = lists[0]
        .lines()
        .find(|l| l.starts_with("John Doe "))
        .unwrap_or_else(|| panic!("{}", lists[0]));
    let cells: Vec<&str> = john
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        [
            "John Doe",
            "john.doe@example.com",
            "IT",
            "Senior Developer",
            "Ross Kate (not in the directory)",
            "yes"
        ]
    );
    let unresolved = outputs(&steps, "okr-webhooks directory unresolved")[0];
    assert!(
        unresolved.starts_with(
            "Sam Okafor\t1 key result(s)\tno one in the directory has this name or address"
        ),
        "{unresolved}"
    );
    let linked = outputs(&steps, "okr-webhooks directory link")[0];
    assert_eq!(linked.trim(), r#"linked "Sam Okafor" to John Doe"#);
    let show = outputs(&steps, "okr-webhooks directory show")[0];
    assert!(
        show.contains("  key results  1\n    Reach 500 weekly active teams (60%,"),
        "{show}"
    );
    let api = outputs(&steps, "department=IT")[0];
    let page: serde_json::Value = serde_json::from_str(api.trim()).unwrap();
    assert_eq!(page["items"][0]["owner"], "John Doe", "{page}");
    assert_eq!(page["items"][0]["team_lead"], "Ross Kate", "{page}");
    assert_eq!(page["items"][0]["department"], "IT", "{page}");
    let sent = outputs(&steps, "okr-webhooks send --source peoplelogic stale.json")[0];
    assert!(sent.starts_with("202 evt_"), "{sent}");
    let plans = outputs(&steps, "okr-webhooks stalled --dry-run");
    assert!(
        plans[0].starts_with("1 stalled key result(s) to report"),
        "{}",
        plans[0]
    );
    assert!(
        plans[0].contains("open\tShip the partner API (owner John Doe, ")
            && plans[0].contains("-> Ross Kate <ross.kate@example.com> by email;"),
        "{}",
        plans[0]
    );
    let sends = outputs(&steps, "okr-webhooks stalled --send");
    assert!(
        sends[0].contains("[alerts] KR Ship the partner API has had no update for "),
        "{}",
        sends[0]
    );
    assert!(
        sends[0].contains("stalled: 1 opened, 0 reminded, 0 resolved"),
        "{}",
        sends[0]
    );
    assert!(
        sends[1].starts_with("0 stalled key result(s) to report"),
        "{}",
        sends[1]
    );
    let outbox = outputs(&steps, "ls .okr-webhooks/outbox")[0];
    assert_eq!(outbox.lines().count(), 1, "{outbox}");
    let eml = std::fs::read_to_string(dir.path().join(".okr-webhooks/outbox").join(outbox.trim()))
        .unwrap();
    assert!(eml.contains("To: ross.kate@example.com"), "{eml}");
    assert!(
        eml.contains("Subject: [Stalled key result] Ship the partner API"),
        "{eml}"
    );
    let forgot = outputs(&steps, "okr-webhooks directory forget")[0];
    assert!(forgot.starts_with("forgot 1 person(s); "), "{forgot}");
    assert!(!lists[1].contains("John Doe"), "{}", lists[1]);
}

/// docs/writing-a-scheme.md: the example document, `serve`, the endpoint listed,
/// tested, sent to, and its key result in the read model; `verify` of the page's
/// signed delivery.
fn a_declared_scheme_and_mapping(blocks: &[Block]) {
    let dir = checkout_dir();
    let mut background = Background::new();
    let steps = run(
        &walkthrough(blocks, "scheme"),
        dir.path(),
        &mut background,
        Duration::from_millis(1500),
    );
    let list = outputs(&steps, "okr-webhooks endpoints list")[0];
    let goals = list
        .lines()
        .find(|l| l.starts_with("goals\t"))
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(
        goals,
        "goals\thttp://127.0.0.1:3000/webhooks/goals\tscheme\t1 secret"
    );
    for name in ["hiring\t", "hr-eu\t", "peoplelogic\t"] {
        assert!(list.contains(name), "{name} in {list}");
    }
    let test = outputs(&steps, "okr-webhooks endpoints test goals goal.json")[0];
    assert!(test.contains("\nverified\n"), "{test}");
    assert!(
        test.contains(r#""type": "key_result.progress_updated""#),
        "{test}"
    );
    let sent = outputs(&steps, "okr-webhooks send --endpoint goals goal.json")[0];
    assert_eq!(sent.trim(), "202 evt_4b3a5e0640322550eb95b4cbf72856ff");
    let progress = outputs(
        &steps,
        "curl -s 'http://127.0.0.1:3000/api/progress?q=weekly'",
    )[0];
    let page: serde_json::Value = serde_json::from_str(progress.trim()).unwrap();
    assert_eq!(page["items"][0]["id"], "g42", "{page}");
    assert_eq!(page["items"][0]["progress"], 60.0, "{page}");
    assert_eq!(page["items"][0]["source"], "goals", "{page}");
    let verified = outputs(&steps, "okr-webhooks verify --endpoint goals")[0];
    assert_eq!(verified.trim(), "valid");
}

/// README: `serve`, the samples sent, what lands where, the dashboard's data, `sign`.
fn try_it_in_one_minute(blocks: &[Block]) {
    let dir = checkout_dir();
    let mut background = Background::new();
    let steps = run(
        &walkthrough(blocks, "try-it"),
        dir.path(),
        &mut background,
        Duration::ZERO,
    );
    let sends = outputs(&steps, "okr-webhooks send");
    assert_eq!(sends.len(), 7, "{sends:?}");
    assert_eq!(sends[0].trim(), "202 evt_85e655152e3489a5e630b53564e00a39");
    assert_eq!(
        sends[5].trim(),
        "202 evt_f5bce443cd699c8147663bd0ee4d8484 (duplicate)"
    );
    for send in &sends {
        assert!(send.starts_with("202 evt_"), "{send}");
    }
    for line in [
        "[slack] Objective Launch the self-serve onboarding flow completed",
        "[slack] KR Reach 500 weekly active teams updated to 60% (from 30%) by Sam Okafor",
        "[slack] KR Cut onboarding time to 10 minutes updated to 50%",
        "[slack] John Doe joined IT as Senior Developer",
        "[alerts] KR Cut onboarding time to 10 minutes is at risk",
        "[pagerduty] trigger peoplelogic:b3c2d1e0-1111-4a2b-8c3d-000000000042:at_risk: ",
    ] {
        wait_for(&background, "okr-webhooks serve", line, |log| {
            log.contains(line)
        });
    }
    // Six posts: the five samples (the repeated award once) and the next update.
    wait_for(&background, "okr-webhooks serve", "six posts", |log| {
        log.matches("[slack]").count() >= 6
    });
    std::thread::sleep(Duration::from_secs(2));
    let serve = background.log("okr-webhooks serve");
    assert_eq!(serve.matches("[slack]").count(), 6, "{serve}");
    // The CSV of the progress API, after the next update: 80%.
    let csv = outputs(
        &steps,
        "curl -s 'http://127.0.0.1:3000/api/progress?format=csv'",
    );
    assert!(csv[0].starts_with("source,id,kind,title,"), "{}", csv[0]);
    assert!(csv[0].contains(",80"), "{}", csv[0]);
    // docs/dashboard.md's query and docs/operations.md's health check.
    let behind = outputs(
        &steps,
        "curl -s 'http://127.0.0.1:3000/api/progress?kind=key_result",
    );
    let page: serde_json::Value = serde_json::from_str(behind[0].trim()).unwrap();
    assert_eq!(page["total"], 2, "{page}");
    let health = outputs(&steps, "curl -s http://127.0.0.1:3000/healthz");
    let health: serde_json::Value = serde_json::from_str(health[0].trim()).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    // docs/event-schema.md: a body without its event type normalized.
    let normalized = outputs(&steps, "| okr-webhooks normalize --source peoplelogic");
    assert!(
        normalized[0].contains(r#""type": "objective.completed""#),
        "{}",
        normalized[0]
    );
    let sign = outputs(&steps, "okr-webhooks sign --source peopleforce");
    let header = sign[0].trim();
    let hex = header
        .strip_prefix("X-PeopleForce-Signature: sha256=")
        .unwrap_or_else(|| panic!("{header}"));
    assert!(
        hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{header}"
    );
}

/// docs/ingest.md's local stack (moto, the Slack and PagerDuty stand-in, `cargo lambda
/// watch`), then the invokes of slack-notifier.md, progress-alerts.md and email.md on it.
fn the_functions_on_the_local_stack(blocks: &[Block]) {
    let mut background = Background::new();
    let steps = run(
        &walkthrough(blocks, "lambda"),
        Path::new(REPO),
        &mut background,
        Duration::ZERO,
    );
    let standin = "python3 tests/http_standin.py";

    let ingest = outputs(&steps, "cargo lambda invoke ingest");
    assert!(ingest[0].contains(r#""statusCode":202"#), "{}", ingest[0]);
    let curl = outputs(
        &steps,
        "curl -i http://127.0.0.1:9000/lambda-url/ingest/webhooks/perscom",
    );
    assert!(curl[0].starts_with("HTTP/1.1 202"), "{}", curl[0]);
    assert!(curl[0].contains(r#""duplicate":false"#), "{}", curl[0]);

    // The notifier posts once; invoked again, nothing.
    let slack = outputs(&steps, "cargo lambda invoke slack-notifier");
    assert_eq!(slack.len(), 2);
    for answer in &slack {
        assert!(answer.contains(r#"{"batchItemFailures":[]}"#), "{answer}");
    }
    let log = background.log(standin);
    let posts: Vec<&str> = log.lines().filter(|l| l.starts_with("/slack ")).collect();
    assert_eq!(posts.len(), 1, "{log}");
    assert!(
        posts[0].contains("Reach 500 weekly active teams"),
        "{}",
        posts[0]
    );

    // The alerts: trigger, resolve, nothing after completion, nothing for the late one.
    let alerts = outputs(&steps, "cargo lambda invoke progress-alerts");
    assert_eq!(alerts.len(), 4);
    for answer in &alerts {
        assert!(answer.contains(r#"{"batchItemFailures":[]}"#), "{answer}");
    }
    let log = background.log(standin);
    // The stalled check's (below) say "stalled" in their context and class.
    let alerts: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("/slack-alerts ") || l.starts_with("/v2/enqueue "))
        .filter(|l| !l.contains("stalled"))
        .collect();
    assert_eq!(alerts.len(), 4, "{log}");
    assert!(
        alerts[0].starts_with("/slack-alerts ")
            && alerts[0].contains(
                ":warning: KR Raise activation to 40% is behind pace: 32% done with 68.2% of the period gone"
            ),
        "{}",
        alerts[0]
    );
    assert!(
        alerts[1].starts_with("/v2/enqueue ")
            && alerts[1].contains(r#""event_action": "trigger""#)
            && alerts[1].contains("peoplelogic:kr-activation-rate:behind_pace"),
        "{}",
        alerts[1]
    );
    assert!(
        alerts[2].starts_with("/slack-alerts ")
            && alerts[2]
                .contains(":white_check_mark: KR Raise activation to 40% is back on pace (70%)"),
        "{}",
        alerts[2]
    );
    assert!(
        alerts[3].starts_with("/v2/enqueue ") && alerts[3].contains(r#""event_action": "resolve""#),
        "{}",
        alerts[3]
    );

    // docs/dashboard.md: the read model's function.
    let projection = outputs(&steps, "cargo lambda invoke progress-projection");
    assert!(
        projection[0].contains(r#"{"batchItemFailures":[]}"#),
        "{}",
        projection[0]
    );

    // The summaries: one sent, then nothing more for the same run.
    let email = outputs(&steps, "cargo lambda invoke email-summaries");
    assert_eq!(email.len(), 2);
    assert!(
        email[0].contains(r#"{"recipients":1,"sent":1,"already_sent":0,"refused":0,"failed":0}"#),
        "{}",
        email[0]
    );
    assert!(
        email[1].contains(r#"{"recipients":1,"sent":0,"already_sent":1,"refused":0,"failed":0}"#),
        "{}",
        email[1]
    );

    // docs/directory.md: the stalled check opens John's (email, channel, PagerDuty) and
    // the Standard Webhooks one, owner unknown (channel, PagerDuty), then sends nothing
    // more for the same run.
    let stalled = outputs(&steps, "cargo lambda invoke stalled-check");
    assert_eq!(stalled.len(), 2);
    assert!(
        stalled[0].contains(
            r#"{"opened":2,"reminded":0,"resolved":0,"sent":5,"already_sent":0,"refused":0,"failed":0}"#
        ),
        "{}",
        stalled[0]
    );
    assert!(
        stalled[1].contains(
            r#"{"opened":0,"reminded":0,"resolved":0,"sent":0,"already_sent":0,"refused":0,"failed":0}"#
        ),
        "{}",
        stalled[1]
    );
    let log = background.log(standin);
    let line = "/slack-alerts {\"text\": \"KR Renew the partner deals has had no update for 20 days (last on 2026-11-17, at 40%): John Doe, team lead Ross Kate\"";
    assert_eq!(log.matches(line).count(), 1, "{log}");
    let unknown: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("/slack-alerts ") && l.contains("owner unknown"))
        .collect();
    assert_eq!(unknown.len(), 1, "{log}");
    assert!(
        log.contains(r#""dedup_key": "stalled:peoplelogic#kr-partner-deals""#),
        "{log}"
    );
}

/// docs/warehouse.md: the sink writing to a local directory, a poison record reported.
fn the_warehouse_sink_alone(blocks: &[Block]) {
    let _ = std::fs::remove_dir_all("/tmp/okr-warehouse");
    let mut background = Background::new();
    let steps = run(
        &walkthrough(blocks, "warehouse"),
        Path::new(REPO),
        &mut background,
        Duration::ZERO,
    );
    let answer = outputs(&steps, "cargo lambda invoke warehouse-sink");
    assert!(
        answer[0].contains(
            r#"{"batchItemFailures":[{"itemIdentifier":"e661c7c5-2cbe-53e1-a892-6fe1d7855dfd"}]}"#
        ),
        "{}",
        answer[0]
    );
    let first = outputs(&steps, "zcat");
    let event: serde_json::Value = serde_json::from_str(first[0].trim()).unwrap();
    assert_eq!(event["schema"], "okr-webhooks.event.v1", "{event}");
}

/// docs/email.md: aiosmtpd, the recipients, `serve --smtp-url`, the samples, the
/// summaries previewed and sent, then the next update's summary.
fn email_through_an_smtp_server(blocks: &[Block]) {
    let dir = checkout_dir();
    let mut background = Background::new();
    // A second between commands, as typed: the read model catches up, and each
    // summary run has a second of its own.
    let steps = run(
        &walkthrough(blocks, "email"),
        dir.path(),
        &mut background,
        Duration::from_millis(1500),
    );
    let serve = background.log("okr-webhooks serve");
    assert!(
        serve.contains(
            "email: 2 recipient(s), sent through the SMTP server at smtp://127.0.0.1:2525"
        ),
        "{serve}"
    );
    let preview = outputs(&steps, "okr-webhooks summary --dry-run")[0];
    assert!(preview.starts_with("2 summaries, up to "), "{preview}");
    let week = time::OffsetDateTime::now_utc().iso_week();
    for line in [
        "To: cto@example.com\nCovering: the start (no summary was sent to them before) to "
            .to_owned(),
        format!(
            "Subject: OKR summary, week {week}: 1 completed, 0 behind pace, 1 at risk, 1 stalled"
        ),
    ] {
        assert!(preview.contains(&line), "{line:?} not in:\n{preview}");
    }
    let sends = outputs(
        &steps,
        "okr-webhooks summary --send --smtp-url smtp://127.0.0.1:2525",
    );
    assert_eq!(sends.len(), 2);
    for send in &sends {
        assert!(
            send.lines().any(|l| l == "2 sent, 0 sent before, 0 refused, 0 failed (of 2 recipients), through the SMTP server at smtp://127.0.0.1:2525"),
            "{send}"
        );
    }
    let smtp = "python3 -m aiosmtpd";
    wait_for(
        &background,
        smtp,
        "the alert email and four summaries",
        |log| {
            log.matches("Subject: OKR summary").count() >= 4
                && log.contains(
                    "Subject: [OKR alert] KR Cut onboarding time to 10 minutes is at risk",
                )
        },
    );
    let log = background.log(smtp);
    let last = &log[log
        .rfind(&format!("Subject: OKR summary, week {week}: 0 completed"))
        .unwrap_or_else(|| panic!("no second summary:\n{log}"))..];
    for line in [
        "STALLED\n  None.",
        "PROGRESS MOVED\n  Launch the self-serve onboarding flow\n    - KR Reach 500 weekly active teams: 60% -> 80% (+20)",
        "COMPLETED\n  None.",
    ] {
        assert!(last.contains(line), "{line:?} not in:\n{last}");
    }
}
