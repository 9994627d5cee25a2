//! Which consumer queues an event goes to, and what of it each one gets.

use serde_json::{Map, Value};
use wildmatch::WildMatch;

use crate::alerts::rules::{PERIOD_ENDS, PERIOD_NESTED, PERIOD_OBJECTS, PERIOD_STARTS};
use crate::event::Event;
use crate::queue::Consumer;
use crate::slack::message::{NAMED_OBJECTS, RECORD_TYPE};

/// The event types that notify Slack by default. `employee.terminated` is not one: a
/// termination announced in a channel is an HR decision; add it to `SLACK_NOTIFY_TYPES`
/// to post them.
pub const DEFAULT_NOTIFY_TYPES: &str = "objective.completed,key_result.progress_updated,\
employee.created,award_record.created,rank_record.created,qualification_record.created";

/// Which event types get a Slack message: glob patterns over `type`
/// (`objective.*`, `*.completed`), set by `SLACK_NOTIFY_TYPES` as a comma-separated list.
#[derive(Debug, Clone)]
pub struct NotifyRules {
    patterns: Vec<String>,
}

impl NotifyRules {
    /// Rules from a comma-separated list of glob patterns; blanks are ignored.
    pub fn parse(list: &str) -> Self {
        NotifyRules {
            patterns: list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Whether events of `event_type` notify.
    pub fn matches(&self, event_type: &str) -> bool {
        self.patterns
            .iter()
            .any(|pattern| WildMatch::new(pattern).matches(event_type))
    }
}

impl Default for NotifyRules {
    fn default() -> Self {
        NotifyRules::parse(DEFAULT_NOTIFY_TYPES)
    }
}

/// The queues `event` goes to: the warehouse gets every event; Slack those with a
/// notification rule; the alerts those that carry progress or status.
pub fn route(event: &Event, rules: &NotifyRules) -> Vec<Consumer> {
    let mut consumers = vec![Consumer::Warehouse];
    if rules.matches(&event.event_type) {
        consumers.push(Consumer::Slack);
    }
    if event.progress.is_some() || event.status.is_some() {
        consumers.push(Consumer::Alerts);
    }
    consumers
}

/// The event as the Slack and alerts queues (and their dead-letter queues) get it: the
/// provider's payload cut down to what their messages and rules read (the names of a
/// person's department and position, of a PERSCOM record's user, rank, award and
/// qualification, a rank record's kind, and a key result's period). Birth dates,
/// personal emails, phones and the rest stay in the warehouse only.
pub fn notification_view(event: &Event) -> Event {
    Event {
        schema: event.schema.clone(),
        id: event.id.clone(),
        source: event.source,
        event_type: event.event_type.clone(),
        provider_event: event.provider_event.clone(),
        entity: event.entity.clone(),
        occurred_at: event.occurred_at,
        received_at: event.received_at,
        actor: event.actor.clone(),
        status: event.status.clone(),
        progress: event.progress.clone(),
        changed_fields: event.changed_fields.clone(),
        payload: notification_payload(&event.payload, has_period(event)),
    }
}

/// Only key results and objectives have a period the alerts read; an HR record's dates
/// under the same names stay in the warehouse.
fn has_period(event: &Event) -> bool {
    matches!(event.entity.kind.as_str(), "key_result" | "objective")
}

fn notification_payload(payload: &Value, with_period: bool) -> Value {
    let period_fields = |object: &Value| match with_period {
        true => period_fields(object),
        false => Map::new(),
    };
    let mut kept = period_fields(payload);
    if let Some(data_value) = payload.get("data")
        && let Some(data) = data_value.as_object()
    {
        let mut data_kept = period_fields(data_value);
        for key in NAMED_OBJECTS {
            if let Some(name) = data.get(key).and_then(|object| object.get("name")) {
                data_kept.insert(key.to_owned(), serde_json::json!({ "name": name }));
            }
        }
        if let Some(kind) = data.get(RECORD_TYPE).filter(|kind| kind.is_number()) {
            data_kept.insert(RECORD_TYPE.to_owned(), kind.clone());
        }
        if !data_kept.is_empty() {
            kept.insert("data".to_owned(), Value::Object(data_kept));
        }
    }
    for key in PERIOD_OBJECTS.iter().filter(|key| **key != "data") {
        if let Some(object) = payload.get(*key) {
            let period = period_fields(object);
            if !period.is_empty() {
                kept.insert((*key).to_owned(), Value::Object(period));
            }
        }
    }
    Value::Object(kept)
}

/// The period fields of `object`, as they are.
fn period_fields(object: &Value) -> Map<String, Value> {
    PERIOD_STARTS
        .iter()
        .chain(&PERIOD_ENDS)
        .chain(&[PERIOD_NESTED])
        .filter_map(|key| Some(((*key).to_owned(), object.get(*key)?.clone())))
        .collect()
}
