//! Sending to the outside world: one error type that says which service failed and
//! why (keeping the cause), one HTTP answer classifier ([`http::send_json`]), one
//! deadline-bound delivery loop ([`deliver`]), and the adapters: Slack incoming
//! webhooks ([`slack`]) and PagerDuty's Events API ([`pagerduty`]).
//!
//! The consumers decide what to send; whether a send happens once is the idempotency
//! guard's job (`idempotency::guard`). Nothing here reads an event.

pub mod bus;
pub mod http;
pub mod mail;
pub mod pagerduty;
pub mod slack;
pub mod slack_api;
pub mod subscriber;

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::secrets::{SecretCache, SecretsError};

/// A service messages go to, named in errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// A Slack incoming webhook (the notifier's, or the alerts channel's).
    Slack,
    /// PagerDuty's Events API v2.
    PagerDuty,
    /// Email: Amazon SES, or SMTP locally.
    Email,
    /// A subscription's receiver (another service taking our events).
    Subscriber,
    /// The event bus (Amazon EventBridge).
    EventBus,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Slack => "Slack",
            Service::PagerDuty => "PagerDuty",
            Service::Email => "email",
            Service::Subscriber => "the subscriber",
            Service::EventBus => "the event bus",
        })
    }
}

/// Any error, as the cause of a [`DeliveryError`].
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a send did not go through. No text carries a webhook URL or a routing key.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// 429: the service asks to wait.
    #[error("rate limited by {service}")]
    RateLimited {
        /// Who answered.
        service: Service,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// A 408 or 5xx answer, a timeout, a network error, or a credential that could not be
    /// read: worth retrying later.
    #[error("{service} is unavailable")]
    Unavailable {
        /// Who failed.
        service: Service,
        /// What happened.
        #[source]
        cause: Cause,
    },
    /// The service refused the message or the credential (Slack's `invalid_blocks`,
    /// `no_service`, PagerDuty's `Invalid routing key`, ...): retrying will not help.
    #[error("{service} refused it: {status} {reason}")]
    Refused {
        /// Who refused.
        service: Service,
        /// The HTTP status.
        status: u16,
        /// The service's short reason.
        reason: String,
    },
    /// Its URL or credential, as configured, can never work (a webhook URL that is not
    /// https, a malformed secret): a configuration error, not the service's. Retrying
    /// will not help until the setting is fixed, so it fails like a refusal, and its
    /// circuit breaker does not count it as an outage.
    #[error("{service} is misconfigured: {reason}")]
    Misconfigured {
        /// Whose setting.
        service: Service,
        /// What is wrong, naming the setting, never its value.
        reason: String,
    },
}

impl DeliveryError {
    /// `service` is unavailable because of `cause` (any error or message).
    pub fn unavailable(service: Service, cause: impl Into<Cause>) -> Self {
        DeliveryError::Unavailable {
            service,
            cause: cause.into(),
        }
    }

    /// What went wrong, for an event's journey: the service and the status, and a
    /// refusal's reason only when it reads as a code (`no_service`, `invalid_blocks`):
    /// a proxy's page or a stand-in's text (which may echo a URL) is left out.
    pub fn summary(&self) -> String {
        match self {
            DeliveryError::Refused {
                service,
                status,
                reason,
            } => {
                let code = !reason.is_empty()
                    && reason.len() <= 40
                    && reason.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || "_.:-".contains(c)
                    });
                match code {
                    true => format!("{service} refused it: {status} {reason}"),
                    false => format!("{service} refused it: {status}"),
                }
            }
            other => other.to_string(),
        }
    }

    /// Whether retrying cannot help: a refusal, or a setting that can never work.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            DeliveryError::Refused { .. } | DeliveryError::Misconfigured { .. }
        )
    }

    /// Whether the service answered (a refusal, a 429): it is up.
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            DeliveryError::Refused { .. } | DeliveryError::RateLimited { .. }
        )
    }

    /// Whether the service did not answer: a 408 or 5xx, a timeout, a network error,
    /// its credential unreadable. Not when the send never started (or was cut) for want
    /// of time, nor when its circuit breaker held it back.
    pub fn is_outage(&self) -> bool {
        matches!(self, DeliveryError::Unavailable { cause, .. }
            if !cause.is::<NoTimeLeft>() && !cause.is::<BreakerOpen>())
    }

    /// Whether it was not sent because the service's circuit breaker is open.
    pub fn is_held_back(&self) -> bool {
        matches!(self, DeliveryError::Unavailable { cause, .. } if cause.is::<BreakerOpen>())
    }
}

/// A send not started: too little of the invocation's time was left.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no time left in this invocation")]
pub struct NoTimeLeft;

/// The current credential (a webhook URL, a routing key) from its secret cache; a
/// secret that cannot be read leaves `service` unavailable for now, one that reads but
/// can never work (not https, malformed) is a configuration error.
pub async fn credential<T>(
    cache: &SecretCache<T>,
    service: Service,
) -> Result<std::sync::Arc<T>, DeliveryError>
where
    T: PartialEq + Send + Sync,
{
    cache.current().await.map_err(|e| match e {
        SecretsError::Invalid(reason) => DeliveryError::Misconfigured { service, reason },
        other => DeliveryError::unavailable(service, other),
    })
}

/// At start: read the credential `setting` names, so a secret that can never work (a
/// webhook URL that is not https, a malformed routing key) fails the start with a
/// message naming `setting`, never the value, instead of being retried as an outage.
/// A store that does not answer now is left for the first send to read again.
pub async fn check_at_start<T>(
    cache: &SecretCache<T>,
    setting: &str,
) -> Result<Option<std::sync::Arc<T>>, String>
where
    T: PartialEq + Send + Sync,
{
    match cache.current().await {
        Ok(value) => Ok(Some(value)),
        Err(SecretsError::Invalid(reason)) => Err(format!("{setting}: {reason}")),
        Err(error) => {
            tracing::warn!(setting, error = %okr_core::error_chain(&error), "could not read the secret at start; the first send reads it again");
            Ok(None)
        }
    }
}

/// Time kept back before a deadline to record outcomes and answer; a send is cut short
/// there, and none starts with less than this (plus [`MIN_SEND_TIME`]) left.
pub const SEND_BUDGET: Duration = Duration::from_millis(500);
/// The least time worth starting a send with.
pub const MIN_SEND_TIME: Duration = Duration::from_millis(300);
/// Slack allows about one message per second per webhook; also the shortest wait after
/// a 429.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// A 429 asking to wait longer than this fails the send, for the queue to retry later.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(15);

/// Run `attempt` (one send to `service`), ending before `deadline` so a timeout never
/// strands a claim, and waiting out a 429 whose `Retry-After` is short and fits the time
/// left.
pub async fn deliver<F, Fut>(
    service: Service,
    deadline: Instant,
    attempt: F,
) -> Result<(), DeliveryError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), DeliveryError>>,
{
    loop {
        let Some(left) = deadline
            .checked_duration_since(Instant::now() + SEND_BUDGET)
            .filter(|left| *left >= MIN_SEND_TIME)
        else {
            return Err(DeliveryError::unavailable(service, NoTimeLeft));
        };
        let outcome = tokio::time::timeout(left, attempt())
            .await
            // Cut at the invocation's deadline (the client's own timeout is an error of
            // the attempt): not the service's fault.
            .unwrap_or_else(|_| Err(DeliveryError::unavailable(service, NoTimeLeft)));
        match outcome {
            Err(DeliveryError::RateLimited { retry_after, .. }) => {
                // Never busy-loop on `Retry-After: 0`.
                let wait = retry_after.unwrap_or(MIN_INTERVAL).max(MIN_INTERVAL);
                if wait > MAX_RATE_LIMIT_WAIT || Instant::now() + wait + SEND_BUDGET > deadline {
                    return Err(DeliveryError::RateLimited {
                        service,
                        retry_after,
                    });
                }
                tracing::info!(%service, wait_ms = wait.as_millis() as u64, "rate limited; waiting");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// Calls to the destination are held back: its breaker is open.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the circuit breaker of {destination} is open: not calling it until a probe gets an answer"
)]
pub struct BreakerOpen {
    /// The destination.
    pub destination: &'static str,
    /// How long it has been open.
    pub open_for: Duration,
}

#[cfg(test)]
mod tests {
    use super::{DeliveryError, Service};

    #[test]
    fn a_summary_keeps_a_refusals_code_and_leaves_any_other_text_out() {
        let refused = |reason: &str| DeliveryError::Refused {
            service: Service::Slack,
            status: 404,
            reason: reason.into(),
        };
        assert_eq!(
            refused("no_service").summary(),
            "Slack refused it: 404 no_service"
        );
        // A proxy's page that echoes the webhook's path.
        let page = refused("Cannot POST /services/T0AB/B0CD/s3cr3tw3bh00k");
        assert_eq!(page.summary(), "Slack refused it: 404");
        assert_eq!(refused("").summary(), "Slack refused it: 404");
        let down = DeliveryError::unavailable(Service::PagerDuty, "timed out");
        assert_eq!(down.summary(), "PagerDuty is unavailable");
    }
}
