//! The warehouse's `people` table: the directory as it is, one snapshot a day, beside
//! the events, so a query can join key results to departments and team leads.
//!
//! Layout: `people/v1/date=YYYY-MM-DD/people.ndjson.gz`, one person per line with the
//! directory's fields only (never a birth date, a personal email, a phone, an address,
//! pay or a custom field: the directory keeps none), and the team lead the directory
//! resolves for them. The day's object is written whole; a second snapshot the same day
//! replaces it. A person erased with `directory forget` is in no snapshot written after.

use serde::Serialize;
use time::Date;
use time::format_description::well_known::Iso8601;

use super::{NdjsonGz, ObjectSink, SinkError};
use crate::directory::{self, Directory, DirectoryStore, Record};

/// The prefix of the snapshots, with the layout's version.
pub const PEOPLE_PREFIX: &str = "people/v1";

/// One person as a row of the `people` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonRow {
    /// The endpoint their HR events came through.
    pub endpoint: String,
    /// The HR tool's id for them.
    pub id: String,
    /// Their full name.
    pub name: Option<String>,
    /// Their work email.
    pub email: Option<String>,
    /// Their manager as the HR record names them: the HR tool's id.
    pub manager_id: Option<String>,
    /// ... and work email.
    pub manager_email: Option<String>,
    /// Their team lead as the directory resolves them (their manager's record, else the
    /// name the HR record gives): the name.
    pub team_lead: Option<String>,
    /// ... and work email.
    pub team_lead_email: Option<String>,
    /// Their department.
    pub department: Option<String>,
    /// Their division.
    pub division: Option<String>,
    /// Their position.
    pub position: Option<String>,
    /// Employed (false once terminated).
    pub active: bool,
}

/// The rows of `directory`, ordered by key (endpoint, then id).
pub fn rows(directory: &Directory) -> Vec<PersonRow> {
    let mut people: Vec<&Record> = directory.people().collect();
    people.sort_by_key(|record| record.key());
    people
        .into_iter()
        .map(|record| {
            let person = record.person.clone();
            let manager = person.manager.unwrap_or_default();
            let lead = directory.team_lead(&record.key());
            PersonRow {
                endpoint: record.endpoint.to_string(),
                id: person.id,
                name: person.name,
                email: person.email,
                manager_id: manager.id,
                manager_email: manager.email,
                team_lead: lead.as_ref().map(|l| l.name.clone()),
                team_lead_email: lead.and_then(|l| l.email),
                department: person.department,
                division: person.division,
                position: person.position,
                active: record.active(),
            }
        })
        .collect()
}

/// The key of the snapshot of `date`.
pub fn snapshot_key(date: Date) -> String {
    let day = date.format(&Iso8601::DATE).unwrap_or_default();
    format!("{PEOPLE_PREFIX}/date={day}/people.ndjson.gz")
}

/// Why a snapshot was not written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The directory could not be read.
    #[error(transparent)]
    Directory(#[from] directory::DirectoryError),
    /// The rows could not be encoded.
    #[error("encoding the snapshot failed")]
    Encode(#[from] std::io::Error),
    /// The object could not be written.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Write the snapshot of `store`'s directory for `date` through `sink`: how many
/// people it holds.
pub async fn snapshot(
    store: &dyn DirectoryStore,
    sink: &dyn ObjectSink,
    date: Date,
) -> Result<usize, SnapshotError> {
    let directory = directory::load(store).await?;
    let rows = rows(&directory);
    let mut ndjson = NdjsonGz::default();
    for row in &rows {
        ndjson.push(row)?;
    }
    sink.put(&snapshot_key(date), ndjson.finish()?).await?;
    Ok(rows.len())
}
