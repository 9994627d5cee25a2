//! An in-memory queue for tests: records messages, can fail chosen consumers, and
//! tells duplicates by event id.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::queue::{EventQueue, QueueError, QueueMessage, Sent};
use okr_core::routing::Consumer;

/// Messages kept in memory, per consumer.
#[derive(Default)]
pub struct MemoryQueue {
    messages: Mutex<Vec<(Consumer, QueueMessage)>>,
    failing: Mutex<HashSet<Consumer>>,
}

impl MemoryQueue {
    /// Make sends to `consumer` fail (or succeed again).
    pub fn fail(&self, consumer: Consumer, failing: bool) {
        let mut set = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if failing {
            set.insert(consumer);
        } else {
            set.remove(&consumer);
        }
    }

    /// The messages on `consumer`'s queue, oldest first.
    pub fn messages(&self, consumer: Consumer) -> Vec<QueueMessage> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(c, _)| *c == consumer)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// How many messages all queues hold.
    pub fn len(&self) -> usize {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether every queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn send(&self, consumer: Consumer, message: &QueueMessage) -> Result<Sent, QueueError> {
        if self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&consumer)
        {
            return Err(QueueError {
                consumer,
                source: "the memory queue is switched off".into(),
            });
        }
        let mut messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        let duplicate = messages
            .iter()
            .any(|(c, m)| *c == consumer && m.event_id == message.event_id);
        messages.push((consumer, message.clone()));
        Ok(Sent { duplicate })
    }
}
