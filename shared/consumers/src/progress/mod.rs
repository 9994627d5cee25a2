//! Live progress: a read model of every objective and key result, projected from the
//! events (the `progress` queue), for the dashboard and the progress API.
//!
//! Each entity, keyed by source and id, is one [`Tracked`] record. An event is applied
//! to it by [`Tracked::apply`] (the same function on AWS and in `serve`): the newest by
//! `occurred_at` (then event id) sets the state, an older one only fills the history in
//! order and what is still unknown, and one applied already changes nothing, so SQS's
//! reordering and repeats, and a rebuild from the archive, give the same state. The
//! stores write a record only over the version they read (DynamoDB: a conditional put;
//! SQLite: one transaction per batch).

pub mod feed;
mod model;
pub mod query;

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};

use crate::directory::DirectoryStore;
pub use model::{HISTORY, Point, Tracked, is_tracked_kind, key};
use okr_core::event::Event;
use okr_core::rules::Thresholds;
use okr_pipeline::batch::{BatchFailure, BatchReport};
use okr_pipeline::journal::{Journal, Journey};
use okr_pipeline::retry::{Failure, Retries};

/// A read model store failed; the text names the store, never an event's content.
#[derive(Debug, thiserror::Error)]
#[error("progress store: {0}")]
pub struct ProgressError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl ProgressError {
    /// A failure described by `text`.
    pub fn new(text: impl Into<String>) -> Self {
        ProgressError(text.into().into())
    }
}

/// Where the read model lives: DynamoDB on AWS, SQLite in `serve`.
#[async_trait]
pub trait ProgressStore: Send + Sync {
    /// Apply each event to its entity, in the order given (see [`next`]); one outcome
    /// per event: whether it changed the record.
    async fn apply(
        &self,
        events: Vec<Event>,
        thresholds: &Thresholds,
    ) -> Vec<Result<bool, ProgressError>>;

    /// Every record.
    async fn all(&self) -> Result<Vec<Tracked>, ProgressError>;

    /// The records written after `cursor` (0: every one; the cursor is the store's own,
    /// opaque), and the cursor to ask from next. A record may come twice; compare
    /// versions.
    async fn changed_since(&self, cursor: i64) -> Result<(Vec<Tracked>, i64), ProgressError>;
}

/// The record after `event`: `None` when nothing changes (not an objective or key
/// result with an id, applied already, or nothing new in it).
pub fn next(current: Option<&Tracked>, event: &Event, thresholds: &Thresholds) -> Option<Tracked> {
    match current {
        Some(current) => {
            let mut next = current.clone();
            next.apply(event, thresholds).then_some(next)
        }
        None => Tracked::first(event, thresholds),
    }
}

/// The projection consumer: each SQS batch applied to the read model, with partial
/// batch failures (a record that is not an event is refused; a store failure is retried).
pub struct ProgressProjection {
    store: Arc<dyn ProgressStore>,
    directory: Option<Arc<dyn DirectoryStore>>,
    thresholds: Thresholds,
    retries: Retries,
    journey: Journey,
}

impl ProgressProjection {
    /// The consumer over `store`, judging the alert rules by `thresholds`.
    pub fn new(store: Arc<dyn ProgressStore>, thresholds: Thresholds) -> Self {
        ProgressProjection {
            store,
            directory: None,
            thresholds,
            retries: Retries::default(),
            journey: Journey::logged(okr_core::routing::Consumer::Progress.as_str()),
        }
    }

    /// Record each event's steps in `journal` (by default, as log lines).
    pub fn journaling(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journey = self.journey.writing_to(journal);
        self
    }

    /// Also apply HR records (events with a `person`) to the directory in `store`.
    pub fn with_directory(mut self, store: Arc<dyn DirectoryStore>) -> Self {
        self.directory = Some(store);
        self
    }

    /// Set when failed records are seen again.
    pub fn retrying(mut self, retries: Retries) -> Self {
        self.retries = retries;
        self
    }

    /// Handle one SQS batch.
    pub async fn handle(&self, batch: SqsEvent) -> Result<SqsBatchResponse, BatchFailure> {
        let mut report = BatchReport::new(&batch, &self.journey);
        let mut events = Vec::with_capacity(batch.records.len());
        let mut ids = Vec::with_capacity(batch.records.len());
        for record in &batch.records {
            if let Some(event) = report.decode(record) {
                ids.push((event.id.clone(), record.message_id.clone()));
                events.push(event);
            }
        }
        // HR records go to the directory first, all or none: its store's failure
        // retries them (applying them again changes nothing).
        let people = match &self.directory {
            Some(directory) => match crate::directory::apply(directory.as_ref(), &events).await {
                Ok(applied) => {
                    if applied.changed + applied.erased > 0 {
                        tracing::info!(
                            changed = applied.changed,
                            forgotten = applied.erased,
                            "applied to the directory"
                        );
                    }
                    Ok(())
                }
                Err(error) => Err(okr_core::error_chain(&error)),
            },
            None => Ok(()),
        };
        if let Err(error) = &people {
            for (event, (event_id, id)) in events.iter().zip(&ids) {
                if event.person.is_some() {
                    tracing::warn!(event_id = %event_id, error = %error, "could not apply the HR record to the directory");
                    report.fail_because(
                        id.as_deref(),
                        Failure::Transient,
                        "the directory could not be written".into(),
                    );
                }
            }
        }
        let hr: Vec<bool> = events.iter().map(|e| e.person.is_some()).collect();
        let outcomes = self.store.apply(events, &self.thresholds).await;
        let mut changed = 0;
        for (((event_id, id), outcome), person) in ids.iter().zip(outcomes).zip(hr) {
            let directory = match person && self.directory.is_some() {
                true => "; the directory updated",
                false => "",
            };
            if person && people.is_err() {
                // Failed above: its retry applies it again.
                continue;
            }
            match outcome {
                Ok(true) => {
                    changed += 1;
                    let detail = format!("the read model changed{directory}");
                    report.done(id.as_deref(), "applied", detail);
                }
                Ok(false) => {
                    let detail = format!("nothing new for the read model{directory}");
                    report.done(id.as_deref(), "applied", detail);
                }
                Err(error) => {
                    tracing::warn!(event_id = %event_id, error = %okr_core::error_chain(&error), "could not apply the event");
                    report.fail_because(
                        id.as_deref(),
                        Failure::Transient,
                        "the read model could not be written".into(),
                    );
                }
            }
        }
        tracing::info!(
            records = batch.records.len(),
            changed,
            "applied to the read model"
        );
        report.finish(&self.retries, None).await
    }
}
