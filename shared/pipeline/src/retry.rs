//! When a failed record is seen again: an exponential schedule with jitter for
//! failures that may pass (a destination down), a short fixed delay for refusals that
//! will not (so they reach the dead-letter queue in minutes), and the receive count
//! after which the queue gives up.
//!
//! The arithmetic: a transient failure after receive `n` waits `30 s x 2^(n-1)`, at most
//! 2 h, each within -20 %..+20 %: 30 s, 1, 2, 4, 8, 16, 32, 64 min (127.5 min in all),
//! then 2 h. With `maxReceiveCount` 25 the queue gives up after the 25th receive, so the
//! 24 waits before it add up to 127.5 min + 16 x 2 h = 34.1 h, and at least 27.3 h with
//! the jitter at its lowest: an outage of 24 hours loses nothing to a dead-letter queue.
//! A refusal waits 1 min, so its 25 receives take about 25 minutes: long enough for a
//! credential being rotated (a webhook URL, a routing key) to be read again, far shorter
//! than the outage schedule.

use std::sync::Arc;
use std::time::Duration;

use crate::queue::{Defer, NoDefer};

/// `maxReceiveCount` of the consumer queues (the template's, checked by a test).
pub const MAX_RECEIVE_COUNT: u32 = 25;

/// Why a record failed, as far as its retry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It may work later: a destination unavailable, a store that did not answer, no
    /// time left in the invocation, another delivery holding the event.
    Transient,
    /// Held back by its destination's open circuit breaker (the destination is known
    /// to be down): waits as a transient failure does, and a batch whose every record
    /// failed this way fails as a whole (see `batch`).
    HeldBack,
    /// It will not work by waiting: a destination refused it (a 4xx other than 408 and
    /// 429), or the record is not an event.
    Refused,
}

/// The delays of one queue's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// After the first receive.
    pub first: Duration,
    /// The longest wait.
    pub longest: Duration,
    /// After a refusal.
    pub refused: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            first: Duration::from_secs(30),
            longest: Duration::from_secs(2 * 3600),
            refused: Duration::from_secs(60),
        }
    }
}

impl Schedule {
    /// The same shape with the first wait `first` (local tests shorten it).
    pub fn starting_at(first: Duration) -> Self {
        Schedule {
            first,
            longest: first.saturating_mul(240),
            refused: first.saturating_mul(2),
        }
    }

    /// How long a record that failed this way on receive `receive_count` (1 for the
    /// first) waits before it is seen again; `jitter` in 0..1 spreads the transient
    /// waits over -20 %..+20 %, so the records of one outage do not return together.
    pub fn delay(&self, failure: Failure, receive_count: u32, jitter: f64) -> Duration {
        match failure {
            Failure::Refused => self.refused,
            Failure::Transient | Failure::HeldBack => {
                let doublings = receive_count.saturating_sub(1).min(30);
                let wait = self.first.saturating_mul(1 << doublings).min(self.longest);
                wait.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
            }
        }
    }
}

/// How a consumer's failed records are retried: hidden through `defer` for `schedule`'s
/// waits. The default defers nothing (a record comes back after the visibility timeout).
#[derive(Clone)]
pub struct Retries {
    /// Hides a failed record (SQS's `ChangeMessageVisibility`, or the local queue).
    pub defer: Arc<dyn Defer>,
    /// How long.
    pub schedule: Schedule,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            defer: Arc::new(NoDefer),
            schedule: Schedule::default(),
        }
    }
}
