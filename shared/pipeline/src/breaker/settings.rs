//! The breakers' names, settings and clocks.

use std::time::Duration;

use time::OffsetDateTime;

/// The destinations with a breaker, by the names their metrics and records carry: the
/// Slack notifier's webhook, the alerts channel, PagerDuty, alert emails, the
/// warehouse's bucket.
pub const DESTINATIONS: [&str; 5] = [SLACK, ALERTS_SLACK, PAGERDUTY, EMAIL, WAREHOUSE];
/// Alert emails (SES, or SMTP locally).
pub const EMAIL: &str = "email";
/// The Slack notifier's incoming webhook.
pub const SLACK: &str = "slack";
/// The progress alerts' Slack channel.
pub const ALERTS_SLACK: &str = "alerts-slack";
/// PagerDuty's Events API.
pub const PAGERDUTY: &str = "pagerduty";
/// The warehouse's bucket (or directory).
pub const WAREHOUSE: &str = "warehouse";

/// When a breaker opens and probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive unanswered calls that open it.
    pub failures_to_open: u32,
    /// How often an open breaker lets one call through.
    pub probe_interval: Duration,
    /// How long an instance trusts its copy of the shared state.
    pub refresh: Duration,
}

impl Default for BreakerSettings {
    /// 5 failures, a probe a minute, the shared state read at most every 10 s.
    fn default() -> Self {
        BreakerSettings::scaled(Duration::from_secs(30))
    }
}

impl BreakerSettings {
    /// The default shape for a retry schedule whose first wait is `first_retry` (30 s by
    /// default; `serve`'s tests shorten it): a probe every two first waits, the copy
    /// trusted a third of one.
    pub fn scaled(first_retry: Duration) -> Self {
        BreakerSettings {
            failures_to_open: 5,
            probe_interval: first_retry.saturating_mul(2),
            refresh: first_retry / 3,
        }
    }
}

/// Wall-clock time, for the shared record.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Wall-clock time that moves with tokio's clock, so tests that pause and advance tokio
/// time move the breakers too.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall: OffsetDateTime,
    start: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock {
            wall: OffsetDateTime::now_utc(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        self.wall + self.start.elapsed()
    }
}
