//! Each event's journey: one [`Step`] for each thing that happened to it on its way
//! (ingest enqueued it; a consumer posted it, skipped it and why, deferred it by the
//! retry schedule, held it while a breaker was open, gave it up to the dead-letter
//! queue; each marked with the replay that sent it again, if one did), with its time and
//! the attempt (the queue's receive count).
//!
//! A step names no person and holds no secret: outcomes are fixed words, details name
//! queues, destinations, rules, objects and recipients' ids, never an address or an
//! error's text beyond a destination's status and code. Recording is best effort: a journal that cannot write says so in the
//! log and the work goes on (a journey is a view of the work, never a reason to redo it).
//!
//! On AWS the journal is the log ([`LogJournal`], the default): one structured line per
//! step, which CloudWatch Logs Insights finds by event id. `serve` keeps steps in
//! SQLite beside the delivery log.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use okr_core::event::Event;

/// One thing that happened to an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The event.
    pub event_id: String,
    /// Who: `ingest`, or a consumer (`warehouse`, `slack`, `alerts`, `progress`).
    pub consumer: String,
    /// What, in one word: `enqueued`, `duplicate`, `posted`, `skipped`, `stored`,
    /// `applied`, `opened`, `resolved`, `judged`, `retry`, `held`, `refused`,
    /// `dead_lettered`.
    pub outcome: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The attempt: the queue's receive count (1 for the first), 1 outside a queue.
    pub attempt: u32,
    /// Why, or where to: a rule, a destination, an object key, a wait. Never personal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The replay that sent the event again, when this step is of a replayed copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
}

/// Where steps are kept.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Keep `steps`, best effort (see the module's documentation).
    async fn append(&self, steps: Vec<Step>);
}

/// The journal of the Lambda functions: one structured log line per step (target
/// `journey`, message `journey step`), with the step's fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogJournal;

#[async_trait]
impl Journal for LogJournal {
    async fn append(&self, steps: Vec<Step>) {
        for step in steps {
            tracing::info!(
                target: "journey",
                event_id = %step.event_id,
                consumer = %step.consumer,
                outcome = %step.outcome,
                attempt = step.attempt,
                detail = %step.detail,
                replay = step.replay.as_deref().unwrap_or(""),
                "journey step"
            );
        }
    }
}

/// Steps in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryJournal {
    steps: Mutex<Vec<Step>>,
}

impl MemoryJournal {
    /// Every step of `event_id`, in the order recorded.
    pub fn journey(&self, event_id: &str) -> Vec<Step> {
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        steps
            .iter()
            .filter(|s| s.event_id == event_id)
            .cloned()
            .collect()
    }

    /// Every step, in the order recorded.
    pub fn all(&self) -> Vec<Step> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn append(&self, steps: Vec<Step>) {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(steps);
    }
}

/// One consumer's handle on the journal: who it is, and where its steps go.
#[derive(Clone)]
pub struct Journey {
    consumer: &'static str,
    journal: Arc<dyn Journal>,
}

impl std::fmt::Debug for Journey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journey")
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl Journey {
    /// `consumer`'s steps, into `journal`.
    pub fn new(consumer: &'static str, journal: Arc<dyn Journal>) -> Self {
        Journey { consumer, journal }
    }

    /// `consumer`'s steps, as log lines ([`LogJournal`]).
    pub fn logged(consumer: &'static str) -> Self {
        Journey::new(consumer, Arc::new(LogJournal))
    }

    /// The same consumer's steps into `journal`.
    pub fn writing_to(&self, journal: Arc<dyn Journal>) -> Self {
        Journey::new(self.consumer, journal)
    }

    /// Who it records for.
    pub fn consumer(&self) -> &'static str {
        self.consumer
    }

    /// A step of the event `event_id` (a copy sent again by the replay `replay`), now.
    pub fn step(
        &self,
        (event_id, replay): (&str, Option<&str>),
        attempt: u32,
        outcome: &str,
        detail: String,
    ) -> Step {
        Step {
            event_id: event_id.to_owned(),
            consumer: self.consumer.to_owned(),
            outcome: outcome.to_owned(),
            time: OffsetDateTime::now_utc(),
            attempt,
            detail,
            replay: replay.map(str::to_owned),
        }
    }

    /// Record one step of `event` now.
    pub async fn record(&self, event: &Event, attempt: u32, outcome: &str, detail: String) {
        let replay = event.replay.as_ref().map(|r| r.name.as_str());
        crate::trace::outcome_here(outcome, &detail);
        let step = self.step((&event.id, replay), attempt, outcome, detail);
        self.journal.append(vec![step]).await;
    }

    /// Record `steps`.
    pub async fn record_all(&self, steps: Vec<Step>) {
        if !steps.is_empty() {
            self.journal.append(steps).await;
        }
    }
}
