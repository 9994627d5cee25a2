//! `okr-webhooks serve`: the whole pipeline on this machine, until Ctrl-C or SIGTERM.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use okr_local::config::{LocalConfig, LocalDestinations};
use okr_pipeline::config::process_env;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Secrets, queues, idempotency records and the warehouse live here.
    #[arg(long, default_value = ".okr-webhooks")]
    data_dir: PathBuf,
    /// The Slack notifier's incoming webhook (default: print the messages).
    #[arg(long, env = "OKR_SLACK_WEBHOOK_URL", hide_env_values = true)]
    slack_webhook_url: Option<String>,
    #[command(flatten)]
    alerting: AlertingArgs,
    /// The token the dashboard and the progress API require (as `Authorization: Bearer
    /// <token>` or `?token=<token>`): needed when --addr is not a loopback address; once
    /// set, required on loopback too.
    #[arg(long, env = "OKR_DASHBOARD_TOKEN", hide_env_values = true)]
    dashboard_token: Option<String>,
    /// The SMTP server for summaries and alert emails (`smtp://host:port`;
    /// `?tls=required` for STARTTLS; credentials from OKR_SMTP_USERNAME and
    /// OKR_SMTP_PASSWORD). Default: `.eml` files in <data-dir>/outbox/.
    #[arg(long, env = "OKR_SMTP_URL")]
    smtp_url: Option<String>,
    /// When to send the summaries, as a cron pattern in this machine's time zone
    /// (`"0 8 * * MON"`: Mondays at 08:00).
    #[arg(long, env = "OKR_SUMMARY_CRON")]
    summary_cron: Option<okr_consumers::email::schedule::Cron>,
    /// When to run the stalled check, as a cron pattern in this machine's time zone
    /// (`"0 9 * * *"`: every day at 09:00).
    #[arg(long, env = "OKR_STALLED_CRON")]
    stalled_cron: Option<okr_consumers::email::schedule::Cron>,
    /// The first retry wait of a failed message, in milliseconds (the rest of the
    /// schedule scales with it; tests shorten it).
    #[arg(long, default_value_t = 30_000, hide = true)]
    retry_base_ms: u64,
}

/// Where alerts go: the alerts channel, PagerDuty, Slack direct messages (`serve` and
/// `stalled`).
#[derive(Debug, Args)]
pub struct AlertingArgs {
    /// The alerts channel's incoming webhook (default: print the alerts).
    #[arg(long, env = "OKR_ALERTS_SLACK_WEBHOOK_URL", hide_env_values = true)]
    alerts_slack_webhook_url: Option<String>,
    /// A PagerDuty Events API v2 routing key (default: print the events).
    #[arg(long, env = "OKR_PAGERDUTY_ROUTING_KEY", hide_env_values = true)]
    pagerduty_routing_key: Option<String>,
    /// The PagerDuty Events API URL.
    #[arg(long, env = "PAGERDUTY_EVENTS_URL")]
    pagerduty_events_url: Option<String>,
    /// A Slack bot token (scopes users:read.email and chat:write): stalled key results
    /// also reach the team lead as a direct message (default: no direct messages).
    #[arg(long, env = "OKR_SLACK_BOT_TOKEN", hide_env_values = true)]
    slack_bot_token: Option<String>,
    /// Slack's Web API (a stand-in on loopback, for tests).
    #[arg(long, env = "OKR_SLACK_API_URL", default_value = okr_pipeline::outbound::slack_api::SLACK_API)]
    slack_api_url: String,
}

impl AlertingArgs {
    /// The destinations, with the notifier's webhook `slack_webhook_url`.
    pub fn destinations(self, slack_webhook_url: Option<String>) -> LocalDestinations {
        LocalDestinations {
            slack_webhook_url,
            alerts_slack_webhook_url: self.alerts_slack_webhook_url,
            pagerduty_routing_key: self.pagerduty_routing_key,
            pagerduty_events_url: self.pagerduty_events_url,
            slack_bot_token: self.slack_bot_token,
            slack_api_url: self.slack_api_url,
        }
    }
}

pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    let destinations = args.alerting.destinations(args.slack_webhook_url);
    let retry_base = Duration::from_millis(args.retry_base_ms);
    let mut config = LocalConfig::new(destinations, retry_base, &process_env())?;
    config.dashboard_token = args.dashboard_token;
    config.email = okr_local::config::LocalEmail::new(args.smtp_url, &process_env())?;
    config.email.summary_cron = args.summary_cron;
    config.email.stalled_cron = args.stalled_cron;
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(okr_pipeline::telemetry::filter(
            Some("info"),
            std::env::var("RUST_LOG").ok().as_deref(),
        ))
        .init();
    // Spans by OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/deliveries.md).
    okr_pipeline::trace::install_from_env("okr-webhooks");
    let addr = args.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    announce(format!(
        "listening on http://{addr} (POST /webhooks/{{source}}, GET /healthz, GET /dashboard, GET /api/progress)"
    ));
    let served = okr_local::serve(&args.data_dir, listener, config, shutdown(), announce).await;
    // The spans not yet exported leave before the process does.
    okr_pipeline::trace::shutdown().await;
    served?;
    Ok(ExitCode::SUCCESS)
}

/// A line for the person running it, on stderr.
fn announce(line: String) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// Ctrl-C, or SIGTERM on Unix.
pub(crate) async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).ok();
        let term = async {
            match terminate.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! { _ = interrupt => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    announce("stopping: finishing the requests and batches in flight".to_owned());
}
