//! Counters as CloudWatch Embedded Metric Format (EMF) lines: one JSON line per request
//! on stdout, which CloudWatch Logs turns into metrics without an API call.

use std::io::Write;
use std::sync::Mutex;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use okr_core::source::Source;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "OkrWebhooks";

/// What one ingest request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRecord {
    /// The source, when the route named a known one.
    pub source: Option<Source>,
    /// `accepted`, or the error code of the answer (`invalid_signature`, ...).
    pub reason: &'static str,
    /// The HTTP status answered.
    pub status: u16,
    /// Queue sends that failed.
    pub enqueue_failures: usize,
}

/// Where ingest records go: EMF on stdout in Lambda, memory in tests.
pub trait MetricsSink: Send + Sync {
    /// Record one request.
    fn ingest(&self, record: &IngestRecord);
    /// Count one occurrence of `metric` for `service` (a consumer's `SendsNotRecorded`).
    fn count(&self, service: &'static str, metric: &'static str);
    /// Record what one of `service`'s batches saw of a destination's circuit breaker.
    fn breaker(&self, service: &'static str, record: &BreakerRecord);
}

/// What one consumer batch saw of a destination's circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerRecord {
    /// The destination (`slack`, `alerts-slack`, `pagerduty`, `warehouse`).
    pub destination: &'static str,
    /// How long it has been open; `None` while closed.
    pub open_for: Option<std::time::Duration>,
    /// Records that failed at once because it was open.
    pub deferred: usize,
}

/// The EMF line for `record`, by Destination: `BreakerOpen` (1 while open, else 0),
/// `BreakerOpenSeconds` (how long it has been open: the alarm's metric) and
/// `DeferredRecords`.
pub fn breaker_line(service: &str, record: &BreakerRecord, at: OffsetDateTime) -> String {
    let metrics = json!([
        {"Name": "BreakerOpen", "Unit": "Count"},
        {"Name": "BreakerOpenSeconds", "Unit": "Seconds"},
        {"Name": "DeferredRecords", "Unit": "Count"},
    ]);
    let mut line = emf(at, json!([["Destination"]]), metrics);
    line.insert("Service".into(), service.into());
    line.insert("Destination".into(), record.destination.into());
    let open_for = record.open_for;
    line.insert("BreakerOpen".into(), u8::from(open_for.is_some()).into());
    let seconds = open_for.unwrap_or_default().as_secs();
    line.insert("BreakerOpenSeconds".into(), seconds.into());
    line.insert("DeferredRecords".into(), record.deferred.into());
    Value::Object(line).to_string()
}

/// An EMF line's start: its `_aws` metadata with one directive of `metrics` by
/// `dimensions`.
fn emf(at: OffsetDateTime, dimensions: Value, metrics: Value) -> Map<String, Value> {
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.unix_timestamp_nanos() / 1_000_000,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": metrics,
            }],
        }),
    );
    line
}

/// The EMF line counting one `metric` for `service`, by Service.
pub fn count_line(service: &str, metric: &str, at: OffsetDateTime) -> String {
    let metrics = json!([{"Name": metric, "Unit": "Count"}]);
    let mut line = emf(at, json!([["Service"]]), metrics);
    line.insert("Service".into(), service.into());
    line.insert(metric.into(), 1.into());
    Value::Object(line).to_string()
}

/// The EMF line for `record`: metrics Received, Accepted, Rejected (4xx), Unavailable
/// (503) and EnqueueFailures, by Service and by Service and Reason; and, when the route
/// named a source, Accepted and InvalidSignature by Service and Source (a provider whose
/// every delivery fails its signature check, say after a secret rotation, raises an
/// alarm).
pub fn emf_line(record: &IngestRecord, at: OffsetDateTime) -> String {
    let rejected = (400..500).contains(&record.status);
    let unavailable = record.status >= 500;
    let metrics = [
        "Received",
        "Accepted",
        "Rejected",
        "Unavailable",
        "EnqueueFailures",
    ]
    .map(|name| json!({"Name": name, "Unit": "Count"}));
    let mut directives = vec![json!({
        "Namespace": NAMESPACE,
        "Dimensions": [["Service"], ["Service", "Reason"]],
        "Metrics": metrics,
    })];
    if record.source.is_some() {
        let by_source =
            ["Accepted", "InvalidSignature"].map(|name| json!({"Name": name, "Unit": "Count"}));
        directives.push(json!({
            "Namespace": NAMESPACE,
            "Dimensions": [["Service", "Source"]],
            "Metrics": by_source,
        }));
    }
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.unix_timestamp_nanos() / 1_000_000,
            "CloudWatchMetrics": directives,
        }),
    );
    line.insert("Service".into(), "ingest".into());
    line.insert("Reason".into(), record.reason.into());
    if let Some(source) = record.source {
        line.insert("Source".into(), source.as_str().into());
    }
    line.insert("Received".into(), 1.into());
    line.insert(
        "Accepted".into(),
        u8::from(record.reason == "accepted").into(),
    );
    line.insert("Rejected".into(), u8::from(rejected).into());
    line.insert(
        "InvalidSignature".into(),
        u8::from(record.reason == "invalid_signature").into(),
    );
    line.insert("Unavailable".into(), u8::from(unavailable).into());
    line.insert("EnqueueFailures".into(), record.enqueue_failures.into());
    Value::Object(line).to_string()
}

/// Writes EMF lines to stdout.
#[derive(Debug, Default)]
pub struct EmfStdout;

impl MetricsSink for EmfStdout {
    fn ingest(&self, record: &IngestRecord) {
        let line = emf_line(record, OffsetDateTime::now_utc());
        // A closed stdout must not fail the request.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }

    fn count(&self, service: &'static str, metric: &'static str) {
        let line = count_line(service, metric, OffsetDateTime::now_utc());
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }

    fn breaker(&self, service: &'static str, record: &BreakerRecord) {
        let line = breaker_line(service, record, OffsetDateTime::now_utc());
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

/// Keeps records and counts in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryMetrics {
    records: Mutex<Vec<IngestRecord>>,
    counts: Mutex<Vec<(&'static str, &'static str)>>,
    breakers: Mutex<Vec<BreakerRecord>>,
}

impl MemoryMetrics {
    /// Every record so far.
    pub fn records(&self) -> Vec<IngestRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every (service, metric) counted so far.
    pub fn counts(&self) -> Vec<(&'static str, &'static str)> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every breaker record so far.
    pub fn breakers(&self) -> Vec<BreakerRecord> {
        self.breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl MetricsSink for MemoryMetrics {
    fn ingest(&self, record: &IngestRecord) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
    }

    fn count(&self, service: &'static str, metric: &'static str) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((service, metric));
    }

    fn breaker(&self, _service: &'static str, record: &BreakerRecord) {
        self.breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
    }
}

/// Drops every record (local mode, where CloudWatch does not read stdout).
#[derive(Debug, Default)]
pub struct NoMetrics;

impl MetricsSink for NoMetrics {
    fn ingest(&self, _record: &IngestRecord) {}

    fn count(&self, _service: &'static str, _metric: &'static str) {}

    fn breaker(&self, _service: &'static str, _record: &BreakerRecord) {}
}
