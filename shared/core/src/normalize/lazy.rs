//! An object read one level deep: its keys, and each value as its unparsed text. For the
//! cut-down payload the Slack and alerts queues get (`context::notification_payload`),
//! which copies a few fields as they are: no value is built, nothing is copied.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

use crate::json::Key;

/// An object's fields, values unparsed; empty for a value that is not an object.
pub(super) struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    /// The fields of `value` (JSON text already checked).
    pub(super) fn of(value: &'a RawValue) -> Result<Fields<'a>, serde_json::Error> {
        match value.get().starts_with('{') {
            true => serde_json::from_str(value.get()),
            false => Ok(Fields(Vec::new())),
        }
    }

    /// The value at `key` (its last, when sent twice).
    pub(super) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor(PhantomData))
    }
}

struct FieldsVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for FieldsVisitor<'a> {
    type Value = Fields<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'a>, A::Error> {
        let mut fields = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            fields.push((key, map.next_value()?));
        }
        Ok(Fields(fields))
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
