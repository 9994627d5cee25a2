//! The state at the previous summary: each objective's and key result's progress and
//! completion when that summary was made, kept (gzip, base64) in state records of the
//! idempotency store, in parts that fit a DynamoDB item, so "moved" and "completed" mean what changed since the recipients last heard,
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

use crate::progress::Tracked;
use okr_pipeline::idempotency::{IdempotencyError, StateStore, StateWrite};

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

/// Characters per state record: a DynamoDB item holds 400 KB.
const PART: usize = 300_000;

fn key(run: OffsetDateTime) -> String {
    format!("summary-state:baseline:{}", run.unix_timestamp())
}

/// What the run's record holds: the try that kept the state, and how many parts it
/// took (under keys of that try's own, so two overlapping tries never mix parts).
#[derive(Serialize, Deserialize)]
struct Manifest {
    by: String,
    parts: usize,
}

/// The state kept at the run at `run`, if any.
pub async fn load(
    store: &dyn StateStore,
    run: OffsetDateTime,
) -> Result<Option<Baseline>, IdempotencyError> {
    let now = OffsetDateTime::now_utc();
    let Some(stored) = store.load_state(&key(run), now).await? else {
        return Ok(None);
    };
    let Ok(manifest) = serde_json::from_str::<Manifest>(&stored.value) else {
        return Ok(None);
    };
    let mut text = String::new();
    for part in 0..manifest.parts {
        let part_key = format!("{}:{}:{part}", key(run), manifest.by);
        match store.load_state(&part_key, now).await? {
            Some(stored) => text.push_str(&stored.value),
            None => return Ok(None),
        }
    }
    Ok(Baseline::decode(&text))
}

/// Keep `baseline` as the run at `run`'s, unless a try of that run kept one already
/// (a retry then compares with what the first try saw): in parts of [`PART`]
/// characters under this try's own keys, then the record naming them.
pub async fn keep(
    store: &dyn StateStore,
    run: OffsetDateTime,
    baseline: &Baseline,
) -> Result<(), IdempotencyError> {
    let now = OffsetDateTime::now_utc();
    let key = key(run);
    if store.load_state(&key, now).await?.is_some() {
        return Ok(());
    }
    let value = baseline.encode()?;
    let by = format!("{:016x}", rand::random::<u64>());
    let parts: Vec<&str> = value
        .as_bytes()
        .chunks(PART)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    for (at, part) in parts.iter().enumerate() {
        let part_key = format!("{key}:{by}:{at}");
        let write = StateWrite {
            key: &part_key,
            expected: None,
            value: part,
            now,
            keep: KEEP,
        };
        if !store.save_state(&write).await? {
            return Err(IdempotencyError(
                "a part of a summaries run's state exists already; retry later".into(),
            ));
        }
    }
    let manifest = serde_json::to_string(&Manifest {
        by,
        parts: parts.len(),
    })
    .map_err(|e| IdempotencyError(e.into()))?;
    let kept = store
        .save_state(&StateWrite {
            key: &key,
            expected: None,
            value: &manifest,
            now,
            keep: KEEP,
        })
        .await?;
    if !kept {
        // Another try of this run kept its own state first: the run compares with that.
        tracing::info!("another try of this summaries run kept its state first");
    }
    Ok(())
}

/// Drop the state kept at the run at `run` (nobody measures from it any more): its
/// record and parts are rewritten empty and already expired, so they count as absent
/// at once and the store deletes them (SQLite on its next write, DynamoDB by its TTL).
pub async fn forget(store: &dyn StateStore, run: OffsetDateTime) -> Result<(), IdempotencyError> {
    let now = OffsetDateTime::now_utc();
    let key = key(run);
    let Some(stored) = store.load_state(&key, now).await? else {
        return Ok(());
    };
    if let Ok(manifest) = serde_json::from_str::<Manifest>(&stored.value) {
        for part in 0..manifest.parts {
            let part_key = format!("{key}:{}:{part}", manifest.by);
            if let Some(part) = store.load_state(&part_key, now).await? {
                expire(store, &part_key, part.version, now).await?;
            }
        }
    }
    expire(store, &key, stored.version, now).await
}

async fn expire(
    store: &dyn StateStore,
    key: &str,
    version: u64,
    now: OffsetDateTime,
) -> Result<(), IdempotencyError> {
    let write = StateWrite {
        key,
        expected: Some(version),
        value: "",
        now,
        keep: Duration::ZERO,
    };
    // Lost to another writer: that one's record stands, and a later run drops it.
    store.save_state(&write).await.map(|_| ())
}
