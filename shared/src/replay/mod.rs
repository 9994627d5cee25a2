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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use tokio::time::Instant;

use crate::event::{Event, ReplayMark};
use crate::idempotency::IdempotencyStore;
use crate::queue::{EventQueue, QueueError, QueueMessage};
use crate::routing::{Consumer, NotifyRules, route_by};
use archive::{Archive, ArchiveError};
use checkpoint::{Checkpoint, Position};
use select::{By, Filter, Head, Selection};

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
}

/// A replay's name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let fits = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    match fits {
        true => Ok(()),
        false => Err(format!(
            "{name:?} is not a replay name: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
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
    let filter = Filter::new(&plan.selection);
    let (first, last) = filter.dates();
    let mut objects = Vec::new();
    for date in archive.dates(first, last).await? {
        for key in archive.objects(date).await? {
            objects.push((date, key));
        }
    }
    let every_type = NotifyRules::parse("*");
    let mut run = Run {
        plan,
        rules: if plan.all_types { &every_type } else { rules },
        filter,
        target,
        summary: Summary {
            objects: objects.len(),
            ..Summary::default()
        },
        seen: Seen::default(),
        pace: Pace {
            rate: plan.rate,
            next: Instant::now(),
        },
        pending: Pending::default(),
        sent_before: resume.map_or(0, |c| c.sent),
        in_flight: None,
        days: HashMap::new(),
        day: String::new(),
    };
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

/// A batch's send to the queues: how many messages they held already.
type Sending<'r> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, QueueError>> + Send + 'r>>;

/// One replay's state as it goes.
struct Run<'r> {
    plan: &'r Plan,
    rules: &'r NotifyRules,
    filter: Filter,
    target: Target<'r>,
    summary: Summary,
    seen: Seen,
    pace: Pace,
    pending: Pending,
    /// Events sent by the runs before a resume.
    sent_before: u64,
    /// The batch the queues are storing: its send, its events, where it ends.
    in_flight: Option<(Sending<'r>, usize, Option<Position>)>,
    /// Selected events by `day\tsource\ttype`, and the buffer that key is made in.
    days: HashMap<String, u64>,
    day: String,
}

impl Run<'_> {
    /// Take the events of one object (gzip NDJSON) after its first `skip` lines, and
    /// send what is pending at its end.
    async fn object(&mut self, key: &str, gzip: &[u8], skip: usize) -> Result<(), ReplayError> {
        let (text, whole) = gunzip(gzip);
        self.summary.objects_read += 1;
        // Line by line, each on its own: a bad byte costs only its line.
        for (index, line) in text.split(|b| *b == b'\n').enumerate().skip(skip) {
            let number = index + 1;
            match std::str::from_utf8(line) {
                Ok(line) if line.trim().is_empty() => {}
                Ok(line) => self.line(key, number, line).await?,
                Err(_) => self.summary.bad(key, number),
            }
        }
        if !whole {
            // A broken gzip stream: what decoded before the break was taken.
            self.summary.bad(key, 0);
        }
        self.pending.end = Some(Position {
            key: key.to_owned(),
            line: usize::MAX,
        });
        self.flush().await
    }

    /// Take line `number` of the object `key`, if it is a selected event seen for the
    /// first time.
    async fn line(&mut self, key: &str, number: usize, line: &str) -> Result<(), ReplayError> {
        let Ok(head) = serde_json::from_str::<Head>(line) else {
            self.summary.bad(key, number);
            return Ok(());
        };
        if !self.filter.matches(&head) {
            return Ok(());
        }
        // Sending needs the whole event: a line whose head reads but whose event does not
        // is bad, and must not make a later good copy count as seen.
        let event = match &self.target {
            Target::DryRun(_) => None,
            Target::Queues { .. } => match serde_json::from_str::<Event>(line) {
                Ok(event) => Some(event),
                Err(_) => {
                    self.summary.bad(key, number);
                    return Ok(());
                }
            },
        };
        if !self.seen.first(&head.id) {
            self.summary.copies += 1;
            return Ok(());
        }
        self.summary.selected += 1;
        self.count_day(&head);
        let consumers: Vec<Consumer> = route_by(&head.event_type, head.tracked(), self.rules)
            .into_iter()
            .filter(|c| self.plan.targets.contains(c))
            .collect();
        if consumers.is_empty() {
            self.summary.not_routed += 1;
            return Ok(());
        }
        match (&self.target, event) {
            (Target::DryRun(store), _) => {
                self.summary.sent += 1;
                if let Some(store) = store
                    && consumers.contains(&Consumer::Slack)
                {
                    let key = crate::slack::key_for(&self.mark().key_scope(), &head.id);
                    let now = OffsetDateTime::now_utc();
                    if store.is_completed(&key, now).await.unwrap_or(false) {
                        self.summary.already_posted += 1;
                    }
                }
                return Ok(());
            }
            (Target::Queues { .. }, None) => return Ok(()),
            (Target::Queues { .. }, Some(mut event)) => {
                event.replay = Some(self.mark());
                let Ok(messages) = QueueMessage::routed(&event, &consumers) else {
                    self.summary.bad(key, number);
                    return Ok(());
                };
                self.pending.messages.extend(messages);
                self.pending.events += 1;
            }
        }
        self.pending.end = Some(Position {
            key: key.to_owned(),
            line: number,
        });
        if self.pending.events >= self.pace.batch() {
            self.flush().await?;
        }
        Ok(())
    }

    fn mark(&self) -> ReplayMark {
        ReplayMark {
            name: self.plan.name.clone(),
            forced: self.plan.force,
            all_types: self.plan.all_types,
        }
    }

    /// Count a selected event by day (of the window's time), source and type.
    fn count_day(&mut self, head: &Head<'_>) {
        use std::fmt::Write as _;
        let at = match self.plan.selection.by {
            By::ReceivedAt => head.received_at,
            By::OccurredAt => head.occurred_at,
        };
        self.day.clear();
        if let Some(at) = crate::event::utc(at) {
            let _ = write!(self.day, "{}", at.date());
        }
        let _ = write!(self.day, "\t{}\t{}", head.source, head.event_type);
        match self.days.get_mut(self.day.as_str()) {
            Some(count) => *count += 1,
            None => {
                self.days.insert(self.day.clone(), 1);
            }
        }
    }

    /// Hand what is pending to the queues (after its share of the rate), and finish the
    /// batch before it: the queues write one batch while the next is read, and each
    /// batch's checkpoint is saved once it is stored.
    async fn flush(&mut self) -> Result<(), ReplayError> {
        let batch = std::mem::take(&mut self.pending);
        let Target::Queues { queue, .. } = self.target else {
            return Ok(());
        };
        self.settle().await?;
        if batch.events == 0 {
            return self.save(batch.end);
        }
        self.pace.take(batch.events).await;
        let messages = batch.messages;
        let mut send: Sending<'_> = Box::pin(async move { queue.send_all(&messages).await });
        // The first poll queues the writes (serve's writer thread takes them from there).
        match futures::poll!(send.as_mut()) {
            std::task::Poll::Ready(stored) => self.stored(stored?, batch.events, batch.end),
            std::task::Poll::Pending => {
                self.in_flight = Some((send, batch.events, batch.end));
                Ok(())
            }
        }
    }

    /// Finish the batch in flight, if any.
    async fn settle(&mut self) -> Result<(), ReplayError> {
        match self.in_flight.take() {
            Some((send, events, end)) => {
                let held = send.await?;
                self.stored(held, events, end)
            }
            None => Ok(()),
        }
    }

    /// A batch of `events` is stored (`held` of its messages the queues had already):
    /// count it, and save the checkpoint at its end.
    fn stored(
        &mut self,
        held: usize,
        events: usize,
        end: Option<Position>,
    ) -> Result<(), ReplayError> {
        self.summary.already_queued += held as u64;
        self.summary.sent += events as u64;
        self.save(end)
    }

    fn save(&self, end: Option<Position>) -> Result<(), ReplayError> {
        if let (Target::Queues { checkpoint, .. }, Some(end)) = (&self.target, end) {
            let at = self.checkpoint(Some(end), false);
            checkpoint.save(&at).map_err(ReplayError::Checkpoint)?;
        }
        Ok(())
    }

    fn checkpoint(&self, at: Option<Position>, finished: bool) -> Checkpoint {
        Checkpoint {
            plan: self.plan.clone(),
            at,
            sent: self.sent_before + self.summary.sent,
            finished,
        }
    }

    /// The summary, with the checkpoint marked finished at `end`.
    async fn finish(mut self, end: Option<Position>) -> Result<Summary, ReplayError> {
        self.settle().await?;
        if let Target::Queues { checkpoint, .. } = &self.target {
            let done = self.checkpoint(end, true);
            checkpoint.save(&done).map_err(ReplayError::Checkpoint)?;
        }
        for (key, count) in self.days.drain() {
            let mut parts = key.splitn(3, '\t').map(str::to_owned);
            let day = parts.next().unwrap_or_default();
            let source = parts.next().unwrap_or_default();
            let event_type = parts.next().unwrap_or_default();
            self.summary.by_day.insert((day, source, event_type), count);
        }
        Ok(self.summary)
    }
}

/// An object's text.
/// An object's bytes, and whether its gzip stream ended cleanly (what decoded before a
/// break is kept).
fn gunzip(bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut text = Vec::with_capacity(bytes.len() * 4);
    let whole = flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut text)
        .is_ok();
    (text, whole)
}
