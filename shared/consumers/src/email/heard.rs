//! Which run each recipient last heard: the run whose summary was last delivered to
//! them, kept per recipient in a state record (`summary-state:heard:<recipient id>`,
//! the run's Unix time). A recipient's "moved" and "completed" are measured from that
//! run's state, so a summary that was not delivered (the server down, a 4xx, SES
//! unavailable, the run out of time) leaves its news for the next one that is, and
//! recipients who heard the same run share its state.

use std::time::Duration;

use time::OffsetDateTime;

use okr_pipeline::idempotency::{IdempotencyError, StateStore, update_state};

/// As long as a run's state is kept: a recipient's record points at one.
const KEEP: Duration = Duration::from_secs(400 * 24 * 3600);

fn key(recipient: &str) -> String {
    format!("summary-state:heard:{recipient}")
}

/// The run (Unix seconds) whose summary `recipient` (an id) was last delivered, if any
/// was recorded.
pub async fn last(
    store: &dyn StateStore,
    recipient: &str,
) -> Result<Option<i64>, IdempotencyError> {
    let stored = store
        .load_state(&key(recipient), OffsetDateTime::now_utc())
        .await?;
    Ok(stored.and_then(|s| s.value.parse().ok()))
}

/// Record that `recipient` was delivered the run at `run`, unless a later run's
/// delivery is recorded already (a late retry of an older run never moves it back).
pub async fn delivered(
    store: &dyn StateStore,
    recipient: &str,
    run: i64,
) -> Result<(), IdempotencyError> {
    let later = |value: &str| value.parse::<i64>().is_ok_and(|heard| heard >= run);
    update_state(
        store,
        (&key(recipient), KEEP),
        |stored| (!stored.is_some_and(later)).then(|| run.to_string()),
        "a recipient's record of the last summary kept changing; retry later",
    )
    .await
}
