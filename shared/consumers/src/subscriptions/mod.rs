//! The subscriptions consumer: each event a subscription takes, posted to its receiver
//! once, signed with Standard Webhooks (docs/subscriptions.md).
//!
//! Each (event, subscription) pair is a side effect of its own through the idempotency
//! guard, so a record that reached one receiver and not another is retried for the other
//! alone. Each subscription has its own circuit breaker and its own pace
//! (`rate_per_second`). A record fails while any of its sends failed, and takes the
//! most hopeful of their failures: a receiver that is down keeps the record on the long
//! schedule even when another refused it.
//!
//! A subscription's health is one state record, `subscription:<name>`: when it began
//! failing, and whether it was switched off. A receiver answering 410 Gone is switched
//! off at once; one failing for [`DISABLE_AFTER`] (5 days, as Svix does) is switched off
//! too. Either is logged and counted (`SubscriptionsDisabled`), its events are skipped
//! from then on, and `okr-webhooks subscriptions enable NAME` switches it on again.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::Instant;

use okr_core::event::Event;
use okr_core::subscriptions::{Subscription, SubscriptionSecrets, Subscriptions, payload, sign};
use okr_pipeline::batch::{BatchFailure, BatchReport, failure_of, why_of};
use okr_pipeline::breaker::{Breaker, BreakerConfig, Outcome};
use okr_pipeline::idempotency::guard::{Claimed, Guard, Ran};
use okr_pipeline::idempotency::{IdempotencyStore, StateStore, update_state};
use okr_pipeline::journal::{Journal, Journey};
use okr_pipeline::metrics::{MetricsSink, NoMetrics};
use okr_pipeline::outbound::bus::EventBus;
use okr_pipeline::outbound::{DeliveryError, Service, credential, deliver, subscriber};
use okr_pipeline::retry::{Failure, Retries};
use okr_pipeline::secrets::SecretCache;

/// The consumer's name in metrics.
pub const SERVICE: &str = "subscriptions";
/// A subscription failing this long is switched off.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);
/// How long a sent event is remembered: longer than a dead-letter queue keeps it.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(15 * 24 * 3600);
/// Failures this far apart are not one stretch of failing: a refusal last week and
/// one today do not switch a subscription off. (A record that keeps failing is tried
/// again at least every 2 hours until it is dead-lettered.)
pub const QUIET: Duration = Duration::from_secs(24 * 3600);
/// How often the time of the last failure is written while failures go on.
const LAST_FAILURE_EVERY: i64 = 3600;
/// How long a subscription's health is kept after its last change.
const HEALTH_KEPT: Duration = Duration::from_secs(400 * 24 * 3600);

/// A subscription's health, as its state record keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// When its sends began failing (Unix seconds), while they fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<i64>,
    /// When a send last failed (Unix seconds, kept to the hour): failures further apart
    /// than [`QUIET`] start the count of days again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<i64>,
    /// Why and when it was switched off, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Disabled>,
}

/// Why a subscription was switched off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    /// When (Unix seconds).
    pub at: i64,
    /// Why, in words.
    pub why: String,
}

/// The state record of subscription `name`.
pub fn health_key(name: &str) -> String {
    format!("subscription:{name}")
}

/// The health of subscription `name` (healthy when nothing is kept).
pub async fn health(store: &dyn StateStore, name: &str) -> Result<Health, String> {
    let stored = store
        .load_state(&health_key(name), OffsetDateTime::now_utc())
        .await
        .map_err(|e| okr_core::error_chain(&e))?;
    Ok(stored
        .and_then(|s| serde_json::from_str(&s.value).ok())
        .unwrap_or_default())
}

/// Forget subscription `name`'s failures and switching off (`subscriptions enable`).
pub async fn clear_health(store: &dyn StateStore, name: &str) -> Result<(), String> {
    let key = health_key(name);
    update_state(
        store,
        (&key, HEALTH_KEPT),
        |current| {
            current
                .is_some_and(|text| text != "{}")
                .then(|| "{}".to_owned())
        },
        "the subscription's health kept changing",
    )
    .await
    .map_err(|e| okr_core::error_chain(&e))
}

/// The idempotency key of `event`'s send to subscription `name` (scoped to a forced
/// replay's name).
pub fn claim_key(event: &Event, name: &str) -> String {
    format!("{}subscription:{name}:{}", event.key_scope(), event.id)
}

/// What became of one (event, subscription) pair.
enum Sent {
    /// Posted now.
    Posted,
    /// Posted before.
    Before,
    /// Not sent: the subscription is switched off.
    Off(String),
    /// Not sent: why, for a retry.
    Failed(Failure, String),
}

/// One side effect to run at most once ([`SubscriptionSender::once`]).
struct Once<'a> {
    key: String,
    event: &'a Event,
    breaker: &'a Breaker,
    service: Service,
    deadline: Instant,
}

/// A post's body, signing secrets and `Authorization`, ready before its claim.
struct Prepared {
    signing: Vec<String>,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// The event bus every event is published to, and its breaker.
struct Bus {
    bus: Arc<dyn EventBus>,
    breaker: Arc<Breaker>,
}

/// The subscriptions' health as this batch knows it: read once, kept as it changes.
type Healths = Mutex<HashMap<String, Health>>;

/// Subscription `name`'s health as the batch knows it now (healthy when unknown).
fn health_now(name: &str, health: &Healths) -> Health {
    health
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .cloned()
        .unwrap_or_default()
}

/// What one record came to.
enum Settled {
    /// Its step and what it says.
    Done(&'static str, String),
    /// Retry it: how, and why.
    Failed(Failure, String),
}

/// The breaker name of the event bus.
pub const EVENT_BUS: &str = "event-bus";

/// The consumer and its ports.
pub struct SubscriptionSender {
    /// The bus every event is also published to, if any.
    bus: Option<Bus>,
    document: Arc<SecretCache<Subscriptions>>,
    secrets: Arc<SecretCache<SubscriptionSecrets>>,
    http: reqwest::Client,
    guard: Guard,
    breaking: BreakerConfig,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    /// When each subscription may be posted to next, by its rate.
    pace: Mutex<HashMap<String, Instant>>,
    retries: Retries,
    metrics: Arc<dyn MetricsSink>,
    journey: Journey,
}

impl SubscriptionSender {
    /// A consumer reading the subscriptions from `document` and their secrets from
    /// `secrets`, posting with `http` ([`okr_pipeline::outbound::http::http_client`]),
    /// remembering sends and health in `store`.
    pub fn new(
        document: Arc<SecretCache<Subscriptions>>,
        secrets: Arc<SecretCache<SubscriptionSecrets>>,
        http: reqwest::Client,
        store: Arc<dyn IdempotencyStore>,
    ) -> Self {
        SubscriptionSender {
            bus: None,
            document,
            secrets,
            http,
            guard: Guard::new(store, DEDUP_WINDOW, SERVICE, Arc::new(NoMetrics)),
            breaking: BreakerConfig::default(),
            breakers: Mutex::new(HashMap::new()),
            pace: Mutex::new(HashMap::new()),
            retries: Retries::default(),
            metrics: Arc::new(NoMetrics),
            journey: Journey::logged(okr_core::routing::Consumer::Subscriptions.as_str()),
        }
    }

    /// Record each event's steps in `journal` (by default, as log lines).
    pub fn journaling(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journey = self.journey.writing_to(journal);
        self
    }

    /// Make each subscription's circuit breaker by `config`; its clock also tells how
    /// long a subscription has been failing. (Before [`Self::publishing_to`].)
    pub fn breaking(mut self, config: &BreakerConfig) -> Self {
        self.breaking = config.clone();
        self
    }

    /// Also publish every event to `bus`, once each (ingest queues every event then).
    pub fn publishing_to(mut self, bus: Arc<dyn EventBus>) -> Self {
        let breaker = self.breaking.breaker(EVENT_BUS, self.guard.store().clone());
        self.bus = Some(Bus { bus, breaker });
        self
    }

    /// Hold a started send's claim at least `hold` (the queue's visibility timeout), and
    /// count what must be looked at in `metrics`.
    pub fn guarded(mut self, hold: Duration, metrics: Arc<dyn MetricsSink>) -> Self {
        self.guard = self.guard.with_min_hold(hold).with_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// Set when failed records are seen again.
    pub fn retrying(mut self, retries: Retries) -> Self {
        self.retries = retries;
        self
    }

    /// Handle one batch; `deadline` is when it must have answered. The records are sent
    /// side by side (each its own claim, mark and post through the guard), so a batch
    /// waits for its slowest send, not for the sum of them; a subscription's pace still
    /// spaces its posts.
    pub async fn handle(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchFailure> {
        let mut report = BatchReport::new(&batch, &self.journey);
        let mut document = self.document.current().await;
        // Read again at most once a batch, when the copy here takes an event nobody
        // takes: ingest queued it by a newer copy (a subscription just added or enabled).
        let mut read_again = false;
        let mut events = Vec::with_capacity(batch.records.len());
        for record in &batch.records {
            let Some(event) = report.decode(record) else {
                continue;
            };
            if self.bus.is_none()
                && !read_again
                && document.as_ref().is_ok_and(|d| !d.any_takes(&event))
            {
                read_again = true;
                self.document.invalidate().await;
                document = self.document.current().await;
            }
            events.push((record.message_id.as_deref(), event));
        }
        let health = Healths::default();
        let document = &document;
        let health = &health;
        let outcomes = futures::future::join_all(
            events
                .iter()
                .map(|(_, event)| self.send_event(event, document, deadline, health)),
        )
        .await;
        for ((message_id, _), outcome) in events.iter().zip(outcomes) {
            match outcome {
                Settled::Failed(failure, why) => report.fail_because(*message_id, failure, why),
                Settled::Done(step, detail) => report.done(*message_id, step, detail),
            }
        }
        report.finish(&self.retries, Some(deadline)).await
    }

    /// Send `event` to the bus (if any) and every subscription taking it, and settle
    /// what its record comes to.
    async fn send_event(
        &self,
        event: &Event,
        document: &Result<Arc<Subscriptions>, okr_pipeline::secrets::SecretsError>,
        deadline: Instant,
        health: &Healths,
    ) -> Settled {
        // A replay to one subscription goes to it alone. The bus first: it does not
        // wait for a readable document.
        let only = event
            .replay
            .as_ref()
            .and_then(|r| r.subscription.as_deref());
        let published = match (&self.bus, only) {
            (Some(bus), None) => Some(("the event bus", self.publish(bus, event, deadline).await)),
            _ => None,
        };
        let mut sent = Vec::new();
        let mut off = Vec::new();
        let mut failed: Option<(Failure, Vec<String>)> = None;
        let document = match document {
            Ok(document) => document,
            Err(error) => {
                tracing::error!(event_id = %event.id, error = %okr_core::error_chain(error), outcome = "retry", "cannot read the subscriptions document; the record waits");
                let mut why = vec!["the subscriptions document cannot be read".to_owned()];
                if let Some((_, Sent::Posted | Sent::Before)) = published {
                    why.push("sent to the event bus".into());
                }
                return Settled::Failed(Failure::Transient, why.join("; "));
            }
        };
        let sends = published.into_iter();
        let mut outcomes = Vec::new();
        let taking = document
            .taking(event)
            .filter(|(name, _)| only.is_none_or(|only| only == *name));
        for (name, subscription) in taking {
            outcomes.push((
                name,
                self.send(name, subscription, event, deadline, health).await,
            ));
        }
        for (name, outcome) in sends.chain(outcomes) {
            match outcome {
                Sent::Posted | Sent::Before => sent.push(name),
                Sent::Off(why) => off.push(why),
                Sent::Failed(failure, why) => {
                    let (worst, whys) = failed.get_or_insert((failure, Vec::new()));
                    *worst = hopeful(*worst, failure);
                    whys.push(why);
                }
            }
        }
        if let Some((failure, mut whys)) = failed {
            // The step says what came of every subscription, not only the failures.
            whys.extend(off);
            if !sent.is_empty() {
                whys.push(format!("sent to {}", sent.join(", ")));
            }
            Settled::Failed(failure, whys.join("; "))
        } else if !sent.is_empty() {
            let mut detail = vec![format!("to {}", sent.join(", "))];
            detail.extend(off);
            Settled::Done("sent", detail.join("; "))
        } else if !off.is_empty() {
            Settled::Done("skipped", off.join("; "))
        } else {
            Settled::Done("skipped", "no subscription takes it now".into())
        }
    }

    /// Send `event` to subscription `name` once, through its breaker and the guard.
    async fn send(
        &self,
        name: &str,
        subscription: &Subscription,
        event: &Event,
        deadline: Instant,
        health: &Healths,
    ) -> Sent {
        let now = self.now();
        let state = self.health_of(name, health).await;
        if let Some(disabled) = &state.disabled {
            tracing::info!(event_id = %event.id, subscription = name, outcome = "off", "the subscription is switched off; not sending");
            return Sent::Off(format!("{name} is switched off: {}", disabled.why));
        }
        // Our side first: its secrets and the body. A secret that cannot be read now, or
        // a configuration that can never work, is not the receiver failing: it neither
        // opens the breaker nor counts toward switching the subscription off.
        let prepared = match self.prepare(name, subscription, event).await {
            Ok(prepared) => prepared,
            Err(error) => {
                tracing::warn!(event_id = %event.id, subscription = name, error = %okr_core::error_chain(&error), outcome = "retry", "cannot sign for the subscription");
                return Sent::Failed(failure_of(&error), format!("{name}: {}", error.summary()));
            }
        };
        let once = Once {
            key: claim_key(event, name),
            event,
            breaker: &self.breaker(name),
            service: Service::Subscriber,
            deadline,
        };
        let ran = match self
            .once(
                once,
                || self.pause(name, subscription.rate_per_second),
                || self.post(subscription, &prepared, &event.id, deadline),
            )
            .await
        {
            Ok(ran) => ran,
            Err((failure, why)) => return Sent::Failed(failure, format!("{name}: {why}")),
        };
        let Some(ran) = ran else {
            return Sent::Before;
        };
        // Decided by the health as it stands now: the batch's other sends to this
        // subscription, side by side with this one, may have changed it.
        let state = health_now(name, health);
        match ran {
            Ran::Done => {
                tracing::info!(event_id = %event.id, subscription = name, r#type = %event.event_type, outcome = "sent", "sent to the subscription");
                if state.failing_since.is_some() && state.disabled.is_none() {
                    self.keep_health(name, health, Health::default()).await;
                }
                Sent::Posted
            }
            Ran::Failed(DeliveryError::Refused { status: 410, .. }) => {
                let why = "its receiver answered 410 Gone".to_owned();
                self.switch_off(name, health, why.clone(), now).await;
                Sent::Off(format!("{name} is switched off: {why}"))
            }
            Ran::Failed(error) if state.disabled.is_some() => {
                // Switched off by another send of this batch: nothing more to count.
                let failure = failure_of(&error);
                Sent::Failed(failure, format!("{name}: {}", why_of(&error)))
            }
            Ran::Failed(error) => {
                let failure = failure_of(&error);
                let why = match why_of(&error) {
                    w if w.is_empty() => format!("{name}: its circuit breaker is open"),
                    w => format!("{name}: {w}"),
                };
                tracing::warn!(event_id = %event.id, subscription = name, error = %error.summary(), outcome = "retry", "the send failed");
                // The receiver failed (no answer, or a refusal): not a 429, not a send
                // cut short for want of time, not one its breaker held back.
                if !(error.is_outage() || matches!(error, DeliveryError::Refused { .. })) {
                    return Sent::Failed(failure, why);
                }
                let quiet = QUIET.as_secs() as i64;
                match (state.failing_since, state.last_failure) {
                    (Some(since), Some(last)) if now - last <= quiet => {
                        if now - since >= DISABLE_AFTER.as_secs() as i64 {
                            let since = OffsetDateTime::from_unix_timestamp(since)
                                .map(|at| at.date().to_string())
                                .unwrap_or_default();
                            let why = format!("failing since {since}");
                            self.switch_off(name, health, why.clone(), now).await;
                            return Sent::Off(format!("{name} is switched off: {why}"));
                        }
                        if now - last >= LAST_FAILURE_EVERY {
                            let going_on = Health {
                                last_failure: Some(now),
                                ..state
                            };
                            self.keep_health(name, health, going_on).await;
                        }
                    }
                    // The first failure, or the first after a quiet spell.
                    _ => {
                        let failing = Health {
                            failing_since: Some(now),
                            last_failure: Some(now),
                            disabled: None,
                        };
                        self.keep_health(name, health, failing).await;
                    }
                }
                Sent::Failed(failure, why)
            }
            Ran::NoTime | Ran::NotMarked => Sent::Failed(
                Failure::Transient,
                format!("{name}: not sent in this invocation"),
            ),
        }
    }

    /// One side effect for `once.event`, at most once: held back while its breaker is
    /// open, claimed by `once.key`, then (after `pause`, asked only now) run through the
    /// breaker and the guard. `Ok(None)`: done before; `Err`: not started, and why.
    async fn once<Fut>(
        &self,
        once: Once<'_>,
        pause: impl FnOnce() -> Duration,
        side_effect: impl FnOnce() -> Fut,
    ) -> Result<Option<Ran<DeliveryError>>, (Failure, String)>
    where
        Fut: Future<Output = Result<(), DeliveryError>>,
    {
        let Once {
            key,
            event,
            breaker,
            service,
            deadline,
        } = once;
        if breaker.holding(Some(deadline)).await.is_some() {
            return Err((Failure::HeldBack, "its circuit breaker is open".into()));
        }
        let held = match self.guard.claim(key, &event.id, deadline).await {
            Claimed::Held(held) => held,
            Claimed::Done => return Ok(None),
            Claimed::Busy => {
                return Err((Failure::Transient, "another delivery is sending it".into()));
            }
            Claimed::Failed(_) => {
                return Err((
                    Failure::Transient,
                    "the idempotency store did not answer".into(),
                ));
            }
        };
        let claims = std::slice::from_ref(&held);
        let pause = pause();
        let run = async {
            let ran = self.guard.run(claims, pause, deadline, side_effect).await;
            let outcome = Outcome::of_ran(&ran);
            (ran, outcome)
        };
        Ok(Some(match breaker.call(Some(deadline), run).await {
            Ok(ran) => ran,
            Err(open) => {
                self.guard.release(claims, deadline).await;
                Ran::Failed(DeliveryError::unavailable(service, open))
            }
        }))
    }

    /// Publish `event` to the bus once (the view the Slack queue gets, as a
    /// subscription's default).
    async fn publish(&self, bus: &Bus, event: &Event, deadline: Instant) -> Sent {
        let once = Once {
            key: format!("{}bus:{}", event.key_scope(), event.id),
            event,
            breaker: &bus.breaker,
            service: Service::EventBus,
            deadline,
        };
        let ran = self
            .once(
                once,
                || Duration::ZERO,
                || async {
                    let view = okr_core::routing::notification_view(event).map_err(|e| {
                        DeliveryError::Misconfigured {
                            service: Service::EventBus,
                            reason: e.to_string(),
                        }
                    })?;
                    let detail =
                        serde_json::to_string(&view).map_err(|e| DeliveryError::Misconfigured {
                            service: Service::EventBus,
                            reason: e.to_string(),
                        })?;
                    deliver(Service::EventBus, deadline, || {
                        bus.bus.publish(&event.event_type, &detail)
                    })
                    .await
                },
            )
            .await;
        match ran {
            Ok(None) => Sent::Before,
            Ok(Some(Ran::Done)) => Sent::Posted,
            Ok(Some(Ran::Failed(error))) => {
                tracing::warn!(event_id = %event.id, error = %okr_core::error_chain(&error), outcome = "retry", "publishing to the event bus failed");
                let why = match why_of(&error) {
                    w if w.is_empty() => "its circuit breaker is open".to_owned(),
                    w => w,
                };
                Sent::Failed(failure_of(&error), format!("the event bus: {why}"))
            }
            Ok(Some(Ran::NoTime | Ran::NotMarked)) => Sent::Failed(
                Failure::Transient,
                "the event bus: not sent in this invocation".into(),
            ),
            Err((failure, why)) => Sent::Failed(failure, format!("the event bus: {why}")),
        }
    }

    /// Post `event` to the subscription with a fresh timestamp and signatures.
    /// What a post to subscription `name` needs from our side: its secrets (read again
    /// once when it has none: added since they were read) and the body.
    async fn prepare(
        &self,
        name: &str,
        subscription: &Subscription,
        event: &Event,
    ) -> Result<Prepared, DeliveryError> {
        let misconfigured = |reason: String| DeliveryError::Misconfigured {
            service: Service::Subscriber,
            reason,
        };
        let mut secrets = credential(&self.secrets, Service::Subscriber).await?;
        if !secrets.contains_key(name) {
            // Added since the secrets were read (the document is read by another cache).
            self.secrets.invalidate().await;
            secrets = credential(&self.secrets, Service::Subscriber).await?;
        }
        let secret = secrets
            .get(name)
            .ok_or_else(|| misconfigured("its secrets hold no signing secret".into()))?;
        let authorization = secret
            .authorization(subscription.auth)
            .map_err(|reason| misconfigured(reason.into()))?;
        let body = payload(subscription, event).map_err(|e| misconfigured(e.to_string()))?;
        Ok(Prepared {
            signing: secret.signing.clone(),
            authorization,
            body,
        })
    }

    /// Post the prepared body to the subscription, signed afresh for each attempt.
    async fn post(
        &self,
        subscription: &Subscription,
        prepared: &Prepared,
        event_id: &str,
        deadline: Instant,
    ) -> Result<(), DeliveryError> {
        deliver(Service::Subscriber, deadline, || async {
            let signed = sign(&prepared.signing, event_id, self.now(), &prepared.body).map_err(
                |reason| DeliveryError::Misconfigured {
                    service: Service::Subscriber,
                    reason,
                },
            )?;
            subscriber::post(
                &self.http,
                &subscription.url,
                &signed,
                prepared.authorization.as_deref(),
                prepared.body.clone(),
            )
            .await
        })
        .await
    }

    /// Now, by the breakers' clock (Unix seconds).
    fn now(&self) -> i64 {
        self.breaking.clock.now().unix_timestamp()
    }

    /// Subscription `name`'s health, read from the store by the batch's first send to it
    /// (healthy when it cannot be read: a send is then tried, never skipped).
    async fn health_of(&self, name: &str, health: &Healths) -> Health {
        if let Some(known) = health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return known.clone();
        }
        let known = self::health(self.guard.store().as_ref(), name)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(
                    subscription = name,
                    error,
                    "cannot read the subscription's health"
                );
                Health::default()
            });
        // Another send of the batch may have read it, or changed it, meanwhile.
        health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert(known)
            .clone()
    }

    /// Keep `next` as subscription `name`'s health (unless it was switched off meanwhile).
    async fn keep_health(&self, name: &str, health: &Healths, next: Health) {
        health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), next.clone());
        let key = health_key(name);
        let written = update_state(
            self.guard.store().as_ref(),
            (&key, HEALTH_KEPT),
            |current| {
                let current: Health = current
                    .and_then(|text| serde_json::from_str(text).ok())
                    .unwrap_or_default();
                (current.disabled.is_none() || next.disabled.is_some())
                    .then(|| serde_json::to_string(&next).unwrap_or_default())
            },
            "the subscription's health kept changing",
        )
        .await;
        if let Err(error) = written {
            tracing::warn!(subscription = name, error = %okr_core::error_chain(&error), "cannot keep the subscription's health");
        }
    }

    /// Switch subscription `name` off, saying why in the log and the metrics.
    async fn switch_off(&self, name: &str, health: &Healths, why: String, now: i64) {
        let off = Health {
            failing_since: None,
            last_failure: None,
            disabled: Some(Disabled {
                at: now,
                why: why.clone(),
            }),
        };
        {
            // Once a batch: its other sends to the subscription may answer 410 too.
            let mut known = health.lock().unwrap_or_else(PoisonError::into_inner);
            let state = known.entry(name.to_owned()).or_default();
            if state.disabled.is_some() {
                return;
            }
            *state = off.clone();
        }
        tracing::warn!(subscription = name, why = %why, outcome = "disabled", "subscription switched off; `okr-webhooks subscriptions enable` (on AWS with --stack) switches it on again");
        self.metrics.count(SERVICE, "SubscriptionsDisabled");
        self.keep_health(name, health, off).await;
    }

    /// Subscription `name`'s circuit breaker.
    fn breaker(&self, name: &str) -> Arc<Breaker> {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        breakers
            .entry(name.to_owned())
            .or_insert_with(|| {
                self.breaking
                    .breaker(destination(name), self.guard.store().clone())
            })
            .clone()
    }

    /// How long to wait before the next post to `name`, to keep under its rate.
    fn pause(&self, name: &str, rate: Option<u32>) -> Duration {
        let Some(rate) = rate else {
            return Duration::ZERO;
        };
        let gap = Duration::from_secs(1) / rate.max(1);
        let now = Instant::now();
        let mut pace = self.pace.lock().unwrap_or_else(PoisonError::into_inner);
        let next = pace.entry(name.to_owned()).or_insert(now);
        let at = (*next).max(now);
        *next = at + gap;
        at - now
    }
}

/// Of two failures of one record, the one that keeps it longest from the dead-letter
/// queue: waiting for a receiver to come back beats a refusal.
fn hopeful(a: Failure, b: Failure) -> Failure {
    match (a, b) {
        (Failure::Transient, _) | (_, Failure::Transient) => Failure::Transient,
        (Failure::HeldBack, _) | (_, Failure::HeldBack) => Failure::HeldBack,
        _ => Failure::Refused,
    }
}

/// The breaker name of subscription `name`, `subscription:<name>`: made once per name
/// for the life of the process (a breaker's name is `'static`; names are few).
fn destination(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let wanted = format!("subscription:{name}");
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(wanted.as_str()) {
        return known;
    }
    let made: &'static str = Box::leak(wanted.into_boxed_str());
    names.insert(made);
    made
}
