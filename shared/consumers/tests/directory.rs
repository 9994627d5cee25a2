//! The directory: people from HR events (only the kept fields), managers resolved
//! whatever order records arrive in, cycles cut, a shared work email, erasure that
//! holds through a replay, and owners resolved to people.

use http::HeaderMap;
use okr_consumers::directory::{
    self, Directory, DirectoryStore, MemoryDirectory, Resolution, link, load,
};
use okr_core::endpoints::{Endpoint, Endpoints};
use okr_core::person::Owner;
use okr_core::{Event, Source, normalize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const SEED: &str = include_str!("../../../events/bodies/peopleforce/employee_create.json");

fn normalized(endpoint: &Endpoint, body: &[u8]) -> Event {
    normalize(
        endpoint,
        &HeaderMap::new(),
        body,
        datetime!(2026-11-20 09:30 UTC),
    )
    .unwrap()
}

fn peopleforce(body: &Value) -> Event {
    normalized(
        &Endpoint::of_source(Source::PEOPLEFORCE).unwrap(),
        body.to_string().as_bytes(),
    )
}

/// A PeopleForce employee event in the seed's shape.
fn employee(
    action: &str,
    id: u64,
    name: (&str, &str),
    manager: Option<(u64, &str, &str)>,
    department: &str,
    at: &str,
) -> Event {
    let mut body: Value = serde_json::from_str(SEED).unwrap();
    body["action"] = json!(action);
    let data = &mut body["data"];
    data["id"] = json!(id);
    data["attributes"]["first_name"] = json!(name.0);
    data["attributes"]["last_name"] = json!(name.1);
    data["attributes"]["email"] = json!(format!(
        "{}.{}@example.com",
        name.0.to_lowercase(),
        name.1.to_lowercase()
    ));
    data["reporting_to"] = match manager {
        Some((id, full_name, email)) => json!({"id": id, "full_name": full_name, "email": email}),
        None => Value::Null,
    };
    data["department"]["name"] = json!(department);
    data["meta"]["updated_at"] = json!(at);
    peopleforce(&body)
}

async fn apply(store: &MemoryDirectory, events: &[Event]) {
    directory::apply(store, events).await.unwrap();
}

#[tokio::test]
async fn the_seeds_employee_keeps_only_the_directory_fields() {
    let event = peopleforce(&serde_json::from_str(SEED).unwrap());
    let person = event
        .person
        .clone()
        .expect("an employee record has a person");
    assert_eq!(person.id, "130333");
    assert_eq!(person.name.as_deref(), Some("John Doe"));
    assert_eq!(person.email.as_deref(), Some("john.doe@example.com"));
    let manager = person.manager.clone().unwrap();
    assert_eq!(manager.id.as_deref(), Some("5844"));
    assert_eq!(manager.email.as_deref(), Some("ross.kate@example.com"));
    assert_eq!(manager.name.as_deref(), Some("Ross Kate"));
    assert_eq!(person.department.as_deref(), Some("IT"));
    assert_eq!(person.division.as_deref(), Some("Europe"));
    assert_eq!(person.position.as_deref(), Some("Senior Developer"));
    assert_eq!(person.active, Some(true));

    let store = MemoryDirectory::default();
    apply(&store, &[event]).await;
    let stored = serde_json::to_string(&store.entries().await.unwrap()[0].entry).unwrap();
    for private in [
        "1978-08-31",
        "johnny.d.private@example.org",
        "+380501234567",
        "T-shirt",
        "PF124593",
        "male",
    ] {
        assert!(
            !stored.contains(private),
            "{private} reached the directory: {stored}"
        );
    }
    let directory = load(&store).await.unwrap();
    let john = directory.find("john.doe@example.com").unwrap();
    // Ross Kate has no record yet: the reference waits for him.
    assert!(directory.manager(&john.key()).is_none());
    assert_eq!(
        john.person.manager.as_ref().unwrap().name.as_deref(),
        Some("Ross Kate")
    );
}

#[tokio::test]
async fn a_manager_arriving_later_is_found_and_termination_ends_a_team_lead() {
    let store = MemoryDirectory::default();
    let john = employee(
        "employee_create",
        130333,
        ("John", "Doe"),
        Some((5844, "Ross Kate", "ross.kate@example.com")),
        "IT",
        "2026-01-05T10:00:00Z",
    );
    apply(&store, &[john]).await;
    let ross = employee(
        "employee_create",
        5844,
        ("Ross", "Kate"),
        None,
        "IT",
        "2026-01-06T10:00:00Z",
    );
    apply(&store, &[ross]).await;
    let directory = load(&store).await.unwrap();
    let john = directory.find("john.doe@example.com").unwrap();
    let lead = directory.manager(&john.key()).unwrap();
    assert_eq!(lead.label(), "Ross Kate");
    let leads: Vec<&str> = directory.team_leads().iter().map(|r| r.label()).collect();
    assert_eq!(leads, ["Ross Kate"]);

    // The seed's termination (no reporting_to in it): John is inactive, his manager kept.
    let mut terminate: Value = serde_json::from_str(include_str!(
        "../../../events/bodies/peopleforce/employee_terminate.json"
    ))
    .unwrap();
    terminate["data"]["meta"]["updated_at"] = json!("2026-03-01T09:00:00Z");
    apply(&store, &[peopleforce(&terminate)]).await;
    let directory = load(&store).await.unwrap();
    let john = directory.find("john.doe@example.com").unwrap();
    assert!(!john.active());
    assert_eq!(directory.manager(&john.key()).unwrap().label(), "Ross Kate");
    assert!(
        directory.team_leads().is_empty(),
        "Ross has no active report"
    );
}

#[tokio::test]
async fn any_order_of_arrival_gives_the_same_person() {
    let created = employee(
        "employee_create",
        7,
        ("Ana", "Lima"),
        None,
        "Sales",
        "2026-01-01T00:00:00Z",
    );
    let moved = employee(
        "employee_update",
        7,
        ("Ana", "Lima"),
        None,
        "Marketing",
        "2026-02-01T00:00:00Z",
    );
    let in_order = MemoryDirectory::default();
    apply(&in_order, &[created.clone(), moved.clone()]).await;
    let reversed = MemoryDirectory::default();
    apply(&reversed, std::slice::from_ref(&moved)).await;
    apply(&reversed, std::slice::from_ref(&created)).await;
    apply(&reversed, &[moved, created]).await;
    let a = load(&in_order).await.unwrap();
    let b = load(&reversed).await.unwrap();
    let (a, b) = (
        a.find("ana.lima@example.com").unwrap(),
        b.find("ana.lima@example.com").unwrap(),
    );
    assert_eq!(a.person, b.person);
    assert_eq!(a.person.department.as_deref(), Some("Marketing"));
}

/// A three-level chart: Cleo leads Ross, Ross leads John and Mia.
async fn chart() -> MemoryDirectory {
    let store = MemoryDirectory::default();
    let at = "2026-01-01T00:00:00Z";
    apply(
        &store,
        &[
            employee("employee_create", 1, ("Cleo", "Park"), None, "Eng", at),
            employee(
                "employee_create",
                2,
                ("Ross", "Kate"),
                Some((1, "Cleo Park", "")),
                "Eng",
                at,
            ),
            employee(
                "employee_create",
                3,
                ("John", "Doe"),
                Some((2, "Ross Kate", "")),
                "IT",
                at,
            ),
            employee(
                "employee_create",
                4,
                ("Mia", "Chen"),
                Some((0, "Ross Kate", "ross.kate@example.com")),
                "IT",
                at,
            ),
        ],
    )
    .await;
    store
}

#[tokio::test]
async fn reports_direct_and_all_over_three_levels() {
    let directory = load(&chart().await).await.unwrap();
    let cleo = directory.find("cleo.park@example.com").unwrap().key();
    let ross = directory.find("ross.kate@example.com").unwrap().key();
    let labels = |records: Vec<&directory::Record>| {
        records
            .iter()
            .map(|r| r.label().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(labels(directory.reports(&cleo, false)), ["Ross Kate"]);
    let mut all = labels(directory.reports(&cleo, true));
    all.sort();
    assert_eq!(all, ["John Doe", "Mia Chen", "Ross Kate"]);
    // Mia's manager is found by email (her record's manager id is unknown).
    assert_eq!(
        labels(directory.reports(&ross, false)),
        ["John Doe", "Mia Chen"]
    );
    let mut leads: Vec<&str> = directory.team_leads().iter().map(|r| r.label()).collect();
    leads.sort();
    assert_eq!(leads, ["Cleo Park", "Ross Kate"]);
}

#[tokio::test]
async fn a_manager_cycle_is_cut_not_looped() {
    let store = chart().await;
    // Cleo now reports to John: Cleo -> John -> Ross -> Cleo.
    apply(
        &store,
        &[employee(
            "employee_update",
            1,
            ("Cleo", "Park"),
            Some((3, "John Doe", "")),
            "Eng",
            "2026-02-01T00:00:00Z",
        )],
    )
    .await;
    let directory = load(&store).await.unwrap();
    assert_eq!(directory.cycles().len(), 1);
    assert_eq!(directory.cycles()[0].len(), 3);
    let cleo = directory.find("cleo.park@example.com").unwrap().key();
    // Cut at the first key (Cleo's): everyone's chain ends, and all reports terminate.
    assert!(directory.manager(&cleo).is_none());
    assert_eq!(directory.reports(&cleo, true).len(), 3);
    let john = directory.find("john.doe@example.com").unwrap().key();
    assert_eq!(directory.reports(&john, true).len(), 0);
}

#[tokio::test]
async fn two_people_with_one_email_the_later_wins() {
    let store = MemoryDirectory::default();
    let first = employee(
        "employee_create",
        10,
        ("Sam", "Okafor"),
        None,
        "A",
        "2026-01-01T00:00:00Z",
    );
    let mut second = employee(
        "employee_create",
        11,
        ("Sam", "Okafor"),
        None,
        "B",
        "2026-01-02T00:00:00Z",
    );
    second.person.as_mut().unwrap().name = Some("Samuel Okafor".into());
    apply(&store, &[second, first]).await;
    let directory = load(&store).await.unwrap();
    assert_eq!(directory.with_email("sam.okafor@example.com").len(), 2);
    assert_eq!(
        directory
            .find("SAM.OKAFOR@example.com")
            .unwrap()
            .person
            .department
            .as_deref(),
        Some("B")
    );
}

#[tokio::test]
async fn owners_resolve_by_email_then_unique_name_then_a_link() {
    let store = chart().await;
    let directory = load(&store).await.unwrap();
    let by_email = Owner {
        email: Some("John.Doe@example.com".into()),
        ..Owner::default()
    };
    let (john, how) = directory.resolve(&by_email).unwrap();
    assert_eq!((john.label(), how), ("John Doe", Resolution::Email));
    let by_name = Owner {
        name: Some("john  doe".into()),
        ..Owner::default()
    };
    assert_eq!(directory.resolve(&by_name).unwrap().1, Resolution::Name);
    let unknown = Owner {
        name: Some("Sam Okafor".into()),
        ..Owner::default()
    };
    assert!(directory.resolve(&unknown).is_none());

    // Two people named alike: the name no longer resolves, until linked.
    apply(
        &store,
        &[employee(
            "employee_create",
            9,
            ("John", "Doe"),
            None,
            "Ops",
            "2026-01-02T00:00:00Z",
        )],
    )
    .await;
    let directory = load(&store).await.unwrap();
    assert!(directory.resolve(&by_name).is_none());
    let label = link(&store, "John Doe", "john.doe@example.com")
        .await
        .unwrap();
    assert_eq!(label, "John Doe");
    let directory = load(&store).await.unwrap();
    let (linked, how) = directory.resolve(&by_name).unwrap();
    assert_eq!(how, Resolution::Linked);
    assert_eq!(
        linked.person.department.as_deref(),
        Some("Ops"),
        "the later record owns the address"
    );
    assert!(link(&store, "Someone", "nobody@example.com").await.is_err());
}

#[tokio::test]
async fn a_forgotten_person_stays_forgotten_through_a_replay() {
    let store = chart().await;
    let john = employee(
        "employee_create",
        3,
        ("John", "Doe"),
        Some((2, "Ross Kate", "")),
        "IT",
        "2026-01-01T00:00:00Z",
    );
    link(&store, "JD", "john.doe@example.com").await.unwrap();
    assert_eq!(
        directory::forget(&store, "JOHN.DOE@example.com")
            .await
            .unwrap(),
        1
    );
    // The replay of his events: by key (an event without the address) and by address.
    let mut no_email = john.clone();
    no_email.person.as_mut().unwrap().email = None;
    let applied = directory::apply(&store, &[john, no_email]).await.unwrap();
    assert_eq!(applied.erased, 2);
    let directory = load(&store).await.unwrap();
    assert!(directory.find("john.doe@example.com").is_none());
    assert_eq!(directory.len(), 3);
    let stored = format!("{:?}", store.entries().await.unwrap());
    assert!(
        !stored.contains("John Doe") && !stored.contains("john.doe"),
        "{stored}"
    );
}

#[tokio::test]
async fn a_mapped_hr_tool_feeds_the_directory() {
    let endpoints = Endpoints::parse(
        &json!({"endpoints": {"hr": {"scheme": {
            "header": "X-Sig", "algorithm": "sha256", "encoding": "hex", "signed": "{body}"
        }, "mapping": {
            "event": "/event",
            "types": {"employee.left": "employee.terminated", "employee.changed": "employee.updated"},
            "entity": {"id": "/employee/id", "title": "/employee/displayName"},
            "person": {
                "id": "/employee/id", "name": "/employee/displayName", "email": "/employee/work/email",
                "manager_email": "/employee/work/manager", "department": "/employee/work/department",
                "position": "/employee/work/title", "active": "/employee/status"
            }
        }}}})
        .to_string(),
    )
    .unwrap();
    let hr = &endpoints.get("hr").unwrap();
    let body = json!({"event": "employee.changed", "employee": {"id": "e-1", "displayName": "Ana Lima",
        "personal": {"birthday": "1990-01-01", "email": "ana@home.example"},
        "work": {"email": "ana@corp.example", "manager": "cleo.park@example.com", "department": "Sales", "title": "AE"},
        "status": "Active"}});
    let event = normalized(hr, body.to_string().as_bytes());
    let person = event.person.clone().unwrap();
    assert_eq!(person.active, Some(true));
    assert_eq!(
        person.manager.as_ref().unwrap().email.as_deref(),
        Some("cleo.park@example.com")
    );
    let text = serde_json::to_string(&person).unwrap();
    assert!(
        !text.contains("1990") && !text.contains("home.example"),
        "{text}"
    );

    let store = chart().await;
    apply(&store, &[event]).await;
    let left =
        json!({"event": "employee.left", "employee": {"id": "e-1", "displayName": "Ana Lima"}});
    let mut left = normalized(hr, left.to_string().as_bytes());
    left.occurred_at = OffsetDateTime::now_utc();
    assert_eq!(left.person.as_ref().unwrap().active, Some(false));
    let directory: Directory = load(&store).await.unwrap();
    let ana = directory.find("ana@corp.example").unwrap();
    assert_eq!(directory.manager(&ana.key()).unwrap().label(), "Cleo Park");
    apply(&store, &[left]).await;
    let directory = load(&store).await.unwrap();
    assert!(!directory.find("ana@corp.example").unwrap().active());

    let bad =
        json!({"event": "employee.changed", "employee": {"id": "e-1", "status": "on a boat"}});
    let error = normalize(
        hr,
        &HeaderMap::new(),
        bad.to_string().as_bytes(),
        OffsetDateTime::now_utc(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("person.active"), "{error}");
}

#[tokio::test]
async fn a_forgotten_manager_leaves_their_reports_records_and_stays_out() {
    let store = chart().await;
    // Ross leads John (by id) and Mia (by email).
    assert_eq!(
        directory::forget(&store, "ross.kate@example.com")
            .await
            .unwrap(),
        1
    );
    let directory = load(&store).await.unwrap();
    for report in ["john.doe@example.com", "mia.chen@example.com"] {
        let record = directory.find(report).unwrap();
        assert!(
            record.person.manager.is_none(),
            "{report}: {:?}",
            record.person.manager
        );
    }
    // John's next update names Ross again: the reference is dropped, the rest applied.
    let update = employee(
        "employee_update",
        3,
        ("John", "Doe"),
        Some((2, "Ross Kate", "ross.kate@example.com")),
        "Platform",
        "2026-03-01T00:00:00Z",
    );
    apply(&store, &[update]).await;
    let directory = load(&store).await.unwrap();
    let john = directory.find("john.doe@example.com").unwrap();
    assert!(john.person.manager.is_none());
    assert_eq!(john.person.department.as_deref(), Some("Platform"));
    let stored = format!("{:?}", store.entries().await.unwrap());
    assert!(
        !stored.contains("Ross") && !stored.contains("ross.kate"),
        "{stored}"
    );
}

#[tokio::test]
async fn a_newer_event_saying_the_same_still_keeps_an_older_one_out() {
    let at = |day: u32| format!("2026-01-{day:02}T00:00:00Z");
    let dept = |day: u32, name: &str| {
        employee("employee_update", 7, ("Ana", "Lima"), None, name, &at(day))
    };
    // t1 X; t10 without a department; t5 X again (nothing else new); then the older
    // t3 Y: X stays, since t5 said it after t3.
    let store = MemoryDirectory::default();
    apply(&store, &[dept(1, "X")]).await;
    let mut silent = dept(10, "-");
    silent.person.as_mut().unwrap().department = None;
    apply(&store, &[silent]).await;
    apply(&store, &[dept(5, "X")]).await;
    apply(&store, &[dept(3, "Y")]).await;
    let directory = load(&store).await.unwrap();
    let ana = directory.find("ana.lima@example.com").unwrap();
    assert_eq!(ana.person.department.as_deref(), Some("X"));
}

/// A Peoplelogic key result last updated by `by`, as the read model keeps it.
fn key_result(id: &str, by: &str) -> okr_consumers::progress::Tracked {
    let body = json!({
        "eventType": "objective.patch", "id": id, "title": format!("KR {id}"),
        "currentValue": 40, "status": "ON_TRACK", "updatedBy": {"name": by},
        "updatedAt": "2026-11-01T09:00:00Z",
    });
    let event = peopleforce_or(Source::PEOPLELOGIC, &body);
    okr_consumers::progress::next(None, &event, &okr_core::rules::Thresholds::default()).unwrap()
}

fn peopleforce_or(source: Source, body: &Value) -> Event {
    normalized(
        &Endpoint::of_source(source).unwrap(),
        body.to_string().as_bytes(),
    )
}

#[tokio::test]
async fn org_scopes_follow_the_chart_and_team_leads_get_their_teams_summary() {
    use okr_consumers::email::recipients::{Org, Recipients, Scope};
    let store = chart().await;
    let people = load(&store).await.unwrap();
    let records = [
        key_result("kr-john", "John Doe"),
        key_result("kr-mia", "Mia Chen"),
        key_result("kr-ross", "Ross Kate"),
        key_result("kr-sam", "Sam Okafor"),
    ];
    let covered = |scope: &Scope, address: &str| {
        let org = Org {
            directory: &people,
            address,
        };
        records
            .iter()
            .filter(|r| scope.covers(r, None, Some(&org)))
            .map(|r| r.id.clone())
            .collect::<Vec<_>>()
    };
    let all = Scope::Reports { all: true };
    let direct = Scope::Reports { all: false };
    assert_eq!(
        covered(&all, "cleo.park@example.com"),
        ["kr-john", "kr-mia", "kr-ross"]
    );
    assert_eq!(covered(&direct, "Cleo.Park@example.com"), ["kr-ross"]);
    assert_eq!(
        covered(&direct, "ross.kate@example.com"),
        ["kr-john", "kr-mia"]
    );
    assert!(
        covered(&all, "john.doe@example.com").is_empty(),
        "no reports"
    );
    assert!(
        covered(&all, "stranger@example.com").is_empty(),
        "not in the directory"
    );
    assert_eq!(
        covered(&Scope::Department("it".into()), "x@example.com"),
        ["kr-john", "kr-mia"]
    );
    // Without the directory, org scopes cover nothing (never everything).
    assert!(!all.covers(&records[0], None, None));

    let recipients = Recipients::parse(
        &json!({"team_leads": true, "recipients": [
            {"address": "ROSS.KATE@example.com", "scope": "all"},
            {"address": "hr@example.com", "scope": {"department": "IT"}}
        ]})
        .to_string(),
    )
    .unwrap();
    let summaries = recipients.for_summaries(&people);
    let to: Vec<(&str, &Scope)> = summaries
        .iter()
        .map(|r| (r.address.as_str(), &r.scope))
        .collect();
    // Ross's own entry wins over the team-lead one; Cleo gets her direct reports'.
    assert_eq!(
        to,
        [
            ("ROSS.KATE@example.com", &Scope::All),
            ("hr@example.com", &Scope::Department("IT".into())),
            ("cleo.park@example.com", &Scope::Reports { all: false }),
        ]
    );

    // A terminated team lead gets no summary.
    let mut gone: Value = serde_json::from_str(include_str!(
        "../../../events/bodies/peopleforce/employee_terminate.json"
    ))
    .unwrap();
    gone["data"]["id"] = json!(1);
    gone["data"]["attributes"]["email"] = json!("cleo.park@example.com");
    gone["data"]["meta"]["updated_at"] = json!("2026-06-01T00:00:00Z");
    apply(&store, &[peopleforce(&gone)]).await;
    let people = load(&store).await.unwrap();
    let leads: Vec<String> = Recipients::parse(r#"{"team_leads": true, "recipients": []}"#)
        .unwrap()
        .for_summaries(&people)
        .into_iter()
        .map(|r| r.address)
        .collect();
    assert_eq!(leads, ["ross.kate@example.com"]);

    for (doc, error) in [
        (
            r#"{"recipients": [{"address": "a@example.com", "scope": {"reports": "some"}}]}"#,
            "\"reports\" must be \"direct\" or \"all\"",
        ),
        (
            r#"{"recipients": [{"address": "a@example.com", "scope": {"department": "IT"}, "alerts": true}]}"#,
            "\"alerts\": true needs a scope of",
        ),
        (
            r#"{"recipients": [], "team_leads": "yes"}"#,
            "\"team_leads\" must be true or false",
        ),
    ] {
        let refused = Recipients::parse(doc).unwrap_err();
        assert!(refused.contains(error), "{refused}");
        assert!(!refused.contains("a@example.com"), "{refused}");
    }
}

/// The rows of a snapshot object: gzip NDJSON, one JSON object per line.
fn snapshot_rows(object: &[u8]) -> Vec<Value> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(object)
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn the_people_snapshot_holds_the_directory_fields_and_team_leads_and_no_one_forgotten() {
    use okr_consumers::warehouse::memory::MemorySink;
    use okr_consumers::warehouse::people::snapshot;

    // The seed's hire, whose manager has no record of their own.
    let store = MemoryDirectory::default();
    apply(&store, &[peopleforce(&serde_json::from_str(SEED).unwrap())]).await;
    let sink = MemorySink::default();
    let day = time::macros::date!(2026 - 12 - 07);
    assert_eq!(snapshot(&store, &sink, day).await.unwrap(), 1);
    let objects = sink.objects();
    let object = &objects["people/v1/date=2026-12-07/people.ndjson.gz"];
    assert_eq!(
        snapshot_rows(object),
        [json!({
            "endpoint": "peopleforce", "id": "130333", "name": "John Doe",
            "email": "john.doe@example.com", "manager_id": "5844",
            "manager_email": "ross.kate@example.com", "team_lead": "Ross Kate",
            "team_lead_email": "ross.kate@example.com", "department": "IT",
            "division": "Europe", "position": "Senior Developer", "active": true,
        })]
    );
    let raw = String::from_utf8_lossy(&{
        use std::io::Read;
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&object[..])
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    })
    .into_owned();
    for private in ["1978-08-31", "johnny.d.private", "+380501234567", "T-shirt"] {
        assert!(!raw.contains(private), "{private} in the snapshot");
    }

    // A chart: each row names the team lead the directory resolves; a forgotten person
    // is in no later snapshot, and the same day's snapshot is replaced.
    let store = chart().await;
    let leads = |rows: &[Value]| -> Vec<(String, Value)> {
        rows.iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_owned(),
                    r["team_lead"].clone(),
                )
            })
            .collect()
    };
    snapshot(&store, &sink, day).await.unwrap();
    let rows = snapshot_rows(&sink.objects()["people/v1/date=2026-12-07/people.ndjson.gz"]);
    assert_eq!(
        leads(&rows),
        [
            ("Cleo Park".to_owned(), Value::Null),
            ("Ross Kate".to_owned(), json!("Cleo Park")),
            ("John Doe".to_owned(), json!("Ross Kate")),
            ("Mia Chen".to_owned(), json!("Ross Kate")),
        ]
    );
    directory::forget(&store, "john.doe@example.com")
        .await
        .unwrap();
    let next = time::macros::date!(2026 - 12 - 08);
    assert_eq!(snapshot(&store, &sink, next).await.unwrap(), 3);
    let objects = sink.objects();
    let rows = snapshot_rows(&objects["people/v1/date=2026-12-08/people.ndjson.gz"]);
    assert!(rows.iter().all(|r| r["name"] != "John Doe"), "{rows:?}");
    assert_eq!(objects.len(), 2, "one object a day");
}

#[test]
fn a_stalled_alert_names_a_team_lead_by_name_never_by_address() {
    use okr_consumers::stalled::{Action, Notice, Route, shared_text, text};
    let notice = |lead: &str| Notice {
        action: Action::Open,
        record: key_result("kr-1", "John Doe"),
        owner: Some("John Doe".into()),
        route: Route::TeamLead {
            name: lead.into(),
            email: Some("ross.kate@example.com".into()),
        },
        days: 20,
        period_over: false,
    };
    let named = notice("Ross Kate");
    assert!(shared_text(&named).ends_with(": John Doe, team lead Ross Kate"));
    assert!(text(&named).ends_with(": John Doe (your team)"));
    // An HR record that names its manager by address only.
    let unnamed = shared_text(&notice("ross.kate@example.com"));
    assert!(!unnamed.contains('@'), "{unnamed}");
    assert!(
        unnamed.ends_with("team lead unnamed in the directory"),
        "{unnamed}"
    );
}
