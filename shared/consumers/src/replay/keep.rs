//! What a run keeps between lines: the ids seen, the pace, the batch being filled.

use std::collections::HashSet;
use std::time::Duration;

use time::Date;
use tokio::time::Instant;

use crate::replay::BATCH;
use crate::replay::checkpoint::Position;
use okr_core::routing::Consumer;
use okr_pipeline::queue::QueueMessage;

/// Event ids seen on the partition at hand and the one before: the copies of an event
/// are in its own partition or the next (a provider's retry around midnight).
#[derive(Default)]
pub(super) struct Seen {
    date: Option<Date>,
    today: HashSet<String>,
    yesterday: HashSet<String>,
}

impl Seen {
    pub(super) fn enter(&mut self, date: Date) {
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
    pub(super) fn first(&mut self, id: &str) -> bool {
        !self.yesterday.contains(id) && self.today.insert(id.to_owned())
    }
}

/// Sends at most `rate` events a second, in bursts of a batch.
pub(super) struct Pace {
    pub(super) rate: Option<f64>,
    pub(super) next: Instant,
}

impl Pace {
    pub(super) async fn take(&mut self, events: usize) {
        let Some(rate) = self.rate.filter(|r| *r > 0.0) else {
            return;
        };
        let now = Instant::now();
        self.next = self.next.max(now);
        tokio::time::sleep_until(self.next).await;
        self.next += Duration::from_secs_f64(events as f64 / rate);
    }

    pub(super) fn batch(&self) -> usize {
        match self.rate {
            Some(rate) if rate > 0.0 => (rate.ceil() as usize).clamp(1, BATCH),
            _ => BATCH,
        }
    }
}

/// The messages of one batch, and where in the archive it ends.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) messages: Vec<(Consumer, QueueMessage)>,
    pub(super) events: usize,
    pub(super) end: Option<Position>,
}
