//! Traces across the pipeline: ingest starts a W3C trace for each request (or continues
//! the sender's `traceparent`), every queue message carries ingest's span as its
//! `traceparent` attribute, and each consumer's work on a record is a span of that
//! trace, from its decoding to the batch's answer (see [`crate::batch::BatchReport`]).
//!
//! The process installs its tracer once ([`install`], from the binaries' start-up).
//! With an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), spans are exported by OTLP over HTTP from
//! the batch processor's own thread; the Lambda functions [`flush`] after each
//! invocation, before Lambda freezes them. Without one, spans are sampled out: they
//! get their ids (so the context still travels) and nothing is recorded or exported.
//! Without [`install`] (the handlers' tests) there are no spans at all.
//!
//! A span holds no personal data and no secret: ids, names, outcomes and the journey's
//! details (see [`crate::journal`]).

use std::cell::RefCell;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

/// The queue message attribute (and the HTTP header) that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The variables that turn export on (the OTLP exporter's own).
const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

struct Installed {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    exporting: bool,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// Nowhere: spans get ids, so the context travels, and are sampled out.
    Off,
    /// By OTLP over HTTP to the endpoint the environment names (the exporter reads
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` with
    /// `/v1/traces` added, and their `_HEADERS`, `_TIMEOUT`).
    Environment,
    /// By OTLP over HTTP to this URL, as it is (`http://127.0.0.1:4318/v1/traces`).
    To(String),
}

impl Export {
    /// [`Export::Environment`] when one of the OTLP endpoint variables in `env` is set
    /// and not empty, else [`Export::Off`].
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let set = ENDPOINT_VARIABLES
            .iter()
            .any(|name| env(name).is_some_and(|v| !v.trim().is_empty()));
        match set {
            true => Export::Environment,
            false => Export::Off,
        }
    }
}

/// Whether the variable `name` is set to something (not empty).
fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Why the tracer could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The OTLP exporter refused its configuration (an endpoint that is not a URL).
    #[error("the OTLP exporter cannot be built: {0}")]
    Exporter(String),
    /// A tracer was installed before.
    #[error("a tracer is already installed in this process")]
    Twice,
}

/// Install this process's tracer, as `service` (unless `OTEL_SERVICE_NAME` names it).
/// Call once, at start-up, within the Tokio runtime or outside it.
pub fn install(service: &str, export: Export) -> Result<(), InstallError> {
    let mut builder = SdkTracerProvider::builder();
    let exporting = export != Export::Off;
    match export {
        Export::Off => builder = builder.with_sampler(Sampler::AlwaysOff),
        Export::Environment | Export::To(_) => {
            // Every delivery is traced: a sender's `traceparent` gives the trace its id,
            // never the choice not to record it (an unsigned header could turn traces off).
            // OTEL_TRACES_SAMPLER, when set, decides instead.
            if !set("OTEL_TRACES_SAMPLER") {
                builder = builder.with_sampler(Sampler::AlwaysOn);
            }
            let exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
            let exporter = match export {
                Export::To(url) => exporter.with_endpoint(url),
                _ => exporter,
            };
            let exporter = exporter
                .build()
                .map_err(|e| InstallError::Exporter(e.to_string()))?;
            let mut resource = Resource::builder();
            let named = set("OTEL_SERVICE_NAME")
                || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| {
                    a.split(',')
                        .any(|kv| kv.trim().starts_with("service.name="))
                });
            if !named {
                resource = resource.with_service_name(service.to_owned());
            }
            builder = builder
                .with_batch_exporter(exporter)
                .with_resource(resource.build());
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer("okr-webhooks");
    INSTALLED
        .set(Installed {
            provider,
            tracer,
            exporting,
        })
        .map_err(|_| InstallError::Twice)
}

/// Install the tracer the environment asks for ([`Export::from_env`]); a failure is
/// logged and leaves the process without spans (a trace is never a reason not to run).
pub fn install_from_env(service: &str) {
    let export = Export::from_env(&|name| std::env::var(name).ok());
    let exporting = export != Export::Off;
    match install(service, export) {
        Ok(()) if exporting => tracing::info!(service, "traces are exported by OTLP"),
        Ok(()) => {}
        Err(error) => tracing::error!(error = %error, "traces are off"),
    }
}

/// How long [`flush`] waits for the collector at most: what a slow one adds to an
/// invocation (its spans then leave later, while the process runs again).
pub const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// What [`flushed`] leaves of an invocation's time: its answer must still reach Lambda.
const ANSWER_MARGIN: Duration = Duration::from_millis(50);

/// Whether a flush that ran out of time is still under way.
static FLUSHING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Export the spans ended so far, waiting at most `wait` (and [`FLUSH_WAIT`]). Call at
/// the end of a Lambda invocation. Without export, returns at once; while an earlier
/// flush that ran out of time is still under way, too (these spans leave with a later
/// export).
pub async fn flush(wait: Duration) {
    use std::sync::atomic::Ordering;
    /// Clears [`FLUSHING`] however the flush ends (a panic, a closure never run).
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            FLUSHING.store(false, Ordering::Release);
        }
    }
    let Some(installed) = INSTALLED.get().filter(|i| i.exporting) else {
        return;
    };
    if FLUSHING.swap(true, Ordering::AcqRel) {
        return;
    }
    let done = Done;
    let provider = installed.provider.clone();
    let flushing = tokio::task::spawn_blocking(move || {
        let _done = done;
        provider.force_flush()
    });
    match tokio::time::timeout(wait.min(FLUSH_WAIT), flushing).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::warn!(error = %error, "could not export the spans"),
        Ok(Err(_)) => tracing::warn!("the span export stopped"),
        Err(_) => tracing::warn!(
            wait_ms = wait.min(FLUSH_WAIT).as_millis() as u64,
            "the OTLP collector did not take the spans in time; they leave later"
        ),
    }
}

/// Run `work` (one Lambda invocation, which must answer by `deadline`), then [`flush`]
/// within the time left: Lambda may freeze the process as soon as the invocation
/// answers, so its spans leave before that, and never at the cost of the answer.
pub async fn flushed<T>(work: impl Future<Output = T>, deadline: tokio::time::Instant) -> T {
    let output = work.await;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    flush(left.saturating_sub(ANSWER_MARGIN)).await;
    output
}

/// Export what is left and stop the exporter (at the end of `serve`).
pub async fn shutdown() {
    let Some(installed) = INSTALLED.get().filter(|i| i.exporting) else {
        return;
    };
    let provider = installed.provider.clone();
    let _ =
        tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(Duration::from_secs(5)))
            .await;
}

/// The trace context in one `traceparent` value.
struct Carrier<'a>(Option<&'a str>);

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0).flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// Where the propagator writes a context's `traceparent`.
#[derive(Default)]
struct Written(Option<String>);

impl Injector for Written {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

fn propagator() -> &'static TraceContextPropagator {
    static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();
    PROPAGATOR.get_or_init(TraceContextPropagator::new)
}

/// One unit of work in a trace; it ends when dropped, with the last outcome it was
/// given ([`Span::outcome`]) as its `okr.outcome`, `okr.detail` and status.
#[derive(Debug, Default)]
pub struct Span {
    inner: Option<opentelemetry_sdk::trace::Span>,
    /// The outcome, its detail, and whether it failed.
    outcome: Option<(String, String, bool)>,
    /// Whether it continues a trace the `traceparent` it was started with named.
    continued: bool,
}

impl Drop for Span {
    fn drop(&mut self) {
        let (Some(span), Some((outcome, detail, failed))) = (&mut self.inner, self.outcome.take())
        else {
            return;
        };
        if failed {
            span.set_status(Status::error(format!("{outcome}: {detail}")));
        }
        span.set_attribute(KeyValue::new("okr.outcome", outcome));
        if !detail.is_empty() {
            span.set_attribute(KeyValue::new("okr.detail", detail));
        }
    }
}

impl Span {
    fn of(inner: Option<opentelemetry_sdk::trace::Span>) -> Span {
        Span {
            inner,
            outcome: None,
            continued: false,
        }
    }

    /// A span named `name` of `kind`, the child of the span `traceparent` names (a new
    /// trace when it names none or is not a valid `traceparent`).
    fn start(name: String, kind: SpanKind, traceparent: Option<&str>) -> Span {
        let Some(installed) = INSTALLED.get() else {
            return Span::of(None);
        };
        let parent = match traceparent {
            Some(value) => propagator().extract(&Carrier(Some(value))),
            None => Context::new(),
        };
        let continued = parent.span().span_context().is_valid();
        let span = installed
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(&installed.tracer, &parent);
        Span {
            inner: Some(span),
            outcome: None,
            continued,
        }
    }

    /// Ingest's span for one request to `endpoint`, continuing the sender's
    /// `traceparent` header when it sent a valid one.
    pub fn ingest(endpoint: &str, traceparent: Option<&str>) -> Span {
        let mut span = Span::start(
            "POST /webhooks/{endpoint}".to_owned(),
            SpanKind::Server,
            traceparent,
        );
        span.set("http.request.method", "POST");
        // The path's name, as requested (an endpoint or not), cut as the delivery log does.
        span.set(
            "okr.endpoint",
            endpoint.chars().take(100).collect::<String>(),
        );
        span
    }

    /// `consumer`'s span for one record of its queue, the child of the span its
    /// `traceparent` attribute names (ingest's).
    pub fn consumer(consumer: &'static str, message: &aws_lambda_events::sqs::SqsMessage) -> Span {
        let traceparent = message
            .message_attributes
            .get(TRACEPARENT)
            .and_then(|a| a.string_value.as_deref());
        let mut span = Span::start(
            format!("process {consumer}"),
            SpanKind::Consumer,
            traceparent,
        );
        if span.is_recording() {
            // `serve`'s SQLite queues hand records over as SQS would, under their own name.
            if message.event_source.as_deref() == Some("aws:sqs") {
                span.set("messaging.system", "aws_sqs");
            }
            span.set("messaging.operation.type", "process");
            span.set("messaging.destination.name", consumer);
            if let Some(id) = &message.message_id {
                span.set("messaging.message.id", id.clone());
            }
        }
        span
    }

    /// The `traceparent` naming this span, to pass on; none without a tracer.
    pub fn traceparent(&self) -> Option<String> {
        let span = self.inner.as_ref()?;
        let context = span.span_context();
        if !context.is_valid() {
            return None;
        }
        let mut written = Written::default();
        let cx = Context::new().with_remote_span_context(context.clone());
        propagator().inject_context(&cx, &mut written);
        written.0
    }

    /// Its trace's id, when a tracing system has it: the span is exported, or it
    /// continues a sender's trace. (Otherwise the id is this process's alone.)
    pub fn known_trace_id(&self) -> Option<String> {
        if self.is_recording() || self.continued {
            self.trace_id()
        } else {
            None
        }
    }

    /// Its trace's id (32 hex digits); none without a tracer.
    pub fn trace_id(&self) -> Option<String> {
        let context = self.inner.as_ref()?.span_context();
        context.is_valid().then(|| context.trace_id().to_string())
    }

    /// Set the attribute `key`.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(span) = &mut self.inner
            && span.is_recording()
        {
            span.set_attribute(KeyValue::new(key, value));
        }
    }

    /// The event it carries.
    pub fn event(&mut self, event_id: &str, event_type: &str, replay: Option<&str>) {
        if !self.is_recording() {
            return;
        }
        self.set("okr.event_id", event_id.to_owned());
        self.set("okr.event_type", event_type.to_owned());
        if let Some(replay) = replay {
            self.set("okr.replay", replay.to_owned());
        }
    }

    /// What became of its work, as the journey's step says it; `failed` sets the span's
    /// status to an error with `detail`. The last one given is the span's (a consumer
    /// that records several steps for a record, or a step and then its failure).
    pub fn outcome(&mut self, outcome: &str, detail: &str, failed: bool) {
        if self.is_recording() {
            self.outcome = Some((outcome.to_owned(), detail.to_owned(), failed));
        }
    }

    /// Whether anything set on it is kept (exporting, and sampled).
    pub fn is_recording(&self) -> bool {
        self.inner.as_ref().is_some_and(|span| span.is_recording())
    }
}

tokio::task_local! {
    /// The span of the record a handler is working on ([`within`]).
    static CURRENT: RefCell<Span>;
}

/// Run `work` with `span` as the current record's span (which [`outcome_here`] and
/// [`event_here`] mark), and answer what it gives with the span.
pub async fn within<F: Future>(span: Span, work: F) -> (F::Output, Span) {
    CURRENT
        .scope(RefCell::new(span), async move {
            let output = work.await;
            let span = CURRENT.with(|current| current.take());
            (output, span)
        })
        .await
}

/// Mark the current record's span (inside [`within`]) with an outcome of its work;
/// elsewhere, nothing.
pub fn outcome_here(outcome: &str, detail: &str) {
    let _ = CURRENT.try_with(|current| current.borrow_mut().outcome(outcome, detail, false));
}

/// Mark the current record's span (inside [`within`]) with the event it carries.
pub fn event_here(event_id: &str, event_type: &str, replay: Option<&str>) {
    let _ = CURRENT.try_with(|current| current.borrow_mut().event(event_id, event_type, replay));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_variables_turn_export_on() {
        let none = |_: &str| None;
        assert_eq!(Export::from_env(&none), Export::Off);
        let empty = |_: &str| Some(" ".to_owned());
        assert_eq!(Export::from_env(&empty), Export::Off);
        let traces = |name: &str| {
            (name == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .then(|| "http://127.0.0.1:4318/v1/traces".to_owned())
        };
        assert_eq!(Export::from_env(&traces), Export::Environment);
    }

    #[test]
    fn without_a_tracer_there_is_no_span_and_nothing_to_pass_on() {
        // No install in this test binary's process: the handlers' tests run so.
        let span = Span::ingest(
            "peopleforce",
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(span.traceparent(), None);
        assert!(!span.is_recording());
    }
}
