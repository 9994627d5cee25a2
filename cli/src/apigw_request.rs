//! `okr-webhooks apigw-request`: an API Gateway HTTP API (payload 2.0) request event for
//! a body, for `cargo lambda invoke ingest --data-file`.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use std::path::Path;

use crate::delivery::{BodyArgs, DEFAULT_DATA_DIR, parse_header, random_message_id, signed};

#[derive(Debug, Args)]
pub struct ApigwRequestArgs {
    #[command(flatten)]
    delivery: BodyArgs,
    /// Sign with this secret (omit for an unsigned request).
    #[arg(long, env = "OKR_WEBHOOKS_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The webhook-id, for a scheme that signs one (default: a random msg_... id).
    #[arg(long)]
    id: Option<String>,
    /// The webhook-timestamp in Unix seconds, for a scheme that signs one (default: now).
    #[arg(long)]
    timestamp: Option<i64>,
    /// The HTTP method.
    #[arg(long, default_value = "POST")]
    method: http::Method,
    /// The path's endpoint segment, when it should differ from --endpoint.
    #[arg(long)]
    path_source: Option<String>,
    /// Send the body base64-encoded (`isBase64Encoded: true`).
    #[arg(long)]
    base64: bool,
    /// The raw query string.
    #[arg(long, default_value = "")]
    query: String,
    /// An extra request header as `Name: value`; repeat for several.
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
}

pub fn run(args: ApigwRequestArgs) -> Result<ExitCode> {
    let source = args.delivery.endpoint.clone();
    let mut body = args.delivery.read_body()?;
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), format!("{source}-webhooks")),
    ];
    if let Some(secret) = args.secret {
        let endpoint = args.delivery.endpoint(Path::new(DEFAULT_DATA_DIR))?;
        let (signature, signed_body) = signed(&endpoint, secret, &body, args.id, args.timestamp)?;
        body = signed_body;
        headers.extend(
            signature
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value)),
        );
    }
    for (name, value) in args.headers {
        headers.push((name.as_str().to_owned(), value.to_str()?.to_owned()));
    }
    let request = Request {
        method: &args.method,
        source: &args.path_source.unwrap_or_else(|| source.to_string()),
        query: &args.query,
        headers: &headers,
    };
    let event = request.event(&body, args.base64)?;
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &event)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}

/// The request line and headers of the event.
struct Request<'a> {
    method: &'a http::Method,
    source: &'a str,
    query: &'a str,
    headers: &'a [(String, String)],
}

impl Request<'_> {
    /// The payload 2.0 request event, shaped like the ones AWS sends.
    fn event(&self, body: &[u8], base64: bool) -> Result<Value> {
        use base64::Engine;
        let body = match base64 {
            true => base64::engine::general_purpose::STANDARD.encode(body),
            false => String::from_utf8(body.to_vec())
                .context("a body that is not UTF-8 needs --base64")?,
        };
        let (source, path) = (self.source, format!("/webhooks/{}", self.source));
        let headers: Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let now = OffsetDateTime::now_utc();
        let mut event = json!({
            "version": "2.0",
            "routeKey": "POST /webhooks/{source}",
            "rawPath": path,
            "rawQueryString": self.query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "okrwebhooks",
                "domainName": "okrwebhooks.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "okrwebhooks",
                "http": {
                    "method": self.method.as_str(),
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.10",
                    "userAgent": format!("{source}-webhooks"),
                },
                "requestId": format!("req-{}", &random_message_id()[4..16]),
                "routeKey": "POST /webhooks/{source}",
                "stage": "$default",
                "time": now.format(&time::format_description::well_known::Rfc2822)?,
                "timeEpoch": now.unix_timestamp() * 1000,
            },
            "pathParameters": {"source": source},
            "isBase64Encoded": base64,
        });
        if !body.is_empty() {
            event["body"] = body.into();
        }
        Ok(event)
    }
}
