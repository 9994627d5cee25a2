//! What messages and rules need from a body besides the entity: a key result's period,
//! and the names an HR record refers to. Read the same way for every source.

use serde_json::value::RawValue;

use crate::json::Json;
use crate::normalize::lazy::{Copied, Kept, Picked, Want};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::event::{Event, Payload, Period, RankChange, Related};

/// Where in the body a period may be: the entity itself, or its `entity` / `data`.
const PERIOD_OBJECTS: [&str; 2] = ["entity", "data"];
/// The fields that may hold a period's first day.
const PERIOD_STARTS: [&str; 3] = ["startDate", "start_date", "periodStart"];
/// The fields that may hold a period's due date.
const PERIOD_ENDS: [&str; 5] = ["dueDate", "due_date", "endDate", "end_date", "periodEnd"];
/// A field holding `{start, end}`.
const PERIOD_NESTED: &str = "period";

/// The period sent with a key result or objective (`entity_kind`): `startDate`/`dueDate`,
/// `period: {start, end}` or `start_date`/`due_date`, in the body, its `entity` or its
/// `data`, whichever provider sent it. An HR record's dates under the
/// same names are not a period.
pub(super) fn period(body: &Json<'_>, entity_kind: &str) -> Option<Period> {
    if !matches!(entity_kind, "key_result" | "objective") {
        return None;
    }
    let objects = PERIOD_OBJECTS
        .map(|key| body.get(key))
        .into_iter()
        .chain([Some(body)]);
    for object in objects.flatten() {
        let field = |keys: &[&str]| keys.iter().find_map(|k| object.get(k).and_then(date_value));
        let nested = object.get(PERIOD_NESTED);
        let start = field(&PERIOD_STARTS)
            .or_else(|| nested.and_then(|p| p.get("start")).and_then(date_value));
        let due =
            field(&PERIOD_ENDS).or_else(|| nested.and_then(|p| p.get("end")).and_then(date_value));
        if let (Some(start), Some(due)) = (start, due) {
            return (due > start).then_some(Period { start, due });
        }
    }
    None
}

/// An RFC 3339 time or a date (midnight UTC), plain or as a `{previous, current}` pair.
fn date_value(value: &Json<'_>) -> Option<OffsetDateTime> {
    let value = match value {
        Json::Object(pair) => pair.get("current")?,
        other => other,
    };
    let text = value.as_str()?;
    let time = OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        let day = Date::parse(text, format_description!("[year]-[month]-[day]")).ok()?;
        Some(PrimitiveDateTime::new(day, time::Time::MIDNIGHT).assume_utc())
    })?;
    crate::event::utc(time)
}

/// The objects under `data` whose `name` [`related`] reads.
const NAMED_OBJECTS: [&str; 6] = [
    "user",
    "department",
    "position",
    "award",
    "rank",
    "qualification",
];
/// The `data` field telling a rank record's kind.
const RECORD_TYPE: &str = "type";

/// The payload cut down to what [`period`] and [`related`] read: the names under `data`,
/// a rank record's kind, and a key result's or objective's period fields. The Slack and
/// alerts queues get this instead of the whole body, so a consumer of the previous
/// version (which read these from the payload) reads the same during an upgrade or a
/// rollback; birth dates, personal emails, phones and the rest never reach them.
pub fn notification_payload(event: &Event) -> Result<Payload, serde_json::Error> {
    // A key result's or objective's period fields; none for another kind.
    let with_period = matches!(event.entity.kind.as_str(), "key_result" | "objective");
    let period: Vec<&'static str> = match with_period {
        true => (PERIOD_STARTS
            .iter()
            .chain(&PERIOD_ENDS)
            .chain(&[PERIOD_NESTED]))
        .copied()
        .collect(),
        false => Vec::new(),
    };
    // One pass over the body picks all of it: the period fields in the body, its `data`
    // and its `entity`; under `data` a rank record's kind and each named object's name.
    let name = NAMED_OBJECTS.map(|key| (key, Want::values(&["name"])));
    let data = Want {
        keep: &[&period[..], &[RECORD_TYPE]].concat(),
        descend: &name,
    };
    let mut objects = vec![("data", data)];
    for key in PERIOD_OBJECTS.iter().filter(|key| **key != "data") {
        objects.push((key, Want::values(&period)));
    }
    let want = Want {
        keep: &period,
        descend: &objects,
    };
    let payload = Picked::of(event.payload.raw(), &want)?;
    let mut kept = kept_values(&payload, &period);
    if let Some(data) = payload.object("data") {
        let mut data_kept = kept_values(data, &period);
        for key in NAMED_OBJECTS {
            if let Some(named) = data.object(key).map(|o| kept_values(o, &["name"]))
                && !named.is_empty()
            {
                data_kept.insert(key, Copied::Object(named));
            }
        }
        let number = |raw: &&RawValue| {
            raw.get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit())
        };
        if let Some(kind) = data.value(RECORD_TYPE).filter(number) {
            data_kept.insert(RECORD_TYPE, Copied::Raw(kind));
        }
        if !data_kept.is_empty() {
            kept.insert("data", Copied::Object(data_kept));
        }
    }
    for key in PERIOD_OBJECTS.iter().filter(|key| **key != "data") {
        if let Some(period) = payload.object(key).map(|o| kept_values(o, &period))
            && !period.is_empty()
        {
            kept.insert(key, Copied::Object(period));
        }
    }
    serde_json::value::to_raw_value(&kept).map(Payload::from_raw)
}

/// The values of `keys` in `object`, as they were sent, in the order of `keys`.
fn kept_values<'a>(object: &Picked<'a>, keys: &[&'static str]) -> Kept<'a> {
    let mut kept = Kept::default();
    for key in keys {
        if let Some(value) = object.value(key) {
            kept.insert(key, Copied::Raw(value));
        }
    }
    kept
}

/// The names under `data` (`data.department.name`, `data.user.name`, ...), and a rank
/// record's direction (`data.type`: 1 demotes, another number promotes).
pub(super) fn related(body: &Json<'_>, event_type: &str) -> Related {
    let data = &body["data"];
    let name = |object: &str| {
        debug_assert!(NAMED_OBJECTS.contains(&object));
        data.get(object)?
            .get("name")?
            .as_str()
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
    };
    let rank_change = match data.get(RECORD_TYPE).and_then(Json::as_i64) {
        _ if !event_type.starts_with("rank_record.") => None,
        Some(1) => Some(RankChange::Demotion),
        Some(_) => Some(RankChange::Promotion),
        None => None,
    };
    Related {
        member: name("user"),
        department: name("department"),
        position: name("position"),
        award: name("award"),
        rank: name("rank"),
        qualification: name("qualification"),
        rank_change,
    }
}
