//! `okr-webhooks deliveries`: the requests `serve` received at `/webhooks/*`, accepted or
//! not, newest first, from its delivery log; with `--event`, that event's journey too
//! (each step: when, who, what, the attempt, why or where to). With `--stack`, the same
//! from a deployed stack's logs (see [`stack`]).

mod stack;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use okr_consumers::deliveries::{
    DEFAULT_KEEP, DEFAULT_MAX_DELIVERIES, Delivery, DeliveryStore, Filter,
};
use okr_local::Paths;
use okr_local::deliveries_sqlite::SqliteDeliveries;
use okr_pipeline::journal::Step;

use crate::delivery::{DEFAULT_DATA_DIR, parse_time};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeliveriesArgs {
    #[command(subcommand)]
    capture: Option<Capture>,
    /// Only this endpoint's (its name in /webhooks/<name>).
    #[arg(long)]
    endpoint: Option<String>,
    /// Only this outcome's.
    #[arg(long, value_parser = ["accepted", "duplicate", "handshake", "refused", "unavailable"])]
    outcome: Option<String>,
    /// Only those since this time (RFC 3339, such as 2026-12-06T09:00:00Z).
    #[arg(long, value_parser = parse_time)]
    since: Option<OffsetDateTime>,
    /// Only the deliveries of this event id, followed by its journey: what each consumer
    /// did with it, step by step (with --json, one object a line with `consumer`).
    #[arg(long)]
    event: Option<String>,
    /// Only those that became an event of this type (such as employee.created).
    #[arg(long = "type")]
    r#type: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    limit: u64,
    /// One JSON object a line instead of a table.
    #[arg(long)]
    json: bool,
    /// The data directory of `serve`: its deliveries.sqlite.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// A deployed stack instead: its functions' log lines, read with CloudWatch Logs
    /// Insights over the stack's DeliveryLogGroups (the last 24 hours unless --since).
    #[arg(long, conflicts_with = "data_dir")]
    stack: Option<String>,
}

/// How far back `--stack` reads without `--since` (Logs Insights is paid by the
/// gigabyte it scans).
const STACK_WINDOW: time::Duration = time::Duration::hours(24);

#[derive(Debug, Subcommand)]
enum Capture {
    /// Keep the bodies of refused deliveries to ENDPOINT for the next 24 hours (each
    /// kept 24 hours: they may hold personal data), to debug an integration that
    /// does not get through; without ENDPOINT, list the endpoints capturing.
    Capture {
        /// The endpoint (its name in /webhooks/<name>).
        endpoint: Option<String>,
        /// Stop capturing now (the bodies captured stay until 24 hours after each arrived).
        #[arg(long, requires = "endpoint")]
        stop: bool,
        /// The data directory of `serve`: its deliveries.sqlite.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

/// The delivery log of `data_dir`.
fn open(data_dir: &std::path::Path) -> Result<SqliteDeliveries> {
    if !data_dir.is_dir() {
        bail!(
            "{} is not a data directory (start `okr-webhooks serve --data-dir {}` first)",
            data_dir.display(),
            data_dir.display()
        );
    }
    SqliteDeliveries::open(
        &Paths::new(data_dir).deliveries,
        DEFAULT_KEEP,
        DEFAULT_MAX_DELIVERIES,
    )
    .map_err(|e| anyhow::anyhow!(okr_core::error_chain(&e)))
}

/// `deliveries capture`: turn capture on or off for an endpoint, or list.
async fn capture(
    endpoint: Option<String>,
    stop: bool,
    data_dir: &std::path::Path,
) -> Result<ExitCode> {
    let log = open(data_dir)?;
    let now = OffsetDateTime::now_utc();
    let mut out = io::stdout().lock();
    let rfc3339 = |t: OffsetDateTime| {
        t.replace_nanosecond(0)
            .unwrap_or(t)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let error =
        |e: okr_consumers::deliveries::DeliveryLogError| anyhow::anyhow!(okr_core::error_chain(&e));
    match (endpoint, stop) {
        (None, _) => {
            let capturing = log.captures(now).await.map_err(error)?;
            if capturing.is_empty() {
                writeln!(out, "no endpoint captures refused bodies")?;
            }
            for (endpoint, until) in capturing {
                writeln!(out, "{endpoint}\tuntil {}", rfc3339(until))?;
            }
        }
        (Some(endpoint), true) => {
            log.capture(&endpoint, None).await.map_err(error)?;
            writeln!(
                out,
                "{endpoint}: no longer capturing refused bodies (those captured go 24 hours after each arrived)"
            )?;
        }
        (Some(endpoint), false) => {
            let until = now + okr_consumers::deliveries::CAPTURE_FOR;
            log.capture(&endpoint, Some(until)).await.map_err(error)?;
            writeln!(
                out,
                "{endpoint}: capturing the bodies of refused deliveries until {} (each kept 24 hours: they may hold personal data)",
                rfc3339(until)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: DeliveriesArgs) -> Result<ExitCode> {
    if let Some(Capture::Capture {
        endpoint,
        stop,
        data_dir,
    }) = args.capture
    {
        return capture(endpoint, stop, &data_dir).await;
    }
    let filter = Filter {
        endpoint: args.endpoint,
        outcome: args.outcome,
        since: args.since,
        event_id: args.event.clone(),
        event_type: args.r#type,
        limit: Some(args.limit as usize),
    };
    let (found, steps) = match &args.stack {
        Some(stack) => {
            let since = args
                .since
                .unwrap_or_else(|| OffsetDateTime::now_utc() - STACK_WINDOW);
            stack::read(stack, &filter, since).await?
        }
        None => local(&args.data_dir, &filter).await?,
    };
    let mut out = io::stdout().lock();
    if args.json {
        for delivery in &found {
            writeln!(out, "{}", serde_json::to_string(delivery)?)?;
        }
        for step in &steps {
            writeln!(out, "{}", serde_json::to_string(step)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if found.is_empty() {
        writeln!(out, "no deliveries match")?;
    }
    for delivery in &found {
        writeln!(out, "{}", line(delivery))?;
    }
    if args.event.is_some() {
        if steps.is_empty() {
            writeln!(out, "no steps of this event are kept")?;
        } else {
            writeln!(out, "journey:")?;
        }
        for step in &steps {
            writeln!(out, "{}", step_line(step))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The deliveries `filter` matches in `data_dir`'s log, and (with an event id) its
/// journey.
async fn local(data_dir: &std::path::Path, filter: &Filter) -> Result<(Vec<Delivery>, Vec<Step>)> {
    let log = open(data_dir)?;
    let error =
        |e: okr_consumers::deliveries::DeliveryLogError| anyhow::anyhow!(okr_core::error_chain(&e));
    let found = log.list(filter).await.map_err(error)?;
    let steps = match &filter.event_id {
        Some(event_id) => log.journey(event_id).await.map_err(error)?,
        None => Vec::new(),
    };
    Ok((found, steps))
}

/// One step of a journey as a line: time, who, what (attempt), why or where to.
fn step_line(step: &Step) -> String {
    let time = step
        .time
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let replay = match &step.replay {
        Some(name) => format!(" [replay {name}]"),
        None => String::new(),
    };
    format!(
        "  {time}\t{}\t{} (attempt {}){replay}\t{}",
        step.consumer, step.outcome, step.attempt, step.detail
    )
}

/// One delivery as a line: time, endpoint, status, outcome, why, the event.
fn line(d: &Delivery) -> String {
    let time = d
        .time
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let why = if d.reason == d.outcome {
        String::new()
    } else {
        format!(" ({})", d.reason)
    };
    let event = match (&d.event_id, &d.event_type) {
        (Some(id), Some(kind)) => format!("\t{id} {kind}"),
        (Some(id), None) => format!("\t{id}"),
        _ => String::new(),
    };
    let body = match &d.body {
        Some(body) => format!("\tbody captured ({} bytes; --json shows it)", body.len()),
        None => String::new(),
    };
    format!(
        "{time}\t{}\t{} {}\t{}{why}{event}{body}",
        d.endpoint, d.method, d.status, d.outcome
    )
}
