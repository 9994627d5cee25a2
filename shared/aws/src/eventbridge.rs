//! The event bus on AWS: Amazon EventBridge `PutEvents`, one entry an event, `source`
//! `okr-webhooks` and `detail-type` the event's type.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::operation::put_events::PutEventsError;
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
        let answer = match self.client.put_events().entries(entry).send().await {
            Ok(answer) => answer,
            Err(error) => return Err(call_failed(&error)),
        };
        if answer.failed_entry_count() == 0 {
            return Ok(());
        }
        // The entry's error: throttling and EventBridge's own failures pass (as does one
        // without a code); the rest (a bus that is gone, access denied, a detail too
        // large or malformed) will not.
        let code = answer
            .entries()
            .first()
            .and_then(|entry| entry.error_code())
            .unwrap_or_default()
            .to_owned();
        match code.as_str() {
            "" | "ThrottlingException" | "InternalFailure" => Err(DeliveryError::unavailable(
                Service::EventBus,
                format!(
                    "PutEvents entry failed: {}",
                    if code.is_empty() { "no code" } else { &code }
                ),
            )),
            _ => Err(DeliveryError::Refused {
                service: Service::EventBus,
                status: 400,
                reason: code,
            }),
        }
    }
}

/// A whole call that failed: a service error that no wait mends (the bus gone, access
/// denied, a request EventBridge refuses) is a refusal, with its code; throttling, its
/// own failures and no answer pass.
fn call_failed(error: &SdkError<PutEventsError>) -> DeliveryError {
    let SdkError::ServiceError(service) = error else {
        return DeliveryError::unavailable(Service::EventBus, okr_core::error_chain(error));
    };
    let code = service.err().code().unwrap_or_default();
    let passes = code.is_empty()
        || code.contains("Throttl")
        || code.contains("Internal")
        || code == "ServiceUnavailable"
        || service.raw().status().is_server_error();
    match passes {
        true => DeliveryError::unavailable(Service::EventBus, format!("PutEvents: {code}")),
        false => DeliveryError::Refused {
            service: Service::EventBus,
            status: service.raw().status().as_u16(),
            reason: code.to_owned(),
        },
    }
}
