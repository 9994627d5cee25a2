//! The progress API's query: filters, order and pages over the read model's records,
//! and the CSV form. One implementation for `serve` and the `dashboard` command.

use serde::{Deserialize, Serialize};

use crate::directory::Directory;
use crate::progress::Tracked;

/// The default page size, and the largest.
pub const DEFAULT_LIMIT: usize = 100;
/// See [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: usize = 10_000;

/// The order of the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// By source and id (stable: the default, for paging).
    #[default]
    Key,
    /// Most behind their period's pace first.
    Behind,
    /// Most recently updated first.
    Updated,
    /// By title.
    Title,
}

/// What the read model keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `objective`.
    Objective,
    /// `key_result`.
    KeyResult,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Objective => "objective",
            Kind::KeyResult => "key_result",
        }
    }
}

/// `GET /api/progress`'s query string.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Query {
    /// Only this source (kept as text: names in a query string are anyone's to make
    /// up, and are not stored as sources).
    pub source: Option<String>,
    /// Only this provider status (case, `_` and `-` aside: `at risk` is `AT_RISK`).
    pub status: Option<String>,
    /// Only those with this alert rule holding (`behind_pace`, `low`, ...).
    pub rule: Option<okr_core::rules::Rule>,
    /// Only objectives or only key results.
    pub kind: Option<Kind>,
    /// Only titles containing this, case aside.
    pub q: Option<String>,
    /// Only those whose owner is in this department (case aside; `-`: no department
    /// known).
    pub department: Option<String>,
    /// Only those whose owner's team lead is this person (their name or work email,
    /// case aside; `-`: no team lead known).
    pub team_lead: Option<String>,
    /// The order.
    pub sort: Sort,
    /// Include deleted entities.
    pub include_deleted: bool,
    /// Skip this many (the previous page's `next_offset`).
    pub offset: usize,
    /// At most this many ([`DEFAULT_LIMIT`]; at most [`MAX_LIMIT`]).
    pub limit: Option<usize>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// The dashboard's token, when not sent as a bearer token.
    pub token: Option<String>,
}

/// One page of records.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Records matching, in all.
    pub total: usize,
    /// Where this page starts.
    pub offset: usize,
    /// The `offset` of the next page, if there is one.
    pub next_offset: Option<usize>,
    /// This page.
    pub items: Vec<Row>,
}

/// A record as the API gives it: the read model's, with its owner's place in the
/// directory.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The record.
    #[serde(flatten)]
    pub record: Tracked,
    /// Whom it belongs to: the directory's name for its owner, else the owner as the
    /// provider named them ([`Tracked::owner`]).
    pub owner: Option<String>,
    /// The owner's manager, by name.
    pub team_lead: Option<String>,
    /// The owner's department.
    pub department: Option<String>,
}

impl Row {
    /// `record` with its owner looked up in `directory`.
    pub fn of(record: Tracked, directory: &Directory) -> Row {
        let owner = record.owner();
        let person = owner
            .as_ref()
            .and_then(|o| directory.resolve(o))
            .map(|(p, _)| p);
        let team_lead = person
            .and_then(|p| directory.team_lead(&p.key()))
            .map(|lead| lead.name);
        Row {
            owner: person
                .map(|p| p.label().to_owned())
                .or_else(|| owner.map(|o| o.label().to_owned())),
            team_lead,
            department: person.and_then(|p| p.person.department.clone()),
            record,
        }
    }
}

/// Whether `value` is what a filter asks for (`-`: nothing known), case aside.
fn is(filter: &Option<String>, value: Option<&str>) -> bool {
    match filter.as_deref().map(str::trim) {
        None | Some("") => true,
        Some("-") => value.is_none(),
        Some(wanted) => value.is_some_and(|v| v.to_lowercase() == wanted.to_lowercase()),
    }
}

fn words(text: &str) -> String {
    text.trim().to_lowercase().replace(['_', '-'], " ")
}

impl Query {
    /// Whether `record` passes the filters.
    pub fn matches(&self, record: &Tracked) -> bool {
        (self.include_deleted || !record.deleted)
            && self
                .source
                .as_deref()
                .is_none_or(|s| s == record.source.as_str())
            && self.kind.is_none_or(|k| k.as_str() == record.kind)
            && self.rule.is_none_or(|r| record.rules.contains(&r))
            && self.status.as_ref().is_none_or(|status| {
                record
                    .status
                    .as_deref()
                    .is_some_and(|s| words(s) == words(status))
            })
            && self.q.as_ref().is_none_or(|q| {
                let q = q.to_lowercase();
                record
                    .title
                    .as_deref()
                    .is_some_and(|t| t.to_lowercase().contains(&q))
            })
    }

    /// Why the query cannot be answered: a `limit` out of range, an unknown `format`.
    pub fn problem(&self) -> Option<&'static str> {
        if self.limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
            return Some("limit is from 1 to 10000");
        }
        match self.format.as_deref() {
            None | Some("json" | "csv") => None,
            Some(_) => Some("format is json or csv"),
        }
    }

    /// Whether `row` passes the filters on the owner's place (department, team lead).
    fn matches_people(&self, row: &Row, directory: &Directory) -> bool {
        let lead_email = || {
            row.record
                .owner()
                .and_then(|o| directory.resolve(&o))
                .and_then(|(p, _)| directory.team_lead(&p.key()))
                .and_then(|lead| lead.email)
        };
        is(&self.department, row.department.as_deref())
            && (is(&self.team_lead, row.team_lead.as_deref())
                || (self.team_lead.as_deref().is_some_and(|t| t.contains('@'))
                    && is(&self.team_lead, lead_email().as_deref())))
    }

    /// The page of `records` this query asks for, each with its owner's place in
    /// `directory`.
    pub fn page(&self, records: Vec<Tracked>, directory: &Directory) -> Page {
        let mut matching: Vec<Row> = records
            .into_iter()
            .filter(|r| self.matches(r))
            .map(|r| Row::of(r, directory))
            .filter(|row| self.matches_people(row, directory))
            .collect();
        let key = |row: &Row| row.record.key();
        match self.sort {
            Sort::Key => matching.sort_by_key(key),
            Sort::Behind => matching.sort_by(|a, b| {
                (b.record.behind())
                    .total_cmp(&a.record.behind())
                    .then_with(|| key(a).cmp(&key(b)))
            }),
            Sort::Updated => matching.sort_by(|a, b| {
                (b.record.updated_at)
                    .cmp(&a.record.updated_at)
                    .then_with(|| key(a).cmp(&key(b)))
            }),
            Sort::Title => matching.sort_by(|a, b| {
                let title = |row: &Row| row.record.title.as_deref().unwrap_or("").to_lowercase();
                title(a).cmp(&title(b)).then_with(|| key(a).cmp(&key(b)))
            }),
        }
        let total = matching.len();
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let items: Vec<Row> = matching.into_iter().skip(self.offset).take(limit).collect();
        let end = self.offset.saturating_add(items.len());
        Page {
            total,
            offset: self.offset,
            next_offset: (end < total).then_some(end),
            items,
        }
    }
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 18] = [
    "source",
    "id",
    "kind",
    "title",
    "objective_id",
    "progress",
    "status",
    "rules",
    "completed",
    "deleted",
    "period_start",
    "period_due",
    "updated_at",
    "updated_by",
    "version",
    "owner",
    "team_lead",
    "department",
];

/// A text field as a spreadsheet will not run it: one starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return (a formula, in Excel, LibreOffice and Google Sheets) gets
/// a leading `'`. Titles and names come from the providers' webhooks.
fn inert(text: String) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text,
    }
}

/// `page` as CSV (RFC 4180: fields with commas, quotes or line breaks quoted), a header
/// first; rules joined by `;`, times in RFC 3339; text that a spreadsheet would read as
/// a formula prefixed with `'` ([`inert`]).
pub fn to_csv(page: &Page) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_COLUMNS)?;
    let time = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    for row in &page.items {
        let r = &row.record;
        let rules: Vec<&str> = r.rules.iter().map(|rule| rule.as_str()).collect();
        writer.write_record([
            r.source.as_str().to_owned(),
            inert(r.id.clone()),
            r.kind.clone(),
            inert(r.title.clone().unwrap_or_default()),
            inert(r.objective_id.clone().unwrap_or_default()),
            r.progress.map(|p| p.to_string()).unwrap_or_default(),
            inert(r.status.clone().unwrap_or_default()),
            rules.join(";"),
            r.completed.to_string(),
            r.deleted.to_string(),
            r.period.map(|p| time(p.start)).unwrap_or_default(),
            r.period.map(|p| time(p.due)).unwrap_or_default(),
            time(r.updated_at),
            inert(r.updated_by.clone().unwrap_or_default()),
            r.version.to_string(),
            inert(row.owner.clone().unwrap_or_default()),
            inert(row.team_lead.clone().unwrap_or_default()),
            inert(row.department.clone().unwrap_or_default()),
        ])?;
    }
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
