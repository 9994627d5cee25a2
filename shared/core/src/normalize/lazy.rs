//! The few fields of a body the cut-down payload copies, picked in one pass over the
//! body: for the Slack and alerts queues (`context::notification_payload`), which get a
//! few fields as they were sent. No value is built, nothing is copied, the rest is
//! skipped.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

use crate::json::Key;

/// Which fields of an object to pick: `keep`'s values as sent, and under each of
/// `descend`'s keys the object there, picked the same way. Everything else is skipped.
pub(super) struct Want<'w> {
    pub(super) keep: &'w [&'static str],
    pub(super) descend: &'w [(&'static str, Want<'w>)],
}

impl<'w> Want<'w> {
    /// `keep`'s values, nothing under them.
    pub(super) const fn values(keep: &'w [&'static str]) -> Want<'w> {
        Want { keep, descend: &[] }
    }
}

/// The fields an object had of a [`Want`], read in one pass over its text: a key sent
/// twice holds its last value, as with `serde_json::Map`.
#[derive(Default)]
pub(super) struct Picked<'a> {
    values: Vec<(&'static str, &'a RawValue)>,
    /// Each descended key's value: `None` when it was not an object.
    objects: Vec<(&'static str, Option<Picked<'a>>)>,
}

impl<'a> Picked<'a> {
    /// What `want` picks of `value` (JSON text already checked); nothing for a value
    /// that is not an object. The values under the keys it descends into are read whole,
    /// as normalization reads the body: one serde_json does not read (a number out of
    /// range, a lone surrogate escape), which ingest never accepts, is an error.
    pub(super) fn of(
        value: &'a RawValue,
        want: &Want<'_>,
    ) -> Result<Picked<'a>, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(value.get());
        Ok(PickSeed(want)
            .deserialize(&mut deserializer)?
            .unwrap_or_default())
    }

    /// The kept value at `key`.
    pub(super) fn value(&self, key: &str) -> Option<&'a RawValue> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// The object at a descended `key`, when its value is one.
    pub(super) fn object(&self, key: &str) -> Option<&Picked<'a>> {
        let (_, object) = self.objects.iter().rev().find(|(k, _)| *k == key)?;
        object.as_ref()
    }
}

/// Reads one value for a [`Want`]: an object's picked fields, or `None` for another kind
/// of value (skipped).
struct PickSeed<'s, 'w>(&'s Want<'w>);

impl<'de, 's, 'w> DeserializeSeed<'de> for PickSeed<'s, 'w> {
    type Value = Option<Picked<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 's, 'w> Visitor<'de> for PickSeed<'s, 'w> {
    type Value = Option<Picked<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut picked = Picked::default();
        while let Some(Key(key)) = map.next_key()? {
            if let Some(kept) = self.0.keep.iter().find(|k| **k == key) {
                picked.values.push((kept, map.next_value()?));
            } else if let Some((name, want)) = self.0.descend.iter().find(|(k, _)| *k == key) {
                picked
                    .objects
                    .push((name, map.next_value_seed(PickSeed(want))?));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Some(picked))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Fields copied as they were sent, under the names given; written as one object.
#[derive(Default)]
pub(super) struct Kept<'a>(Vec<(&'static str, Copied<'a>)>);

/// One copied field: a value as sent, or an object of copied fields.
pub(super) enum Copied<'a> {
    Raw(&'a RawValue),
    Object(Kept<'a>),
}

impl<'a> Kept<'a> {
    /// Add `key`.
    pub(super) fn insert(&mut self, key: &'static str, value: Copied<'a>) {
        self.0.push((key, value));
    }

    /// Whether nothing was kept.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Kept<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            match value {
                Copied::Raw(raw) => map.serialize_entry(key, raw)?,
                Copied::Object(object) => map.serialize_entry(key, object)?,
            }
        }
        map.end()
    }
}
