//! Local mode (`okr-webhooks serve`): the whole pipeline in one process, with the same
//! ingest handler and HTTP contract as the Lambda, durable SQLite queues with
//! dead-letter queues, and the same consumer handlers.
//!
//! The data directory holds `secrets.json` (the signing secrets), `queues.sqlite`,
//! `idempotency.sqlite`, `warehouse/`, `progress.sqlite` (the read model the dashboard
//! shows), `serve.lock` (one server per directory), and for email
//! `email-recipients.json` (written by the user) and `outbox/`.

pub mod consumer;
pub mod email;
mod health;
mod lock;
pub mod print;
mod router;
pub mod secrets_file;
mod stores;
mod wiring;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{DEFAULT_MAX_BODY_BYTES, LocalConfig};
use crate::dashboard::Access;
use crate::ingest::Ingest;
use crate::metrics::NoMetrics;
use crate::secrets::SecretCache;

/// How often the dashboard's feed looks for records written.
const FEED_EVERY: Duration = Duration::from_millis(200);

/// Where local mode keeps things.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<data-dir>/secrets.json`.
    pub secrets: PathBuf,
    /// `<data-dir>/queues.sqlite`.
    pub queues: PathBuf,
    /// `<data-dir>/idempotency.sqlite`.
    pub idempotency: PathBuf,
    /// `<data-dir>/warehouse`.
    pub warehouse: PathBuf,
    /// `<data-dir>/progress.sqlite`: the progress read model.
    pub progress: PathBuf,
}

impl Paths {
    /// The paths under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Paths {
            secrets: data_dir.join("secrets.json"),
            queues: data_dir.join("queues.sqlite"),
            idempotency: data_dir.join("idempotency.sqlite"),
            warehouse: data_dir.join("warehouse"),
            progress: data_dir.join("progress.sqlite"),
        }
    }
}

/// Why local mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The data directory or one of its files.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What was being opened.
        what: &'static str,
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A configured URL or key is not usable.
    #[error("{0}")]
    Config(String),
    /// Another `serve` holds the data directory.
    #[error(
        "the data directory {dir} is in use by another `okr-webhooks serve`{}: stop it, or give this one its own --data-dir",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        /// The data directory.
        dir: String,
        /// The holder's process id, when its lock file says.
        holder: Option<u32>,
    },
}

fn io(
    what: &'static str,
    path: &Path,
    source: impl std::error::Error + Send + Sync + 'static,
) -> LocalError {
    LocalError::Io {
        what,
        path: path.display().to_string(),
        source: Box::new(source),
    }
}

/// Run the pipeline on `listener` until `shutdown` resolves: stop accepting, finish the
/// requests and batches in flight, and leave the rest in the queues for the next start.
/// `announce` receives lines for the person running it (paths, never secret values).
pub async fn serve(
    data_dir: &Path,
    listener: TcpListener,
    config: LocalConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    announce: impl Fn(String),
) -> Result<(), LocalError> {
    let paths = Paths::new(data_dir);
    std::fs::create_dir_all(data_dir)
        .map_err(|e| io("cannot create the data directory", data_dir, e))?;
    let _lock = lock::lock_data_dir(data_dir)?;
    let stores = stores::open(&paths, &announce).await?;
    let mail = email::wiring(data_dir, &config.email, &stores, &announce).await?;
    let email_alerts = mail.as_ref().map(|(alerts, _)| alerts.clone());
    let (consumers, breakers) = wiring::consumers(&config, &stores, &paths, email_alerts)?;
    let health = Arc::new(health::Health {
        queue: stores.queue.clone(),
        breakers,
    });
    announce(format!("warehouse: {}", paths.warehouse.display()));
    let urls = &config.destinations;
    let plain_http = [
        ("--slack-webhook-url", urls.slack_webhook_url.as_deref()),
        (
            "--alerts-slack-webhook-url",
            urls.alerts_slack_webhook_url.as_deref(),
        ),
        (
            "--pagerduty-events-url",
            urls.pagerduty_routing_key
                .as_ref()
                .map(|_| config.pagerduty_events_url.as_str()),
        ),
    ];
    for (setting, url) in plain_http {
        if url.is_some_and(crate::outbound::http::is_stand_in) {
            announce(format!(
                "{setting}: plain http to a loopback address (a stand-in on this machine)"
            ));
        }
    }
    let ingest = Arc::new(Ingest::new(
        SecretCache::new(Arc::new(stores.secrets), Duration::from_secs(5)),
        stores.queue.clone(),
        config.notify.clone(),
        DEFAULT_MAX_BODY_BYTES,
        Arc::new(NoMetrics),
    ));

    let (stop, stopped) = watch::channel(false);
    // Fired as soon as shutdown starts (before the requests finish), so the dashboard's
    // streams end and their connections close.
    let (closing, shutting_down) = watch::channel(false);
    let feed = crate::progress::feed::spawn(stores.progress.clone(), FEED_EVERY, shutting_down);
    let addr = listener
        .local_addr()
        .map_err(|e| io("the listener has no address", data_dir, e))?;
    let access = Access::for_addr(addr, config.dashboard_token.as_deref());
    if matches!(access, Access::Closed) {
        announce(format!(
            "dashboard: closed ({addr} is beyond loopback: give --dashboard-token to open it)"
        ));
    } else {
        announce(format!("dashboard: http://{addr}/dashboard"));
    }
    let shutdown = async move {
        shutdown.await;
        let _ = closing.send(true);
    };
    let mut tasks: Vec<_> = consumers
        .into_iter()
        .map(|(consumer, handler, batch_size)| {
            tokio::spawn(consumer::run(
                stores.queue.clone(),
                consumer,
                handler,
                batch_size,
                stopped.clone(),
            ))
        })
        .collect();
    match (mail, config.email.summary_cron.clone()) {
        (Some((_, summaries)), Some(cron)) => tasks.push(tokio::spawn(email::on_schedule(
            cron,
            summaries,
            stopped.clone(),
            |line| eprintln!("{line}"),
        ))),
        (None, Some(_)) => {
            announce("summaries: not scheduled (no recipients file)".to_owned());
        }
        (_, None) => {}
    }
    tasks.push(tokio::spawn(consumer::forget_old_acceptances(
        stores.queue.clone(),
        stopped,
    )));
    let app = router::router(ingest, health).merge(crate::dashboard::router(
        stores.progress.clone(),
        feed,
        access,
    ));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    // The server has finished its requests: let the consumers finish their batches.
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    served.map_err(|e| io("the server failed", data_dir, e))
}
