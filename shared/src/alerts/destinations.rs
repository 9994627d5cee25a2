//! Where alerts go: the Slack alerts channel and PagerDuty, each with its own alert
//! state, and one send to one of them.

use std::sync::Arc;

use tokio::time::Instant;

use crate::outbound::pagerduty::{Alert, PagerDuty, PagerDutyClient, RoutingKey};
use crate::outbound::slack::{SlackMessage, SlackPoster, WebhookPoster, WebhookUrl};
use crate::outbound::{DeliveryError, Service, deliver};
use crate::secrets::SecretCache;

/// Where alerts go; either may be absent, not both.
pub struct Destinations {
    /// The Slack alerts channel.
    pub slack: Option<Arc<dyn SlackPoster>>,
    /// PagerDuty Events API v2.
    pub pagerduty: Option<Arc<dyn PagerDuty>>,
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
        }
    }
}

/// One destination, with its own alert state.
pub(super) enum Destination {
    Slack(Arc<dyn SlackPoster>),
    PagerDuty(Arc<dyn PagerDuty>),
}

impl Destination {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Destination::Slack(_) => "slack",
            Destination::PagerDuty(_) => "pagerduty",
        }
    }
}

/// One send to one destination.
pub(super) enum Send {
    Slack(Arc<dyn SlackPoster>, SlackMessage),
    PagerDuty(Arc<dyn PagerDuty>, Alert),
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
        }
    }
}
