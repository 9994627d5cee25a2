//! The event bus on AWS: Amazon EventBridge `PutEvents`, one entry an event, `source`
//! `okr-webhooks` and `detail-type` the event's type.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use okr_pipeline::outbound::bus::{EventBus, SOURCE};
use okr_pipeline::outbound::{DeliveryError, Service};

/// The bus `bus_name` (a name or ARN), reached through `client`.
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeBus {
    /// Publish with `client` to `bus_name`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: &str) -> Self {
        EventBridgeBus {
            client,
            bus_name: bus_name.to_owned(),
        }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, detail_type: &str, detail: &str) -> Result<(), DeliveryError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(SOURCE)
            .detail_type(detail_type)
            .detail(detail)
            .build();
        let answer = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                DeliveryError::unavailable(Service::EventBus, okr_core::error_chain(&e))
            })?;
        if answer.failed_entry_count() == 0 {
            return Ok(());
        }
        // The entry's error: throttling and internal failures pass; the rest (a bus that
        // is not there, a detail too large) will not.
        let failed = answer.entries().first();
        let code = failed.and_then(|e| e.error_code()).unwrap_or("unknown");
        match code {
            "ThrottlingException" | "InternalFailure" | "InternalException" => Err(
                DeliveryError::unavailable(Service::EventBus, format!("PutEvents: {code}")),
            ),
            _ => Err(DeliveryError::Refused {
                service: Service::EventBus,
                status: 400,
                reason: code.to_owned(),
            }),
        }
    }
}
