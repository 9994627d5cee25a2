//! Deliveries in memory, for tests.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{Delivery, DeliveryLog, DeliveryLogError, Filter};

/// The deliveries recorded, oldest first.
#[derive(Debug, Default)]
pub struct MemoryDeliveries {
    kept: Mutex<Vec<Delivery>>,
}

impl MemoryDeliveries {
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
}
