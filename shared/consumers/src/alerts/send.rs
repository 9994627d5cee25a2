//! One alert's send, once, through the guard and its destination's breaker.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::alerts::ProgressAlerts;
use crate::alerts::destinations::{Destination, Send};
use okr_core::event::Event;
use okr_core::rules::Rule;
use okr_pipeline::batch::RecordError;
use okr_pipeline::breaker::Outcome;
use okr_pipeline::idempotency::guard::{Claimed, Ran};
use okr_pipeline::outbound::DeliveryError;

impl ProgressAlerts {
    /// When every destination's breaker is open, the error holding the record back (no
    /// store call is worth making for it), counted for each.
    pub(super) async fn all_held_back(&self, deadline: Instant) -> Option<DeliveryError> {
        let mut first = None;
        for destination in &self.destinations {
            let open = destination.breaker.holding(Some(deadline)).await?;
            first.get_or_insert((destination.service(), open));
        }
        let (service, open) = first?;
        for destination in &self.destinations {
            destination.held_back.fetch_add(1, Ordering::Relaxed);
        }
        Some(DeliveryError::unavailable(service, open))
    }

    /// Send once per `key`, through the guard. A key done before means the send was
    /// made: nothing to do. A key another delivery holds, or a send that failed or could
    /// not start, fails the record, so SQS retries it (a refusal eventually reaches the
    /// dead-letter queue). Answers whether it sent now.
    pub(super) async fn once(
        &self,
        key: String,
        deadline: Instant,
        event: &Event,
        rule: Rule,
        (destination, send): (&Destination, Send),
    ) -> Result<bool, RecordError> {
        let send_once = async {
            let held = match self.guard.claim(key, &event.id, deadline).await {
                Claimed::Held(held) => held,
                Claimed::Done => {
                    tracing::info!(event_id = %event.id, destination = destination.breaker_name(), rule = %rule, outcome = "suppressed", "already sent");
                    return (Ok(false), Outcome::NotSent);
                }
                Claimed::Busy => {
                    let busy: RecordError = "another delivery holds this alert; retry later".into();
                    return (Err(busy), Outcome::NotSent);
                }
                Claimed::Failed(error) => {
                    return (Err(Box::new(error) as RecordError), Outcome::NotSent);
                }
            };
            let ran = self
                .guard
                .run(&[held], Duration::ZERO, deadline, || send.deliver(deadline))
                .await;
            let outcome = Outcome::of_ran(&ran);
            let result: Result<bool, RecordError> = match ran {
                Ran::Done => {
                    tracing::info!(event_id = %event.id, destination = destination.breaker_name(), rule = %rule, outcome = "sent", "alert sent");
                    Ok(true)
                }
                Ran::Failed(error) => {
                    if error.is_refusal() {
                        tracing::error!(event_id = %event.id, destination = destination.breaker_name(), rule = %rule, error = %okr_core::error_chain(&error), outcome = "refused", "alert refused; it will reach the dead-letter queue");
                    } else {
                        tracing::warn!(event_id = %event.id, destination = destination.breaker_name(), rule = %rule, error = %okr_core::error_chain(&error), outcome = "retry", "alert not sent; SQS will retry");
                    }
                    Err(Box::new(error))
                }
                Ran::NoTime => Err("no time left in this invocation; retry later".into()),
                Ran::NotMarked => Err("could not mark the alert as sending; retry later".into()),
            };
            (result, outcome)
        };
        match destination.breaker.call(Some(deadline), send_once).await {
            Ok(result) => result,
            Err(open) => {
                destination.held_back.fetch_add(1, Ordering::Relaxed);
                tracing::info!(event_id = %event.id, destination = destination.breaker_name(), rule = %rule, outcome = "deferred", "the destination's circuit breaker is open; not alerting now");
                Err(Box::new(DeliveryError::unavailable(
                    destination.service(),
                    open,
                )))
            }
        }
    }
}
