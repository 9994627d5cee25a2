//! One replay as it goes: the objects, their lines, and the batches sent.

use std::collections::HashMap;
use std::io::Read;

use time::OffsetDateTime;
use tokio::time::Instant;

use crate::replay::checkpoint::{Checkpoint, Position};
use crate::replay::keep::{Pace, Pending, Seen};
use crate::replay::select::{By, Filter, Head};
use crate::replay::{Plan, ReplayError, Summary, Target};
use okr_core::event::{Event, ReplayMark};
use okr_core::routing::{Consumer, NotifyRules, route_by};
use okr_pipeline::queue::{QueueError, QueueMessage};

/// A batch's send to the queues: how many messages they held already.
pub(super) type Sending<'r> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, QueueError>> + Send + 'r>>;

/// One replay's state as it goes.
pub(super) struct Run<'r> {
    pub(super) plan: &'r Plan,
    pub(super) rules: &'r NotifyRules,
    pub(super) filter: Filter,
    pub(super) target: Target<'r>,
    pub(super) summary: Summary,
    pub(super) seen: Seen,
    pub(super) pace: Pace,
    pub(super) pending: Pending,
    /// Events sent by the runs before a resume.
    pub(super) sent_before: u64,
    /// The batch the queues are storing: its send, its events, where it ends.
    pub(super) in_flight: Option<(Sending<'r>, usize, Option<Position>)>,
    /// Selected events by `day\tsource\ttype`, and the buffer that key is made in.
    pub(super) days: HashMap<String, u64>,
    pub(super) day: String,
}

impl<'r> Run<'r> {
    /// A run of `plan` over `objects` objects, after `resume` when given.
    pub(super) fn new(
        plan: &'r Plan,
        rules: &'r NotifyRules,
        filter: Filter,
        target: Target<'r>,
        objects: usize,
        resume: Option<&Checkpoint>,
    ) -> Self {
        Run {
            plan,
            rules,
            filter,
            target,
            summary: Summary {
                objects,
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
        }
    }

    /// Take the events of one object (gzip NDJSON) after its first `skip` lines, and
    /// send what is pending at its end.
    pub(super) async fn object(
        &mut self,
        key: &str,
        gzip: &[u8],
        skip: usize,
    ) -> Result<(), ReplayError> {
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
        let consumers: Vec<Consumer> = route_by(
            &head.event_type,
            head.tracked(),
            head.projected(),
            self.rules,
        )
        .into_iter()
        .filter(|c| self.plan.targets.contains(c))
        .chain(
            self.plan
                .subscription
                .as_ref()
                .map(|_| Consumer::Subscriptions),
        )
        .collect();
        if consumers.is_empty() {
            self.summary.not_routed += 1;
            return Ok(());
        }
        match event {
            None => self.estimate(&head.id, &consumers).await,
            Some(event) => self.queue(event, &consumers, key, number).await,
        }
    }

    /// Count a selected event a dry run would send, and whether the Slack notifier
    /// posted it already.
    async fn estimate(&mut self, id: &str, consumers: &[Consumer]) -> Result<(), ReplayError> {
        self.summary.sent += 1;
        if let Target::DryRun(Some(store)) = &self.target
            && consumers.contains(&Consumer::Slack)
        {
            let key = crate::slack::key_for(&self.mark().key_scope(), id);
            let now = OffsetDateTime::now_utc();
            if store.is_completed(&key, now).await.unwrap_or(false) {
                self.summary.already_posted += 1;
            }
        }
        Ok(())
    }

    /// Add `event`, marked, to the batch for `consumers` (line `number` of `key`), and
    /// send the batch once full.
    async fn queue(
        &mut self,
        mut event: Event,
        consumers: &[Consumer],
        key: &str,
        number: usize,
    ) -> Result<(), ReplayError> {
        event.replay = Some(self.mark());
        let Ok(messages) = QueueMessage::routed(&event, consumers) else {
            self.summary.bad(key, number);
            return Ok(());
        };
        self.pending.messages.extend(messages);
        self.pending.events += 1;
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
            subscription: self.plan.subscription.clone(),
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
        if let Some(at) = okr_core::event::utc(at) {
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
    pub(super) async fn finish(mut self, end: Option<Position>) -> Result<Summary, ReplayError> {
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

/// An object's bytes, and whether its gzip stream ended cleanly (what decoded before a
/// break is kept).
fn gunzip(bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut text = Vec::with_capacity(bytes.len() * 4);
    let whole = flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut text)
        .is_ok();
    (text, whole)
}
