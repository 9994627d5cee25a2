//! Which consumer queues an event goes to, and what of it each one gets.

use std::fmt;

use wildmatch::WildMatch;

use crate::event::Event;

/// A consumer with its own queue (and its own dead-letter queue).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Consumer {
    /// Every event, into the data warehouse.
    Warehouse,
    /// Events with a notification rule, to Slack.
    Slack,
    /// Events that carry progress or status, to the progress alerts.
    Alerts,
    /// Events about an objective or key result (with its id), to the progress read model.
    Progress,
}

impl Consumer {
    /// Every consumer.
    pub const ALL: [Consumer; 4] = [
        Consumer::Warehouse,
        Consumer::Slack,
        Consumer::Alerts,
        Consumer::Progress,
    ];

    /// The consumer's name in configuration, logs and the `dlq` command.
    pub fn as_str(self) -> &'static str {
        match self {
            Consumer::Warehouse => "warehouse",
            Consumer::Slack => "slack",
            Consumer::Alerts => "alerts",
            Consumer::Progress => "progress",
        }
    }
}

impl fmt::Display for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The event types that notify Slack by default. `employee.terminated` is not one: a
/// termination announced in a channel is an HR decision; add it to `SLACK_NOTIFY_TYPES`
/// to post them.
pub const DEFAULT_NOTIFY_TYPES: &str = "objective.completed,key_result.progress_updated,\
employee.created,award_record.created,rank_record.created,qualification_record.created";

/// Which event types get a Slack message: glob patterns over `type`
/// (`objective.*`, `*.completed`), set by `SLACK_NOTIFY_TYPES` as a comma-separated list.
#[derive(Debug, Clone)]
pub struct NotifyRules {
    /// Compiled once: `matches` runs for every delivery.
    patterns: Vec<WildMatch>,
}

impl NotifyRules {
    /// Rules from a comma-separated list of glob patterns; blanks are ignored.
    pub fn parse(list: &str) -> Self {
        NotifyRules {
            patterns: list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(WildMatch::new)
                .collect(),
        }
    }

    /// Whether events of `event_type` notify.
    pub fn matches(&self, event_type: &str) -> bool {
        self.patterns
            .iter()
            .any(|pattern| pattern.matches(event_type))
    }
}

impl Default for NotifyRules {
    fn default() -> Self {
        NotifyRules::parse(DEFAULT_NOTIFY_TYPES)
    }
}

/// The queues `event` goes to: the warehouse gets every event; Slack those with a
/// notification rule; the alerts those that carry progress or status; the progress read
/// model those about an objective or key result with an id.
pub fn route(event: &Event, rules: &NotifyRules) -> Vec<Consumer> {
    let tracked = event.progress.is_some() || event.status.is_some();
    let projected = event.entity.id.is_some() && is_tracked_kind(&event.entity.kind);
    route_by(&event.event_type, tracked, projected, rules)
}

/// [`route`] from what it reads: the event's type, whether it carries progress or
/// status (`tracked`), and whether it is about an objective or key result with an id
/// (`projected`).
pub fn route_by(
    event_type: &str,
    tracked: bool,
    projected: bool,
    rules: &NotifyRules,
) -> Vec<Consumer> {
    let mut consumers = vec![Consumer::Warehouse];
    if rules.matches(event_type) {
        consumers.push(Consumer::Slack);
    }
    if tracked {
        consumers.push(Consumer::Alerts);
    }
    if projected {
        consumers.push(Consumer::Progress);
    }
    consumers
}

/// The event as the Slack and alerts queues (and their dead-letter queues) get it: with
/// the provider's payload cut down to the names and the period
/// ([`crate::normalize::notification_payload`]). Their messages and rules read only the
/// event's own fields (`related`, `period`, progress, status); the cut-down payload is
/// for consumers of the previous version during an upgrade. Birth dates, personal
/// emails, phones and the rest of the body stay in the warehouse only.
pub fn notification_view(event: &Event) -> Result<Event, serde_json::Error> {
    Ok(Event {
        payload: crate::normalize::notification_payload(event)?,
        ..event.clone()
    })
}

/// The entities the progress read model keeps: objectives and key results.
pub fn is_tracked_kind(kind: &str) -> bool {
    matches!(kind, "objective" | "key_result")
}
