//! The archive a replay reads: the warehouse's layout
//! (`<root>/events/v1/date=YYYY-MM-DD/part-*.ndjson.gz`) in a local directory or under
//! an S3 prefix. Only the partitions inside the window are listed and read, one object
//! at a time.

use std::path::PathBuf;

use async_trait::async_trait;
use time::Date;
use time::macros::format_description;

use crate::warehouse::LAYOUT_PREFIX;

/// The archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Nothing in the warehouse's layout is there.
    #[error("no archive at {0} (nothing under {LAYOUT_PREFIX}/)")]
    Missing(String),
    /// A listing or a read failed.
    #[error("reading {what} failed")]
    Read {
        /// The object or partition.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub fn read_failed(
    what: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> ArchiveError {
    ArchiveError::Read {
        what: what.into(),
        source: source.into(),
    }
}

/// Where archived objects are.
#[async_trait]
pub trait Archive: Send + Sync {
    /// The partitions' dates from `first` to `last` (either open), in order.
    async fn dates(
        &self,
        first: Option<Date>,
        last: Option<Date>,
    ) -> Result<Vec<Date>, ArchiveError>;
    /// The keys of `date`'s objects, in order (relative to the archive's root).
    async fn objects(&self, date: Date) -> Result<Vec<String>, ArchiveError>;
    /// One object (gzip NDJSON).
    async fn get(&self, key: &str) -> Result<Vec<u8>, ArchiveError>;
}

/// The date of a `date=YYYY-MM-DD` partition name.
pub fn partition_date(name: &str) -> Option<Date> {
    let day = name.strip_prefix("date=")?.trim_end_matches('/');
    Date::parse(day, format_description!("[year]-[month]-[day]")).ok()
}

pub fn partition(date: Date) -> String {
    format!(
        "{LAYOUT_PREFIX}/date={}",
        date.format(format_description!("[year]-[month]-[day]"))
            .unwrap_or_default()
    )
}

pub fn within(date: Date, first: Option<Date>, last: Option<Date>) -> bool {
    first.is_none_or(|first| date >= first) && last.is_none_or(|last| date <= last)
}

/// An archive in a local directory (`serve`'s `warehouse/`).
pub struct LocalArchive {
    root: PathBuf,
}

impl LocalArchive {
    /// The archive under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalArchive { root: root.into() }
    }
}

#[async_trait]
impl Archive for LocalArchive {
    async fn dates(
        &self,
        first: Option<Date>,
        last: Option<Date>,
    ) -> Result<Vec<Date>, ArchiveError> {
        let layout = self.root.join(LAYOUT_PREFIX);
        let entries = std::fs::read_dir(&layout)
            .map_err(|_| ArchiveError::Missing(self.root.display().to_string()))?;
        let mut dates: Vec<Date> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str().and_then(partition_date))
            .filter(|date| within(*date, first, last))
            .collect();
        dates.sort();
        Ok(dates)
    }

    async fn objects(&self, date: Date) -> Result<Vec<String>, ArchiveError> {
        let prefix = partition(date);
        let entries = std::fs::read_dir(self.root.join(&prefix))
            .map_err(|e| read_failed(prefix.clone(), e))?;
        let mut keys: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".ndjson.gz") && !name.starts_with('.'))
            .map(|name| format!("{prefix}/{name}"))
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, ArchiveError> {
        let path = self.root.join(key);
        tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| read_failed(key, e))?
            .map_err(|e| read_failed(key, e))
    }
}
