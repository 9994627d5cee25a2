//! Which consumer queues an event goes to, and what of it each one gets.

use std::fmt;

use wildmatch::WildMatch;

use crate::event::{Event, Payload};

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
    /// Events about an objective or key result (with its id), to the progress read
    /// model; HR records (with a `person`), to the directory beside it.
    Progress,
    /// Events a subscription takes, to the services that subscribed
    /// ([`crate::subscriptions`]).
    Subscriptions,
}

impl Consumer {
    /// Every consumer.
    pub const ALL: [Consumer; 5] = [
        Consumer::Warehouse,
        Consumer::Slack,
        Consumer::Alerts,
        Consumer::Progress,
        Consumer::Subscriptions,
    ];

    /// The consumer's name in configuration, logs and the `dlq` command.
    pub fn as_str(self) -> &'static str {
        match self {
            Consumer::Warehouse => "warehouse",
            Consumer::Slack => "slack",
            Consumer::Alerts => "alerts",
            Consumer::Progress => "progress",
            Consumer::Subscriptions => "subscriptions",
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
/// model those about an objective or key result with an id, and HR records.
pub fn route(event: &Event, rules: &NotifyRules) -> Vec<Consumer> {
    let tracked = event.progress.is_some() || event.status.is_some();
    let projected = is_projected(
        &event.entity.kind,
        event.entity.id.is_some(),
        event.person.is_some(),
    );
    route_by(&event.event_type, tracked, projected, rules)
}

/// Whether the progress queue takes an event: an objective or key result with an id
/// (the read model), or an HR record (the directory): one with a `person`, or an
/// employee's event from before `person` was added, which the consumer fills in.
pub fn is_projected(kind: &str, has_id: bool, has_person: bool) -> bool {
    has_person || (has_id && (is_tracked_kind(kind) || kind == "employee"))
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
    Ok(notification_view_with(
        event,
        crate::normalize::notification_payload(event)?,
    ))
}

/// [`notification_view`] with its cut-down payload already made (by
/// [`crate::normalize::notification_payload`]), for a caller making more than one view.
pub fn notification_view_with(event: &Event, payload: Payload) -> Event {
    Event {
        // An HR record's work and manager emails are for the directory only.
        person: None,
        ..event.with_payload(payload)
    }
}

/// The event as `consumer`'s queue gets it: whole for the warehouse and the
/// subscriptions (whose consumer cuts it down for each subscription that does not ask
/// for the whole event: [`crate::subscriptions::payload`]); for the progress
/// queue, the notification view with an HR record's `person` kept (the directory's
/// fields); for Slack and the alerts, the notification view.
pub fn view_for(event: &Event, consumer: Consumer) -> Result<Event, serde_json::Error> {
    match consumer {
        Consumer::Warehouse | Consumer::Subscriptions => Ok(event.clone()),
        // The notification view, `person` kept.
        Consumer::Progress => {
            Ok(event.with_payload(crate::normalize::notification_payload(event)?))
        }
        Consumer::Slack | Consumer::Alerts => notification_view(event),
    }
}

/// The entities the progress read model keeps: objectives and key results.
pub fn is_tracked_kind(kind: &str) -> bool {
    matches!(kind, "objective" | "key_result")
}
