//! One objective's or key result's state in the read model, and how an event changes it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use okr_core::event::{Event, Period};
use okr_core::person::Owner;
use okr_core::rules::{Rule, Thresholds, holds, is_done};
use okr_core::source::Source;

/// Progress points kept per entity: the last 30.
pub const HISTORY: usize = 30;

pub use okr_core::routing::is_tracked_kind;

/// An objective or key result as it stands, keyed by source and id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    /// Who sent its events.
    pub source: Source,
    /// The endpoint its events came through, when it is not named after its source
    /// (two accounts of one tool keep apart); absent in records from before endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Source>,
    /// The provider's id for it.
    pub id: String,
    /// `objective` or `key_result`.
    pub kind: String,
    /// Its title, when an event named it.
    pub title: Option<String>,
    /// The objective it belongs to (key results).
    pub objective_id: Option<String>,
    /// Progress in percent, when an event carried it.
    pub progress: Option<f64>,
    /// The last [`HISTORY`] progress points, oldest first.
    pub history: Vec<Point>,
    /// The provider's status.
    pub status: Option<String>,
    /// Its period, when an event carried one.
    pub period: Option<Period>,
    /// Completed (by its type or its status).
    pub completed: bool,
    /// Deleted at the provider.
    pub deleted: bool,
    /// When the newest event applied happened (`occurred_at`).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Who made that change: a name only.
    pub updated_by: Option<String>,
    /// Its owner or assignee, as the newest event that named one said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_owner: Option<Owner>,
    /// The progress alerts' rules that hold after it (none once completed or deleted).
    pub rules: Vec<Rule>,
    /// The newest event applied: with `updated_at`, the order events are judged by.
    pub last_event: String,
    /// Which event set each field: a field holds what the newest event that carried it
    /// said, so the state does not depend on the order events arrive in.
    #[serde(default)]
    pub set_by: SetBy,
    /// Bumped by every write; the store writes only over the version it read.
    pub version: u64,
}

/// The event each field was last set by.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetBy {
    /// `title`.
    pub title: Option<Stamp>,
    /// `objective_id`.
    pub objective_id: Option<Stamp>,
    /// `status`.
    pub status: Option<Stamp>,
    /// `period`.
    pub period: Option<Stamp>,
    /// `completed`: the newest event that said (a `*.completed` type, or a status).
    pub completed: Option<Stamp>,
    /// `deleted`: the newest event (a delete wins a tie).
    pub deleted: Option<Stamp>,
    /// `owner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Stamp>,
}

/// An event's place in time: `occurred_at`, then its id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    /// `occurred_at`.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The event's id.
    pub event: String,
}

impl Stamp {
    fn of(event: &Event) -> Stamp {
        Stamp {
            at: event.occurred_at,
            event: event.id.clone(),
        }
    }
}

/// Whether `event` is newer than what set a field (`stamp`; none: nothing did).
fn newer(stamp: &Option<Stamp>, event: &Event) -> bool {
    stamp
        .as_ref()
        .is_none_or(|s| (event.occurred_at, event.id.as_str()) > (s.at, s.event.as_str()))
}

/// Set `field` to `value` (when the event carries one) if `event` is newer than what set it.
fn set<T>(field: &mut Option<T>, stamp: &mut Option<Stamp>, value: Option<T>, event: &Event) {
    if let Some(value) = value
        && newer(stamp, event)
    {
        *field = Some(value);
        *stamp = Some(Stamp::of(event));
    }
}

/// One progress point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// When (`occurred_at`).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Percent.
    pub progress: f64,
    /// The event that carried it (so a repeat does not add it twice).
    pub event: String,
}

impl Tracked {
    /// A new entity from its first event; `None` unless it is an objective or key result
    /// with an id.
    pub fn first(event: &Event, thresholds: &Thresholds) -> Option<Tracked> {
        let id = event.entity.id.clone()?;
        if !is_tracked_kind(&event.entity.kind) {
            return None;
        }
        let mut tracked = Tracked {
            source: event.source,
            endpoint: Some(event.endpoint()).filter(|endpoint| *endpoint != event.source),
            id,
            kind: event.entity.kind.clone(),
            title: None,
            objective_id: None,
            progress: None,
            history: Vec::new(),
            status: None,
            period: None,
            completed: false,
            deleted: false,
            updated_at: event.occurred_at,
            updated_by: None,
            named_owner: None,
            rules: Vec::new(),
            last_event: String::new(),
            set_by: SetBy::default(),
            version: 0,
        };
        tracked.apply(event, thresholds);
        Some(tracked)
    }

    /// The key the store keeps it under: `<endpoint>#<id>`, which is `<source>#<id>`
    /// for an endpoint named after its source (as every record before endpoints was).
    pub fn key(&self) -> String {
        key(self.endpoint.unwrap_or(self.source), &self.id)
    }

    /// Apply `event`; whether anything changed (the version is bumped when it did). Each
    /// field takes what the newest event that carried it said (by `occurred_at`, then
    /// event id); the progress is the newest point of the history; `updated_at` and
    /// `updated_by` are the newest event's. So any order of arrival gives the state of
    /// the events in order, and an event applied already changes nothing.
    pub fn apply(&mut self, event: &Event, thresholds: &Thresholds) -> bool {
        if event.id == self.last_event {
            return false;
        }
        let before = self.clone();
        self.add_point(event);
        self.progress = self.history.last().map(|p| p.progress);
        let entity = &event.entity;
        // A key result is one whatever another event of its own calls it.
        if entity.kind == "key_result" {
            self.kind = entity.kind.clone();
        }
        let status = event.status.as_ref().and_then(|s| s.current.clone());
        let completed = match &status {
            _ if event.event_type.ends_with(".completed") => Some(true),
            Some(status) => Some(is_done(status)),
            None => None,
        };
        let by = &mut self.set_by;
        set(&mut self.title, &mut by.title, entity.name.clone(), event);
        set(
            &mut self.objective_id,
            &mut by.objective_id,
            entity.parent.clone(),
            event,
        );
        set(&mut self.period, &mut by.period, event.period, event);
        set(
            &mut self.named_owner,
            &mut by.owner,
            event.owner.clone(),
            event,
        );
        set(&mut self.status, &mut by.status, status, event);
        let mut done = Some(self.completed);
        set(&mut done, &mut by.completed, completed, event);
        self.completed = done.unwrap_or(false);
        // Every event says whether the entity is deleted; a delete wins a tie with the
        // update it shares its time with (a provider's delete keeps the last `updatedAt`).
        let deleting = event.event_type.ends_with(".deleted");
        let place = |at, deleted, id: &str| (at, deleted, id.to_owned());
        let later = by.deleted.as_ref().is_none_or(|s| {
            place(event.occurred_at, deleting, &event.id) > place(s.at, self.deleted, &s.event)
        });
        if later {
            self.deleted = deleting;
            by.deleted = Some(Stamp::of(event));
        }
        if self.last_event.is_empty()
            || (event.occurred_at, event.id.as_str()) > (self.updated_at, self.last_event.as_str())
        {
            self.updated_at = event.occurred_at;
            self.last_event = event.id.clone();
            self.updated_by = event.actor.as_ref().and_then(|a| a.name.clone());
        }
        self.rules = self.holding(thresholds);
        let changed = *self != before;
        if changed {
            self.version = before.version + 1;
        }
        changed
    }

    fn add_point(&mut self, event: &Event) {
        let Some(progress) = event.progress.as_ref().and_then(|p| p.current) else {
            return;
        };
        if self.history.iter().any(|p| p.event == event.id) {
            return;
        }
        let place = (event.occurred_at, event.id.as_str());
        let at = self
            .history
            .partition_point(|p| (p.at, p.event.as_str()) < place);
        if self.history.len() >= HISTORY && at == 0 {
            // Older than every point kept.
            return;
        }
        self.history.insert(
            at,
            Point {
                at: event.occurred_at,
                progress,
                event: event.id.clone(),
            },
        );
        if self.history.len() > HISTORY {
            self.history.remove(0);
        }
    }

    /// The rules that hold as of the newest update, by the alerts' own rule functions.
    fn holding(&self, thresholds: &Thresholds) -> Vec<Rule> {
        if self.completed || self.deleted {
            return Vec::new();
        }
        // The drop is judged between the last two points (the last is the current one).
        let previous = match self.history.as_slice() {
            [.., before, _] => Some(before.progress),
            _ => None,
        };
        holds(
            self.progress,
            previous,
            self.status.as_deref(),
            self.period,
            self.updated_at,
            thresholds,
        )
    }

    /// Whom it belongs to: the owner or assignee the provider named, else whoever
    /// updated it last (by name).
    pub fn owner(&self) -> Option<Owner> {
        self.named_owner.clone().or_else(|| {
            self.updated_by.as_ref().map(|name| Owner {
                name: Some(name.clone()),
                ..Owner::default()
            })
        })
    }

    /// How far behind its period's pace it is, in points (negative: ahead); for
    /// sorting "most behind first". Without a period, the distance to 100.
    pub fn behind(&self) -> f64 {
        if self.completed || self.deleted {
            return f64::NEG_INFINITY;
        }
        let progress = self.progress.unwrap_or(0.0);
        match self.period {
            Some(period) => period.elapsed(self.updated_at) - progress,
            None => 100.0 - progress,
        }
    }
}

/// The store key of `id` from the endpoint (or source) `source`.
pub fn key(source: Source, id: &str) -> String {
    format!("{source}#{id}")
}
