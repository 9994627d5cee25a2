//! Local mode without Slack or PagerDuty configured: the messages are printed.

use std::io::Write;

use async_trait::async_trait;

use okr_pipeline::outbound::DeliveryError;
use okr_pipeline::outbound::pagerduty::{Alert, PagerDuty};
use okr_pipeline::outbound::slack::{SlackMessage, SlackPoster};

/// Prints each message's text on stdout, with a label.
pub struct Printer(pub &'static str);

#[async_trait]
impl SlackPoster for Printer {
    async fn post(&self, message: &SlackMessage) -> Result<(), DeliveryError> {
        let _ = writeln!(std::io::stdout().lock(), "[{}] {}", self.0, message.text);
        Ok(())
    }
}

#[async_trait]
impl PagerDuty for Printer {
    async fn send(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let action = serde_json::to_value(alert.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stdout().lock(),
            "[{}] {action} {}: {}",
            self.0,
            alert.dedup_key,
            alert.summary
        );
        Ok(())
    }
}
