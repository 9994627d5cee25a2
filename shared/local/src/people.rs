//! The warehouse's `people` table in `serve`: the directory's snapshot for the day
//! (UTC) when `serve` starts, and again just after each midnight UTC, under
//! `<data-dir>/warehouse/people/v1/`, as the `people-snapshot` function writes it on
//! AWS.

use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch;

use okr_consumers::directory::DirectoryStore;
use okr_consumers::warehouse::local::LocalSink;
use okr_consumers::warehouse::people::snapshot;

/// When the snapshot after `now` is written: five minutes past the next midnight UTC,
/// as the function's schedule has it.
pub fn next_run(now: OffsetDateTime) -> OffsetDateTime {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    let tomorrow = today.next_day().unwrap_or(today);
    tomorrow.midnight().assume_utc() + time::Duration::minutes(5)
}

/// Write the day's snapshot now and after each midnight UTC, until `stop`; a failed
/// write is said through `announce` and tried at the next run.
pub async fn daily(
    directory: Arc<dyn DirectoryStore>,
    warehouse: PathBuf,
    mut stop: watch::Receiver<bool>,
    announce: impl Fn(String) + Send + 'static,
) {
    let sink = LocalSink::new(&warehouse);
    loop {
        let now = OffsetDateTime::now_utc();
        if let Err(error) = snapshot(directory.as_ref(), &sink, now.date()).await {
            announce(format!(
                "people snapshot: not written: {}",
                okr_core::error_chain(&error)
            ));
        }
        let wait = (next_run(now) - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_next_snapshot_is_just_after_the_next_midnight_utc() {
        assert_eq!(
            next_run(datetime!(2026-12-06 01:10 UTC)),
            datetime!(2026-12-07 00:05 UTC)
        );
        assert_eq!(
            next_run(datetime!(2026-12-06 23:59:59 +01:00)),
            datetime!(2026-12-07 00:05 UTC),
            "22:59 UTC"
        );
        assert_eq!(
            next_run(datetime!(2026-12-31 00:04 UTC)),
            datetime!(2027-01-01 00:05 UTC)
        );
    }
}
