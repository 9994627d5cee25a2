//! The warehouse sink: every event, as gzip NDJSON objects in Hive-style date
//! partitions, in S3 or a local directory.
//!
//! Layout: `events/v1/date=YYYY-MM-DD/part-<first received_at>-<hash>.ndjson.gz`, one
//! normalized event per line, partitioned by the UTC date of `received_at`. One batch
//! writes one object per date it holds (almost always one). The name is derived from
//! the batch's message ids, so a redelivered batch overwrites its own object instead of
//! adding a copy; duplicates that remain (a provider retry, a partly failed batch) share
//! an event id and are removed on read.
//!
//! Beside the events, [`people`] writes the directory as the `people` table, one
//! snapshot a day.

pub mod local;
pub mod memory;
mod ndjson;
pub mod people;
mod url;

pub use ndjson::NdjsonGz;
pub use url::WarehouseUrl;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Iso8601;
use time::{Date, OffsetDateTime};

use okr_pipeline::batch::{BatchFailure, BatchReport};
use okr_pipeline::breaker::{Breaker, BreakerConfig, BreakerOpen, Outcome};
use okr_pipeline::idempotency::StateStore;
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::journal::{Journal, Journey};
use okr_pipeline::metrics::{MetricsSink, NoMetrics};
use okr_pipeline::retry::{Failure, Retries};

/// The prefix of every object, with the schema version.
pub const LAYOUT_PREFIX: &str = "events/v1";

/// Where objects are written: S3, a local directory, or memory in tests.
#[async_trait]
pub trait ObjectSink: Send + Sync {
    /// Store `body` at `key` (relative to the sink's root), whole or not at all.
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), SinkError>;
}

/// A write that did not happen.
#[derive(Debug, thiserror::Error)]
#[error("writing {key} failed")]
pub struct SinkError {
    /// The object's key.
    pub key: String,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Where a replay's events go: `replays/<name>/events/v1/...`, apart from the table's
/// partitions, so a replay never doubles its rows.
pub const REPLAYS_PREFIX: &str = "replays";

/// The replay (if any) and date a batch's events share.
type Place = (Option<String>, Date);

/// The events of one batch that share a place.
#[derive(Default)]
struct Partition {
    ndjson: NdjsonGz,
    message_ids: Vec<String>,
    first_received: Option<OffsetDateTime>,
}

/// The key of a batch's object for `date`: its earliest `received_at` (so names sort by
/// time) and a hash of its message ids (so each batch has its own name, and the same
/// batch delivered again has the same one).
pub fn object_key(date: Date, first_received: OffsetDateTime, message_ids: &[String]) -> String {
    let mut sorted: Vec<&String> = message_ids.iter().collect();
    sorted.sort();
    let mut hash = Sha256::new();
    for id in sorted {
        hash.update(id.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let stamp = first_received
        .checked_to_offset(time::UtcOffset::UTC)
        .unwrap_or(first_received)
        .format(&time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let day = date.format(&Iso8601::DATE).unwrap_or_default();
    format!(
        "{LAYOUT_PREFIX}/date={day}/part-{stamp}-{}.ndjson.gz",
        hex::encode(&digest[..8])
    )
}

/// The warehouse sink handler.
pub struct WarehouseSink {
    sink: Arc<dyn ObjectSink>,
    retries: Retries,
    breaker: Arc<Breaker>,
    metrics: Arc<dyn MetricsSink>,
    journey: Journey,
}

/// The sink's name in metrics.
const SERVICE: &str = "warehouse-sink";
/// Its destination's name, in its circuit breaker.
const DESTINATION: &str = okr_pipeline::breaker::WAREHOUSE;

impl WarehouseSink {
    /// A sink writing through `sink`, with a circuit breaker of its own (see
    /// [`WarehouseSink::breaking`] to share it).
    pub fn new(sink: Arc<dyn ObjectSink>) -> Self {
        let store = Arc::new(MemoryIdempotencyStore::default());
        WarehouseSink {
            sink,
            retries: Retries::default(),
            breaker: BreakerConfig::default().breaker(DESTINATION, store),
            metrics: Arc::new(NoMetrics),
            journey: Journey::logged(okr_core::routing::Consumer::Warehouse.as_str()),
        }
    }

    /// Record each event's steps in `journal` (by default, as log lines).
    pub fn journaling(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journey = self.journey.writing_to(journal);
        self
    }

    /// Make its circuit breaker by `config`, its state shared through `store`, and
    /// record what each batch saw of it in `metrics`.
    pub fn breaking(
        mut self,
        config: &BreakerConfig,
        store: Arc<dyn StateStore>,
        metrics: Arc<dyn MetricsSink>,
    ) -> Self {
        self.breaker = config.breaker(DESTINATION, store);
        self.metrics = metrics;
        self
    }

    /// Its circuit breaker.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// Set when failed records are seen again.
    pub fn retrying(mut self, retries: Retries) -> Self {
        self.retries = retries;
        self
    }

    /// Write one SQS batch. A record that does not decode fails alone; a failed write
    /// fails every record of that object; the others are acknowledged once written.
    pub async fn handle(&self, batch: SqsEvent) -> Result<SqsBatchResponse, BatchFailure> {
        let mut report = BatchReport::new(&batch, &self.journey);
        let mut partitions: BTreeMap<Place, Partition> = BTreeMap::new();
        // Records are consumed one by one: each body is dropped once it is compressed.
        for message in batch.records {
            let Some(message_id) = message.message_id.clone() else {
                // Cannot be acknowledged individually, so it must not be either.
                report.fail(None, Failure::Refused);
                continue;
            };
            let Some(event) = report.decode(&message) else {
                continue;
            };
            let Some(received) = okr_core::event::utc(event.received_at) else {
                tracing::error!(message_id = %message_id, "received_at is out of range");
                report.fail(Some(&message_id), Failure::Refused);
                continue;
            };
            let replay = event.replay.as_ref().map(|mark| mark.name.clone());
            if let Some(Err(error)) = replay.as_deref().map(okr_core::event::check_replay_name) {
                tracing::error!(message_id = %message_id, error = %error, "the event's replay name cannot name objects");
                report.fail(Some(&message_id), Failure::Refused);
                continue;
            }
            let partition = partitions.entry((replay, received.date())).or_default();
            if let Err(error) = partition.ndjson.push(&event) {
                tracing::error!(message_id = %message_id, error = %error, "could not encode the event");
                report.fail(Some(&message_id), Failure::Refused);
                continue;
            }
            partition.message_ids.push(message_id);
            partition.first_received = Some(
                partition
                    .first_received
                    .map_or(received, |t| t.min(received)),
            );
        }

        if partitions.is_empty() {
            return report.finish(&self.retries, None).await;
        }
        let deferred = self.write_all(partitions, &mut report).await;
        self.metrics
            .breaker(SERVICE, &self.breaker.metric(deferred));
        // No deadline: the write ends within 40 s of 60, each deferral within 5 s.
        report.finish(&self.retries, None).await
    }

    /// Write each partition's object, unless the breaker holds them all back; fail the
    /// records of those not written. Returns how many records the breaker held back.
    async fn write_all(
        &self,
        partitions: BTreeMap<Place, Partition>,
        report: &mut BatchReport,
    ) -> usize {
        let mut deferred = 0;
        if let Some(open) = self.breaker.holding(None).await {
            // The bucket is down: nothing is written; each record waits its turn.
            tracing::info!(
                open_for_s = open.open_for.as_secs(),
                outcome = "deferred",
                "the warehouse's circuit breaker is open; not writing now"
            );
            for id in partitions.values().flat_map(|p| &p.message_ids) {
                report.fail_because(
                    Some(id),
                    Failure::HeldBack,
                    "the warehouse's circuit breaker is open".into(),
                );
                deferred += 1;
            }
            return deferred;
        }
        let writes = partitions
            .into_iter()
            .map(|(place, partition)| self.write(place, partition));
        for (written, key, message_ids) in futures::future::join_all(writes).await {
            let Err(error) = written else {
                for id in &message_ids {
                    report.done(Some(id), "stored", key.clone());
                }
                continue;
            };
            let (failure, why) = if error.source.is::<BreakerOpen>() {
                deferred += message_ids.len();
                (Failure::HeldBack, "the warehouse's circuit breaker is open")
            } else {
                (Failure::Transient, "the warehouse write failed")
            };
            for id in &message_ids {
                report.fail_because(Some(id), failure, why.into());
            }
        }
        deferred
    }

    /// Write one partition's object through the breaker; its key and message ids either
    /// way.
    async fn write(
        &self,
        (replay, date): Place,
        partition: Partition,
    ) -> (Result<(), SinkError>, String, Vec<String>) {
        let first = partition
            .first_received
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let key = object_key(date, first, &partition.message_ids);
        let key = match replay {
            Some(name) => format!("{REPLAYS_PREFIX}/{name}/{key}"),
            None => key,
        };
        let lines = partition.ndjson.lines();
        let result = match partition.ndjson.finish() {
            Ok(body) => match self
                .breaker
                .call(None, async {
                    let put = self.sink.put(&key, body).await;
                    // Any failed write counts: the sinks do not tell an answer from none.
                    let outcome = match put {
                        Ok(()) => Outcome::Answered,
                        Err(_) => Outcome::Unanswered,
                    };
                    (put, outcome)
                })
                .await
            {
                Ok(put) => put,
                Err(open) => Err(SinkError {
                    key: key.clone(),
                    source: Box::new(open),
                }),
            },
            Err(error) => Err(SinkError {
                key: key.clone(),
                source: Box::new(error),
            }),
        };
        match &result {
            Ok(()) => tracing::info!(key = %key, events = lines, "warehouse object written"),
            Err(error) if error.source.is::<BreakerOpen>() => {
                tracing::info!(key = %key, events = lines, outcome = "deferred", "the warehouse's circuit breaker is open; not writing now")
            }
            Err(error) => {
                tracing::error!(key = %key, events = lines, error = %okr_core::error_chain(error), "warehouse write failed")
            }
        }
        (result, key, partition.message_ids)
    }
}
