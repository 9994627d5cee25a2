//! `okr-webhooks`: run the whole pipeline on this machine (`serve`), send signed test
//! deliveries to it, look after its dead letters (and those on SQS), replay archived
//! events, and sign, verify and normalize deliveries offline. One module per subcommand.

mod apigw_request;
mod dashboard;
mod deliveries;
mod delivery;
mod directory;
mod dlq;
mod endpoints;
mod normalize;
mod replay;
mod send;
mod serve;
mod sign;
mod stack;
mod stalled;
mod subscriptions;
mod summary;
mod verify;

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Receive webhooks from OKR and HR tools: run the pipeline locally, send test
/// deliveries, manage dead letters, replay archived events, and sign, verify and
/// normalize deliveries.
#[derive(Debug, Parser)]
#[command(name = "okr-webhooks", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline on this machine: ingest, durable queues, Slack, warehouse, alerts.
    Serve(Box<serve::ServeArgs>),
    /// The live progress dashboard of a deployed stack, on loopback, reading its
    /// DynamoDB read model with your AWS credentials.
    Dashboard(dashboard::DashboardArgs),
    /// The requests `serve` received at /webhooks/*, accepted or not: when, which
    /// endpoint, the outcome and why, the event each became.
    Deliveries(deliveries::DeliveriesArgs),
    /// Sign FILE with the data directory's secret for SOURCE and POST it to `serve`.
    Send(send::SendArgs),
    /// The dead-letter queues: list, show or redrive them. Those of `serve` by default;
    /// with --queue-url, one on SQS.
    Dlq(dlq::DlqArgs),
    /// Re-send archived events (the warehouse) to the consumers, by window and filter:
    /// only what never went out, or with --force all of it once more. --dry-run first.
    Replay(replay::ReplayArgs),
    /// The managers' email summaries from the read model: print them (--dry-run) or
    /// send them now (--send).
    Summary(summary::SummaryArgs),
    /// The endpoints: list them, add one bound to a preset or a scheme, test one with a
    /// body, re-arm one for its handshake.
    Endpoints(endpoints::EndpointsArgs),
    /// The stalled check now: key results without an update for STALLED_AFTER_DAYS, to
    /// their owners' team leads; print it (--dry-run) or send it (--send).
    Stalled(stalled::StalledArgs),
    /// The directory of people from HR events: list, show, the key results' owners
    /// nobody matches, link an owner to a person, forget a person.
    Directory(directory::DirectoryArgs),
    /// The services that take our events as signed webhooks: list, add, test, enable,
    /// disable.
    Subscriptions(subscriptions::SubscriptionsArgs),
    /// Print the signature header line(s) SOURCE would send for the body.
    Sign(sign::SignArgs),
    /// Check a delivery's signature: prints `valid` (exit 0) or the reason (exit 1).
    Verify(verify::VerifyArgs),
    /// Print the normalized event (schema v1) for a delivery's body.
    Normalize(normalize::NormalizeArgs),
    /// Print an API Gateway HTTP API (payload 2.0) request event for the body, signed
    /// when --secret is given: input for `cargo lambda invoke ingest --data-file`.
    ApigwRequest(apigw_request::ApigwRequestArgs),
}

/// A consumer's queue, named on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum QueueName {
    Slack,
    Warehouse,
    Alerts,
    Progress,
    Subscriptions,
}

impl From<QueueName> for okr_core::routing::Consumer {
    fn from(name: QueueName) -> Self {
        use okr_core::routing::Consumer;
        match name {
            QueueName::Slack => Consumer::Slack,
            QueueName::Warehouse => Consumer::Warehouse,
            QueueName::Alerts => Consumer::Alerts,
            QueueName::Progress => Consumer::Progress,
            QueueName::Subscriptions => Consumer::Subscriptions,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let _ = writeln!(io::stderr(), "{}", one_line(&error.render().to_string()));
            return ExitCode::from(2);
        }
    };
    match run(cli.command) {
        Ok(code) => code,
        // `okr-webhooks normalize ... | head`: the reader left; nothing to report.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, never a backtrace; a closed stderr is not worth a panic.
            let _ = writeln!(io::stderr(), "error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve(args) => runtime()?.block_on(serve::run(*args)),
        Command::Send(args) => runtime()?.block_on(send::run(args)),
        Command::Deliveries(args) => runtime()?.block_on(deliveries::run(args)),
        Command::Dashboard(args) => runtime()?.block_on(dashboard::run(args)),
        Command::Dlq(args) => runtime()?.block_on(dlq::run(args)),
        Command::Replay(args) => runtime()?.block_on(replay::run(args)),
        Command::Summary(args) => runtime()?.block_on(summary::run(args)),
        Command::Endpoints(args) => endpoints::run(args),
        Command::Directory(args) => runtime()?.block_on(directory::run(args)),
        Command::Stalled(args) => runtime()?.block_on(stalled::run(args)),
        Command::Subscriptions(args) => runtime()?.block_on(subscriptions::run(args)),
        Command::Sign(args) => sign::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Normalize(args) => normalize::run(args),
        Command::ApigwRequest(args) => apigw_request::run(args),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A clap error's message without its usage block, on one line.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let kind = error
        .downcast_ref::<io::Error>()
        .map(io::Error::kind)
        .or_else(|| {
            error
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
        });
    kind == Some(io::ErrorKind::BrokenPipe)
}
