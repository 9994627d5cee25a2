//! Deliveries in memory, for tests.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{Delivery, DeliveryLog, DeliveryLogError, DeliveryStore, Filter};
use okr_pipeline::journal::{Journal, MemoryJournal, Step};

/// The deliveries recorded, oldest first, and the journeys' steps.
#[derive(Debug, Default)]
pub struct MemoryDeliveries {
    kept: Mutex<Vec<Delivery>>,
    steps: MemoryJournal,
    capturing: Mutex<Vec<String>>,
}

#[async_trait]
impl Journal for MemoryDeliveries {
    async fn append(&self, steps: Vec<Step>) {
        self.steps.append(steps).await;
    }
}

impl MemoryDeliveries {
    /// Capture the refused bodies of `endpoint` from now on.
    pub fn capture(&self, endpoint: &str) {
        self.capturing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(endpoint.to_owned());
    }

    /// Everything recorded, oldest first.
    pub fn all(&self) -> Vec<Delivery> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl DeliveryLog for MemoryDeliveries {
    async fn record(&self, delivery: &Delivery) -> Result<(), DeliveryLogError> {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(delivery.clone());
        Ok(())
    }

    async fn capturing(&self, endpoint: &str, _at: time::OffsetDateTime) -> bool {
        let capturing = self.capturing.lock().unwrap_or_else(|e| e.into_inner());
        capturing.iter().any(|e| e == endpoint)
    }
}

#[async_trait]
impl DeliveryStore for MemoryDeliveries {
    async fn list(&self, filter: &Filter) -> Result<Vec<Delivery>, DeliveryLogError> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        Ok(kept
            .iter()
            .rev()
            .filter(|d| filter.matches(d))
            .take(filter.limit())
            .cloned()
            .collect())
    }

    async fn journey(&self, event_id: &str) -> Result<Vec<Step>, DeliveryLogError> {
        Ok(self.steps.journey(event_id))
    }
}
