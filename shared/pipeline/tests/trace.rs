//! The trace context without an exporter (the default): nothing is recorded, yet each
//! span has its ids, so a trace still starts at ingest (or continues the sender's) and
//! reaches each consumer through the `traceparent` attribute.

use aws_lambda_events::sqs::{SqsMessage, SqsMessageAttribute};
use okr_pipeline::trace::{Export, Span, TRACEPARENT};

const SENDER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn parts(traceparent: &str) -> Vec<String> {
    traceparent.split('-').map(str::to_owned).collect()
}

fn message_carrying(traceparent: Option<String>) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some("m-1".into());
    if let Some(value) = traceparent {
        let mut attribute = SqsMessageAttribute::default();
        attribute.string_value = Some(value);
        attribute.data_type = Some("String".into());
        message
            .message_attributes
            .insert(TRACEPARENT.into(), attribute);
    }
    message
}

#[test]
fn without_an_exporter_the_context_still_travels_and_nothing_is_recorded() {
    // One test: the tracer is the process's, installed once.
    okr_pipeline::trace::install("okr-webhooks", Export::Off).unwrap();
    assert!(okr_pipeline::trace::install("okr-webhooks", Export::Off).is_err());

    // The sender's trace goes on, under a span of ingest's own.
    let ingest = Span::ingest("peoplelogic", Some(SENDER));
    assert!(!ingest.is_recording());
    let passed = ingest.traceparent().expect("a traceparent to pass on");
    let (sender, ours) = (parts(SENDER), parts(&passed));
    assert_eq!(ours.len(), 4);
    assert_eq!(ours[0], "00");
    assert_eq!(ours[1], sender[1], "the same trace");
    assert_ne!(ours[2], sender[2], "ingest's own span");
    assert_eq!(ours[2].len(), 16);
    assert_eq!(ingest.trace_id().as_deref(), Some(sender[1].as_str()));
    // A tracing system has the sender's trace: the delivery log may name it.
    assert_eq!(ingest.known_trace_id().as_deref(), Some(sender[1].as_str()));

    // No header, or one that is not a traceparent: a new trace each time.
    let mut seen = Vec::new();
    for header in [
        None,
        Some("not a traceparent"),
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
    ] {
        let span = Span::ingest("peoplelogic", header);
        let trace = span.trace_id().expect("a new trace");
        // ... but no tracing system has a trace that is not exported.
        assert_eq!(span.known_trace_id(), None, "{header:?}");
        assert_eq!(trace.len(), 32);
        assert_ne!(trace, sender[1]);
        assert!(!seen.contains(&trace), "{header:?}");
        seen.push(trace);
    }

    // A consumer's span is of the trace its message names.
    let consumer = Span::consumer("slack", &message_carrying(Some(passed.clone())));
    assert_eq!(consumer.trace_id().as_deref(), Some(sender[1].as_str()));
    assert_ne!(parts(&consumer.traceparent().unwrap())[2], ours[2]);
    // A message from before traces (or a replay's) starts one.
    let old = Span::consumer("slack", &message_carrying(None));
    assert!(old.trace_id().is_some());
    assert_ne!(old.trace_id().as_deref(), Some(sender[1].as_str()));
}
