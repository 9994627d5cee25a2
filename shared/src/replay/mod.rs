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
pub mod select;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use tokio::time::Instant;

use crate::event::{Event, ReplayMark};
use crate::idempotency::IdempotencyStore;
use crate::queue::{EventQueue, QueueError, QueueMessage};
use crate::routing::{Consumer, NotifyRules, route};
use archive::{Archive, ArchiveError};
use checkpoint::{Checkpoint, Position};
use select::{By, Filter, Head, Selection};

/// Events sent to the queues at once (a local group commit; SQS batches of 10 within).
const BATCH: usize = 500;
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
}

/// A replay's name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let fits = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    match fits {
        true => Ok(()),
        false => Err(format!(
            "{name:?} is not a replay name: 1 to 64 letters, digits, '.', '_' or '-'"
        )),
    }
}

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

/// Event ids seen on the partition at hand and the one before: the copies of an event
/// are in its own partition or the next (a provider's retry around midnight).
#[derive(Default)]
struct Seen {
    date: Option<Date>,
    today: HashSet<String>,
    yesterday: HashSet<String>,
}

impl Seen {
    fn enter(&mut self, date: Date) {
        if self.date == Some(date) {
            return;
        }
        let next_day = self.date.and_then(Date::next_day) == Some(date);
        self.yesterday = match next_day {
            true => std::mem::take(&mut self.today),
            false => HashSet::new(),
        };
        self.today.clear();
        self.date = Some(date);
    }

    /// False when `id` was seen already.
    fn first(&mut self, id: &str) -> bool {
        !self.yesterday.contains(id) && self.today.insert(id.to_owned())
    }
}

/// Sends at most `rate` events a second, in bursts of a batch.
struct Pace {
    rate: Option<f64>,
    next: Instant,
}

impl Pace {
    async fn take(&mut self, events: usize) {
        let Some(rate) = self.rate.filter(|r| *r > 0.0) else {
            return;
        };
        let now = Instant::now();
        self.next = self.next.max(now);
        tokio::time::sleep_until(self.next).await;
        self.next += Duration::from_secs_f64(events as f64 / rate);
    }

    fn batch(&self) -> usize {
        match self.rate {
            Some(rate) if rate > 0.0 => (rate.ceil() as usize).clamp(1, BATCH),
            _ => BATCH,
        }
    }
}

/// The messages of one batch, and where in the archive it ends.
#[derive(Default)]
struct Pending {
    messages: Vec<(Consumer, QueueMessage)>,
    events: usize,
    end: Option<Position>,
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
    let sent_before = resume.map_or(0, |c| c.sent);
    let resume = resume.and_then(|c| c.at.clone());
    let filter = Filter::new(&plan.selection);
    let (first, last) = filter.dates();
    let mut objects = Vec::new();
    for date in archive.dates(first, last).await? {
        for key in archive.objects(date).await? {
            objects.push((date, key));
        }
    }
    let every_type = NotifyRules::parse("*");
    let rules = match plan.all_types {
        true => &every_type,
        false => rules,
    };
    let mut summary = Summary {
        objects: objects.len(),
        ..Summary::default()
    };
    let mut seen = Seen::default();
    let mut pace = Pace {
        rate: plan.rate,
        next: Instant::now(),
    };
    let mut pending = Pending::default();
    for (done, (date, key)) in objects.iter().enumerate() {
        let skip_lines = match &resume {
            Some(at) if key.as_str() < at.key.as_str() => continue,
            Some(at) if *key == at.key => at.line,
            _ => 0,
        };
        seen.enter(*date);
        let text = match gunzip(&archive.get(key).await?) {
            Ok(text) => text,
            Err(_) => {
                summary.bad(key, 0);
                continue;
            }
        };
        summary.objects_read += 1;
        for (index, line) in text.lines().enumerate().skip(skip_lines) {
            let number = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let Ok(head) = serde_json::from_str::<Head>(line) else {
                summary.bad(key, number);
                continue;
            };
            if !filter.matches(&head) {
                continue;
            }
            if !seen.first(&head.id) {
                summary.copies += 1;
                continue;
            }
            summary.selected += 1;
            let day = match plan.selection.by {
                By::ReceivedAt => head.received_at,
                By::OccurredAt => head.occurred_at,
            };
            let day = crate::event::utc(day)
                .map(|d| d.date().to_string())
                .unwrap_or_default();
            *summary
                .by_day
                .entry((day, head.source.to_string(), head.event_type.to_string()))
                .or_insert(0) += 1;
            let Ok(mut event) = serde_json::from_str::<Event>(line) else {
                summary.bad(key, number);
                continue;
            };
            event.replay = Some(ReplayMark {
                name: plan.name.clone(),
                forced: plan.force,
            });
            let consumers: Vec<Consumer> = route(&event, rules)
                .into_iter()
                .filter(|c| plan.targets.contains(c))
                .collect();
            if consumers.is_empty() {
                summary.not_routed += 1;
                continue;
            }
            match &target {
                Target::DryRun(store) => {
                    summary.sent += 1;
                    if let Some(store) = store
                        && consumers.contains(&Consumer::Slack)
                        && store
                            .is_completed(
                                &crate::slack::claim_key(&event),
                                OffsetDateTime::now_utc(),
                            )
                            .await
                            .unwrap_or(false)
                    {
                        summary.already_posted += 1;
                    }
                }
                Target::Queues { .. } => {
                    let Ok(messages) = QueueMessage::routed(&event, &consumers) else {
                        summary.bad(key, number);
                        continue;
                    };
                    pending.messages.extend(messages);
                    pending.events += 1;
                }
            }
            pending.end = Some(Position {
                key: key.clone(),
                line: number,
            });
            if pending.events >= pace.batch() {
                flush(
                    plan,
                    &target,
                    &mut pending,
                    &mut pace,
                    &mut summary,
                    sent_before,
                )
                .await?;
            }
        }
        pending.end = Some(Position {
            key: key.clone(),
            line: usize::MAX,
        });
        flush(
            plan,
            &target,
            &mut pending,
            &mut pace,
            &mut summary,
            sent_before,
        )
        .await?;
        progress(Progress {
            done: done + 1,
            objects: objects.len(),
            sent: summary.sent,
        });
    }
    if let Target::Queues { checkpoint, .. } = &target {
        let done = Checkpoint {
            plan: plan.clone(),
            at: objects.last().map(|(_, key)| Position {
                key: key.clone(),
                line: usize::MAX,
            }),
            sent: sent_before + summary.sent,
            finished: true,
        };
        checkpoint.save(&done).map_err(ReplayError::Checkpoint)?;
    }
    Ok(summary)
}

/// Send what is pending (after its share of the rate), then save where it ended.
async fn flush(
    plan: &Plan,
    target: &Target<'_>,
    pending: &mut Pending,
    pace: &mut Pace,
    summary: &mut Summary,
    sent_before: u64,
) -> Result<(), ReplayError> {
    let Target::Queues { queue, checkpoint } = target else {
        pending.events = 0;
        return Ok(());
    };
    let batch = std::mem::take(pending);
    if batch.events > 0 {
        pace.take(batch.events).await;
        summary.already_queued += queue.send_all(&batch.messages).await? as u64;
        summary.sent += batch.events as u64;
    }
    if let Some(end) = batch.end {
        let at = Checkpoint {
            plan: plan.clone(),
            at: Some(end),
            sent: sent_before + summary.sent,
            finished: false,
        };
        checkpoint.save(&at).map_err(ReplayError::Checkpoint)?;
    }
    Ok(())
}

/// An object's text.
fn gunzip(bytes: &[u8]) -> std::io::Result<String> {
    let mut text = String::with_capacity(bytes.len() * 4);
    flate2::read::MultiGzDecoder::new(bytes).read_to_string(&mut text)?;
    Ok(text)
}
