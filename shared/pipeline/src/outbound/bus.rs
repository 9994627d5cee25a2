//! An event bus the normalized events are published to (Amazon EventBridge on AWS), so
//! other teams subscribe with the bus's own rules instead of webhooks. The subscriptions
//! consumer publishes each event once, through the idempotency guard.

use async_trait::async_trait;

use crate::outbound::DeliveryError;

/// The `source` of every event published.
pub const SOURCE: &str = "okr-webhooks";

/// Where events are published.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publish one event: `detail_type` (the event's type) and `detail` (its JSON).
    async fn publish(&self, detail_type: &str, detail: &str) -> Result<(), DeliveryError>;
}
