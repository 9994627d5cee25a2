//! Logging for the Lambda functions: as `lambda_runtime`'s default subscriber (JSON when
//! `AWS_LAMBDA_LOG_FORMAT=JSON`, level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`), except
//! that the libraries that would log raw payloads at DEBUG or TRACE are capped at INFO:
//! `lambda_runtime` logs each incoming event (webhook bodies, signatures, personal data),
//! the AWS SDK and HTTP clients log request and response bodies (secret values).

use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{Directive, LevelFilter};

/// Targets that never log below INFO.
const CAPPED: [&str; 10] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_config",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
];

/// The filter for a level (`AWS_LAMBDA_LOG_LEVEL`) and `RUST_LOG`-style directives.
pub fn filter(level: Option<&str>, directives: Option<&str>) -> EnvFilter {
    let level = level
        .and_then(|l| LevelFilter::from_str(l).ok())
        .unwrap_or(LevelFilter::INFO);
    // The level applies to every target the directives do not name.
    let mut filter = EnvFilter::builder()
        .parse_lossy(directives.unwrap_or(""))
        .add_directive(level.into());
    for target in CAPPED {
        if let Ok(directive) = Directive::from_str(&format!("{target}=info")) {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Install the subscriber for a Lambda function, and its tracer (exporting by OTLP when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set; see [`crate::trace`]), named for the function.
/// Call once, first thing in `main`.
pub fn init() {
    init_logs();
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok();
    crate::trace::install_from_env(function.as_deref().unwrap_or("okr-webhooks"));
}

fn init_logs() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let directives = std::env::var("RUST_LOG").ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_env_filter(filter(
            level.as_deref().or(directives.as_deref()),
            directives.as_deref(),
        ));
    if json {
        // Lambda filters JSON lines by their `level` only when they carry an RFC 3339
        // `timestamp`; without one every line counts as INFO.
        builder.json().init()
    } else {
        // Lambda stamps text lines itself.
        builder.without_time().init()
    }
}
