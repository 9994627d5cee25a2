//! Where alerts go: the Slack alerts channel, PagerDuty and email, each with its own
//! alert state, and one send to one of them.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tokio::time::Instant;

use crate::alerts::email::alert_email;
use crate::alerts::messages::{pagerduty_alert, recovered_message, trigger_message};
use crate::email::recipients::Recipients;
use okr_core::event::Event;
use okr_core::rules::{Assessment, Rule, Thresholds};
use okr_pipeline::batch::RecordError;
use okr_pipeline::breaker::{ALERTS_SLACK, Breaker, BreakerConfig, EMAIL, PAGERDUTY};
use okr_pipeline::idempotency::StateStore;
use okr_pipeline::outbound::mail::{Email, Mailer};
use okr_pipeline::outbound::pagerduty::{Action, Alert, PagerDuty, PagerDutyClient, RoutingKey};
use okr_pipeline::outbound::slack::{SlackMessage, SlackPoster, WebhookPoster, WebhookUrl};
use okr_pipeline::outbound::{DeliveryError, Service, deliver};
use okr_pipeline::secrets::SecretCache;

/// Where alerts go; any may be absent, not all.
pub struct Destinations {
    /// The Slack alerts channel.
    pub slack: Option<Arc<dyn SlackPoster>>,
    /// PagerDuty Events API v2.
    pub pagerduty: Option<Arc<dyn PagerDuty>>,
    /// Email to the alert recipients whose scope covers the key result.
    pub email: Option<EmailAlerts>,
}

/// Alert emails: a mailer and the recipients document.
#[derive(Clone)]
pub struct EmailAlerts {
    /// Sends them.
    pub mailer: Arc<dyn Mailer>,
    /// Who gets them (those with `"alerts": true`).
    pub recipients: Arc<SecretCache<Recipients>>,
}

impl Destinations {
    /// The alerts channel's incoming webhook and PagerDuty's Events API (at
    /// `pagerduty.0`), over `http`, with their credentials from secret caches; either may
    /// be absent.
    pub fn over_http(
        http: &reqwest::Client,
        slack: Option<SecretCache<WebhookUrl>>,
        pagerduty: Option<(String, SecretCache<RoutingKey>)>,
    ) -> Self {
        Destinations {
            slack: slack.map(|url| -> Arc<dyn SlackPoster> {
                Arc::new(WebhookPoster::new(http.clone(), url))
            }),
            pagerduty: pagerduty.map(|(url, key)| -> Arc<dyn PagerDuty> {
                Arc::new(PagerDutyClient::new(http.clone(), url, key))
            }),
            email: None,
        }
    }
}

impl Destinations {
    /// Each destination with its circuit breaker, made by `config` over `store`.
    pub(super) fn with_breakers(
        self,
        config: &BreakerConfig,
        store: &Arc<dyn StateStore>,
    ) -> Vec<Destination> {
        let slack = self.slack.map(|poster| Destination {
            to: To::Slack(poster),
            breaker: config.breaker(ALERTS_SLACK, store.clone()),
            held_back: AtomicUsize::new(0),
        });
        let pagerduty = self.pagerduty.map(|client| Destination {
            to: To::PagerDuty(client),
            breaker: config.breaker(PAGERDUTY, store.clone()),
            held_back: AtomicUsize::new(0),
        });
        let email = self.email.map(|email| Destination {
            to: To::Email(email),
            breaker: config.breaker(EMAIL, store.clone()),
            held_back: AtomicUsize::new(0),
        });
        slack.into_iter().chain(pagerduty).chain(email).collect()
    }
}

/// One destination, with its own alert state and circuit breaker.
pub(super) struct Destination {
    pub(super) to: To,
    pub(super) breaker: Arc<Breaker>,
    /// Sends its breaker held back in the batch at hand (the metric's count).
    pub(super) held_back: AtomicUsize,
}

/// Where a destination's sends go.
pub(super) enum To {
    Slack(Arc<dyn SlackPoster>),
    PagerDuty(Arc<dyn PagerDuty>),
    Email(EmailAlerts),
}

impl Destination {
    /// Its name in the alert state's keys.
    pub(super) fn name(&self) -> &'static str {
        match self.to {
            To::Slack(_) => "slack",
            To::PagerDuty(_) => "pagerduty",
            To::Email(_) => "email",
        }
    }

    /// Its name in logs, metrics and its circuit breaker (`alerts-slack`, `pagerduty`,
    /// `email`): the alerts channel is told apart from the notifier's Slack.
    pub(super) fn breaker_name(&self) -> &'static str {
        match self.to {
            To::Slack(_) => ALERTS_SLACK,
            To::PagerDuty(_) => PAGERDUTY,
            To::Email(_) => EMAIL,
        }
    }

    /// The service it is.
    pub(super) fn service(&self) -> Service {
        match self.to {
            To::Slack(_) => Service::Slack,
            To::PagerDuty(_) => Service::PagerDuty,
            To::Email(_) => Service::Email,
        }
    }

    /// What to send here for `rule`, each with whom it goes to in its once-only key:
    /// Slack hears of triggers and of recoveries (a completion it hears from the
    /// notifier, and a drop is over when progress rises again, which is not news);
    /// PagerDuty and email of every trigger and resolve, email once per alert recipient
    /// whose scope covers the key result (`email:<recipient id>`).
    pub(super) async fn sends_for(
        &self,
        event: &Event,
        (rule, action): (Rule, Action),
        assessment: &Assessment,
        thresholds: &Thresholds,
    ) -> Result<Vec<(String, Send)>, RecordError> {
        let name = self.name().to_owned();
        Ok(match &self.to {
            To::Slack(slack) => {
                let message = match action {
                    Action::Trigger => trigger_message(event, rule, thresholds),
                    Action::Resolve if !assessment.completed && rule != Rule::Dropped => {
                        recovered_message(event, rule)
                    }
                    Action::Resolve => return Ok(Vec::new()),
                };
                vec![(name, Send::Slack(Arc::clone(slack), message))]
            }
            To::PagerDuty(pagerduty) => vec![(
                name,
                Send::PagerDuty(
                    Arc::clone(pagerduty),
                    pagerduty_alert(event, rule, action, assessment, thresholds),
                ),
            )],
            To::Email(email) => {
                let recipients = email.recipients.current().await?;
                recipients
                    .for_alert(event)
                    .map(|recipient| {
                        let id = recipient.id();
                        let message = alert_email(
                            &recipient.address,
                            event,
                            (rule, action),
                            assessment,
                            thresholds,
                        );
                        let send = Send::Email(Arc::clone(&email.mailer), message, id.clone());
                        (format!("{name}:{id}"), send)
                    })
                    .collect()
            }
        })
    }
}

/// One send to one destination.
pub(super) enum Send {
    Slack(Arc<dyn SlackPoster>, SlackMessage),
    PagerDuty(Arc<dyn PagerDuty>, Alert),
    /// The email, and its recipient's id (for logs).
    Email(Arc<dyn Mailer>, Email, String),
}

impl Send {
    pub(super) async fn deliver(&self, deadline: Instant) -> Result<(), DeliveryError> {
        match self {
            Send::Slack(poster, message) => {
                deliver(Service::Slack, deadline, || poster.post(message)).await
            }
            Send::PagerDuty(client, alert) => {
                deliver(Service::PagerDuty, deadline, || client.send(alert)).await
            }
            Send::Email(mailer, email, recipient) => {
                match deliver(Service::Email, deadline, || mailer.send(email)).await {
                    // One address refused (a typo, a full mailbox) is that recipient's
                    // loss, not a reason to retry the others' alerts: logged, skipped.
                    Err(error) if error.is_refusal() => {
                        tracing::warn!(destination = EMAIL, recipient = %recipient, reason = %error, outcome = "refused", "alert email refused; skipped");
                        Ok(())
                    }
                    other => other,
                }
            }
        }
    }
}
