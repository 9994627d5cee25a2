//! A real OTLP/HTTP trace receiver for the tests: an HTTP server on 127.0.0.1 that
//! takes `POST /v1/traces` with a protobuf body (`application/x-protobuf`, the
//! exporter's default), as a collector does, and decodes every span it was sent with
//! the protocol's own messages (`opentelemetry-proto`). A request of any other shape is
//! answered 404, so its spans never count.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One span as the receiver got it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The service that sent it (its resource's `service.name`).
    pub service: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, or empty for a trace's root.
    pub parent_span_id: String,
    /// Its name.
    pub name: String,
    /// OTLP's kind: 2 server, 5 consumer.
    pub kind: i32,
    /// Its attributes, each as text.
    pub attributes: BTreeMap<String, String>,
    /// OTLP's status code (2 for an error) and message.
    pub status: (i32, String),
}

impl ReceivedSpan {
    /// The attribute `key`, as text, or "".
    pub fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// The receiver.
pub struct OtlpReceiver {
    server: MockServer,
}

impl OtlpReceiver {
    /// A receiver on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/traces"))
            .and(header("content-type", "application/x-protobuf"))
            .respond_with(
                ResponseTemplate::new(200).insert_header("content-type", "application/x-protobuf"),
            )
            .mount(&server)
            .await;
        OtlpReceiver { server }
    }

    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` is set to (the exporter adds `/v1/traces`).
    pub fn endpoint(&self) -> String {
        self.server.uri()
    }

    /// The traces URL itself.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.server.uri())
    }

    /// Every span received so far, in the order received.
    pub async fn spans(&self) -> Vec<ReceivedSpan> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        let mut spans = Vec::new();
        for request in requests {
            if request.url.path() != "/v1/traces" {
                continue;
            }
            let export = ExportTraceServiceRequest::decode(request.body.as_slice())
                .expect("an OTLP export request");
            for resource in export.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .map(|kv| text(kv.value.as_ref()))
                    .unwrap_or_default();
                for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                    spans.push(ReceivedSpan {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        attributes: attributes(&span.attributes),
                        status: span.status.map(|s| (s.code, s.message)).unwrap_or_default(),
                    });
                }
            }
        }
        spans
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The span's attributes; a key given twice fails the test (OTLP requires them unique,
/// and a backend would keep either).
fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    let mut attributes = BTreeMap::new();
    for kv in list {
        let earlier = attributes.insert(kv.key.clone(), text(kv.value.as_ref()));
        assert!(
            earlier.is_none(),
            "the attribute {} is set twice: {list:?}",
            kv.key
        );
    }
    attributes
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(n)) => n.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
