//! Replay: re-send archived events (the warehouse, by date) to the consumers' queues,
//! by time window and filter, at a set rate, resumable.
//!
//! Each replayed event carries its replay's name (`Event::replay`, and the messages'
//! `replay` attribute). By default the consumers' own idempotency decides what goes out,
//! so only what was never posted or alerted is (gap-filling); `forced`, their keys are
//! scoped to the replay's name, so everything selected goes out once more, once per
//! name. The warehouse writes replayed events as a separate object set under
//! `replays/<name>/`, never into the table's own partitions.
//!
//! The archive is read partition by partition, object by object, line by line; copies
//! of one event (the archive can hold several) are sent once, and a line that is not an
//! event is counted and reported by its object and line, and the replay goes on.

pub mod archive;
pub mod checkpoint;
mod keep;
mod run;
pub mod select;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use archive::{Archive, ArchiveError};
use checkpoint::{Checkpoint, Position};
use okr_core::routing::{Consumer, NotifyRules};
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::queue::{EventQueue, QueueError};
use run::Run;
use select::{Filter, Selection};

/// Events sent to the queues at once (one commit of `serve`'s queues; SQS batches of 10
/// within).
const BATCH: usize = 2000;
/// Bad lines listed by place in a summary (the rest are counted).
const BAD_LINES_LISTED: usize = 20;

/// What a replay does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Its name: in the events it sends, its checkpoint, and (forced) the consumers' keys.
    pub name: String,
    /// What it takes from the archive.
    pub selection: Selection,
    /// The consumers it sends to.
    pub targets: Vec<Consumer>,
    /// Send every selected event to Slack, not only the types it notifies.
    pub all_types: bool,
    /// Send again what was already posted or alerted (once per name).
    pub force: bool,
    /// At most this many events a second.
    pub rate: Option<f64>,
    /// Where it reads (a directory or `s3://bucket/prefix`) and the SQS queues it sends
    /// to (`CONSUMER=URL`; none: `serve`'s), as given, so `--resume` reads and sends the
    /// same.
    pub archive: String,
    /// See `archive`.
    #[serde(default)]
    pub queue_urls: Vec<String>,
    /// The one subscription it sends to (`--to subscription:NAME`), through the
    /// subscriptions queue, whatever ingest's routing.
    #[serde(default)]
    pub subscription: Option<String>,
}

pub use okr_core::event::check_replay_name as check_name;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The archive could not be read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A queue did not take a send (the checkpoint says where to resume).
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The checkpoint could not be written.
    #[error("could not write the checkpoint: {0}")]
    Checkpoint(#[source] std::io::Error),
}

/// Where a replay sends.
pub enum Target<'a> {
    /// Nowhere: count what it would send, and (with the idempotency store) what the
    /// Slack notifier already posted.
    DryRun(Option<&'a dyn IdempotencyStore>),
    /// The consumers' queues, saving the checkpoint after each send.
    Queues {
        /// The queues.
        queue: &'a dyn EventQueue,
        /// The checkpoint's file.
        checkpoint: &'a checkpoint::CheckpointFile,
    },
}

/// What a replay found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Objects in the window.
    pub objects: usize,
    /// Objects read (in this run).
    pub objects_read: usize,
    /// Distinct events selected.
    pub selected: u64,
    /// Further copies of selected events, not sent again.
    pub copies: u64,
    /// Selected events no target takes (a type Slack does not notify, an event without
    /// progress or status for the alerts).
    pub not_routed: u64,
    /// Events sent (or, in a dry run, that would be).
    pub sent: u64,
    /// Messages the queues already held from this replay (sent before an interruption),
    /// not queued twice.
    pub already_queued: u64,
    /// Dry run: of those for Slack, posted already (the notifier will skip them).
    pub already_posted: u64,
    /// Selected events by day (of the window's time), source and type.
    pub by_day: BTreeMap<(String, String, String), u64>,
    /// Lines that are not events.
    pub bad_lines: u64,
    /// The first of them: object key and line number (1 for the first line).
    pub bad_places: Vec<(String, usize)>,
}

impl Summary {
    fn bad(&mut self, key: &str, line: usize) {
        self.bad_lines += 1;
        if self.bad_places.len() < BAD_LINES_LISTED {
            self.bad_places.push((key.to_owned(), line));
        }
    }
}

/// How far a replay is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Objects done, of `objects`.
    pub done: usize,
    /// Objects in the window.
    pub objects: usize,
    /// Events sent so far.
    pub sent: u64,
}

/// Run `plan` over `archive` to `target`, routing as ingest does with `rules` (the Slack
/// notify list), from after `resume`'s place when given, telling `progress` after each
/// object.
pub async fn replay(
    plan: &Plan,
    rules: &NotifyRules,
    archive: &dyn Archive,
    target: Target<'_>,
    resume: Option<&Checkpoint>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Summary, ReplayError> {
    let filter = Filter::new(&plan.selection);
    let (first, last) = filter.dates();
    let mut objects = Vec::new();
    for date in archive.dates(first, last).await? {
        for key in archive.objects(date).await? {
            objects.push((date, key));
        }
    }
    let every_type = NotifyRules::parse("*");
    let rules = if plan.all_types { &every_type } else { rules };
    let mut run = Run::new(plan, rules, filter, target, objects.len(), resume);
    let resume = resume.and_then(|c| c.at.clone());
    for (done, (date, key)) in objects.iter().enumerate() {
        let skip = match &resume {
            Some(at) if key.as_str() < at.key.as_str() => continue,
            Some(at) if *key == at.key => at.line,
            _ => 0,
        };
        run.seen.enter(*date);
        run.object(key, &archive.get(key).await?, skip).await?;
        progress(Progress {
            done: done + 1,
            objects: objects.len(),
            sent: run.summary.sent,
        });
    }
    let end = objects.last().map(|(_, key)| Position {
        key: key.clone(),
        line: usize::MAX,
    });
    run.finish(end).await
}
