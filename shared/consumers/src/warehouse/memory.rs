//! Objects in memory, for tests: keeps what was written and can fail chosen keys.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::warehouse::{ObjectSink, SinkError};

/// A map of key to bytes.
#[derive(Debug, Default)]
pub struct MemorySink {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    failing: Mutex<Vec<String>>,
}

impl MemorySink {
    /// Make writes of keys containing `fragment` fail.
    pub fn fail_keys_containing(&self, fragment: &str) {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fragment.to_owned());
    }

    /// Every object written, by key.
    pub fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl ObjectSink for MemorySink {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), SinkError> {
        if self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|f| key.contains(f.as_str()))
        {
            return Err(SinkError {
                key: key.to_owned(),
                source: "the memory sink refuses this key".into(),
            });
        }
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), body);
        Ok(())
    }
}
