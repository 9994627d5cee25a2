//! `serve`'s people snapshot: the day's snapshot of the directory (SQLite) is written
//! into the data directory's warehouse when it starts, and the task ends when told.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use okr_core::{Source, normalize};
use okr_local::directory_sqlite::SqliteDirectory;
use serde_json::Value;

#[tokio::test]
async fn the_days_snapshot_is_written_at_start_into_the_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let directory = Arc::new(SqliteDirectory::open(&dir.path().join("directory.sqlite")).unwrap());
    let hire = normalize(
        &okr_core::endpoints::Endpoint::of_source(Source::PEOPLEFORCE).unwrap(),
        &HeaderMap::new(),
        include_bytes!("../../../events/bodies/peopleforce/employee_create.json"),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    okr_consumers::directory::apply(directory.as_ref(), &[hire])
        .await
        .unwrap();

    let warehouse = dir.path().join("warehouse");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(okr_local::people::daily(
        directory,
        warehouse.clone(),
        stopped,
        |line| panic!("{line}"),
    ));
    let today = time::OffsetDateTime::now_utc().date();
    let file = warehouse.join(format!("people/v1/date={today}/people.ndjson.gz"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the task ends when told")
        .unwrap();

    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["email"], "john.doe@example.com");
    assert_eq!(rows[0]["team_lead"], "Ross Kate");
}
