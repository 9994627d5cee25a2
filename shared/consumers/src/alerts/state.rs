//! A key result's alert state at one destination, and how an update changes it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use okr_core::event::Event;
use okr_core::rules::{Assessment, Rule};
use okr_pipeline::outbound::pagerduty::Action;

/// A key result's alerts at one destination, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct AlertState {
    /// The `occurred_at` of the newest update applied.
    #[serde(with = "time::serde::rfc3339::option")]
    as_of: Option<OffsetDateTime>,
    /// The events applied that happened at `as_of` (updates may share a second): one
    /// of them delivered again is not applied twice.
    #[serde(default)]
    as_of_events: Vec<String>,
    /// Every rule that has had an alert, open or closed.
    rules: BTreeMap<Rule, RuleState>,
}

/// One rule's alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RuleState {
    open: bool,
    /// When it opened or closed (the update's `occurred_at`).
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
    /// The event that opened or closed it.
    event_id: String,
    /// When the trigger was last sent (the update's `occurred_at`).
    #[serde(with = "time::serde::rfc3339")]
    alerted_at: OffsetDateTime,
}

impl AlertState {
    /// What `event`, judged as `assessment`, opens and resolves, and the state after
    /// it; `None` when it was applied already, or an update newer than it was.
    pub(super) fn apply(
        &self,
        event: &Event,
        assessment: &Assessment,
        window: Duration,
    ) -> Option<(Vec<(Rule, Action)>, AlertState)> {
        let at = event.occurred_at;
        let as_of_events = match self.as_of {
            Some(as_of) if at < as_of => return None,
            Some(as_of) if at == as_of => {
                if self.as_of_events.contains(&event.id) {
                    return None;
                }
                let mut events = self.as_of_events.clone();
                events.push(event.id.clone());
                events
            }
            _ => vec![event.id.clone()],
        };
        let mut next = AlertState {
            as_of: Some(at),
            as_of_events,
            rules: self.rules.clone(),
        };
        let mut changes = Vec::new();
        for rule in Rule::ALL {
            let open = self.rules.get(&rule).filter(|state| state.open);
            if assessment.holding.contains(&rule) {
                let opened = match open {
                    None => RuleState {
                        open: true,
                        since: at,
                        event_id: event.id.clone(),
                        alerted_at: at,
                    },
                    Some(state) if at - state.alerted_at >= window => RuleState {
                        alerted_at: at,
                        ..state.clone()
                    },
                    Some(_) => continue,
                };
                changes.push((rule, Action::Trigger));
                next.rules.insert(rule, opened);
            } else if assessment.clear.contains(&rule) {
                let Some(state) = open else { continue };
                changes.push((rule, Action::Resolve));
                next.rules.insert(
                    rule,
                    RuleState {
                        open: false,
                        since: at,
                        event_id: event.id.clone(),
                        alerted_at: state.alerted_at,
                    },
                );
            }
        }
        Some((changes, next))
    }
}
