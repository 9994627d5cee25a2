//! The state at the previous summary: each objective's and key result's progress and
//! completion when that summary was made, kept (gzip, base64) in one state record per
//! run, so "moved" and "completed" mean what changed since the recipients last heard,
//! whatever times the providers stamped on their events.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::idempotency::{IdempotencyError, IdempotencyStore, StateWrite};
use crate::progress::Tracked;

/// How long a run's state is kept: the next run needs it.
const KEEP: Duration = Duration::from_secs(400 * 24 * 3600);

/// What one record was at a summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// Progress.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// Completed.
    #[serde(rename = "c", default, skip_serializing_if = "std::ops::Not::not")]
    pub completed: bool,
}

/// Every record's state at one summary, by read-model key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline(pub HashMap<String, Seen>);

impl Baseline {
    /// The state of `records` now (deleted ones left out).
    pub fn of(records: &[Tracked]) -> Baseline {
        Baseline(
            records
                .iter()
                .filter(|t| !t.deleted)
                .map(|t| {
                    let seen = Seen {
                        progress: t.progress,
                        completed: t.completed,
                    };
                    (t.key(), seen)
                })
                .collect(),
        )
    }

    fn encode(&self) -> Result<String, IdempotencyError> {
        let json = serde_json::to_vec(self).map_err(|e| IdempotencyError(e.into()))?;
        let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
        gzip.write_all(&json)
            .and_then(|()| gzip.finish())
            .map(|bytes| STANDARD.encode(bytes))
            .map_err(|e| IdempotencyError(e.into()))
    }

    fn decode(text: &str) -> Option<Baseline> {
        let bytes = STANDARD.decode(text).ok()?;
        let mut json = Vec::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut json)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

fn key(run: OffsetDateTime) -> String {
    format!("summary-state:baseline:{}", run.unix_timestamp())
}

/// The state kept at the run at `run`, if any.
pub async fn load(
    store: &dyn IdempotencyStore,
    run: OffsetDateTime,
) -> Result<Option<Baseline>, IdempotencyError> {
    let stored = store
        .load_state(&key(run), OffsetDateTime::now_utc())
        .await?;
    Ok(stored.and_then(|s| Baseline::decode(&s.value)))
}

/// Keep `baseline` as the run at `run`'s, unless a try of that run kept one already
/// (a retry then compares with what the first try saw).
pub async fn keep(
    store: &dyn IdempotencyStore,
    run: OffsetDateTime,
    baseline: &Baseline,
) -> Result<(), IdempotencyError> {
    let value = baseline.encode()?;
    let now = OffsetDateTime::now_utc();
    let key = key(run);
    if store.load_state(&key, now).await?.is_some() {
        return Ok(());
    }
    store
        .save_state(&StateWrite {
            key: &key,
            expected: None,
            value: &value,
            now,
            keep: KEEP,
        })
        .await?;
    Ok(())
}
