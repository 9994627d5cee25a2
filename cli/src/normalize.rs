//! `okr-webhooks normalize`: the normalized event (schema v1) for a body.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use http::{HeaderName, HeaderValue};
use time::OffsetDateTime;

use okr_core::routing::{Consumer, view_for};

use crate::QueueName;
use std::path::Path;

use crate::delivery::{BodyArgs, DEFAULT_DATA_DIR, header_map, parse_header, parse_time};

#[derive(Debug, Args)]
pub struct NormalizeArgs {
    #[command(flatten)]
    delivery: BodyArgs,
    /// A request header as `Name: value` (a webhook-id gives the event id).
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The receive time, RFC 3339 (default: now).
    #[arg(long, value_parser = parse_time)]
    received_at: Option<OffsetDateTime>,
    /// Print the event as this queue gets it (the Slack and alerts queues get the
    /// payload cut down to names and the period); default: the whole event.
    #[arg(long)]
    queue: Option<QueueName>,
}

pub fn run(args: NormalizeArgs) -> Result<ExitCode> {
    let body = args.delivery.read_body()?;
    let received_at = args.received_at.unwrap_or_else(OffsetDateTime::now_utc);
    let headers = header_map(args.headers);
    let endpoint = args.delivery.endpoint(Path::new(DEFAULT_DATA_DIR))?;
    let mut event = okr_core::normalize(&endpoint, &headers, &body, received_at)?;
    if let Some(queue) = args.queue {
        event = view_for(&event, Consumer::from(queue))?;
    }
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &event)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}
