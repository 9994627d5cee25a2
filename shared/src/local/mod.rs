//! Local mode (`okr-webhooks serve`): the whole pipeline in one process, with the same
//! ingest handler and HTTP contract as the Lambda, durable SQLite queues with
//! dead-letter queues, and the same consumer handlers.
//!
//! The data directory holds `secrets.json` (the signing secrets), `queues.sqlite`,
//! `idempotency.sqlite`, `warehouse/` and `serve.lock` (one server per directory).

pub mod consumer;
pub mod print;
pub mod secrets_file;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::alerts::rules::Thresholds;
use crate::alerts::{DEFAULT_WINDOW, Destinations, ProgressAlerts};
use crate::config::DEFAULT_MAX_BODY_BYTES;
use crate::idempotency::sqlite::SqliteIdempotencyStore;
use crate::ingest::{Ingest, IngestRequest, IngestResponse};
use crate::metrics::NoMetrics;
use crate::outbound::http::http_client;
use crate::outbound::pagerduty::{PagerDuty, PagerDutyClient, RoutingKey};
use crate::outbound::slack::{SlackPoster, WebhookPoster, WebhookUrl};
use crate::queue::sqlite::SqliteQueue;
use crate::routing::Consumer;
use crate::routing::NotifyRules;
use crate::secrets::{SecretCache, StaticSecret};
use crate::slack::{DEFAULT_DIGEST_THRESHOLD, SlackNotifier};
use crate::warehouse::WarehouseSink;
use crate::warehouse::local::LocalSink;
use consumer::BatchHandler;
use print::Printer;
use secrets_file::FileSecretStore;

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
}

impl Paths {
    /// The paths under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Paths {
            secrets: data_dir.join("secrets.json"),
            queues: data_dir.join("queues.sqlite"),
            idempotency: data_dir.join("idempotency.sqlite"),
            warehouse: data_dir.join("warehouse"),
        }
    }
}

/// Outbound destinations; what is not set is printed instead.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// `OKR_SLACK_WEBHOOK_URL`: the Slack notifier's incoming webhook.
    pub slack_webhook_url: Option<String>,
    /// `OKR_ALERTS_SLACK_WEBHOOK_URL`: the alerts channel's incoming webhook.
    pub alerts_slack_webhook_url: Option<String>,
    /// `OKR_PAGERDUTY_ROUTING_KEY`.
    pub pagerduty_routing_key: Option<String>,
    /// `PAGERDUTY_EVENTS_URL` (default the Events API v2).
    pub pagerduty_events_url: Option<String>,
    /// The first retry back-off of a failed message (default 1 s; tests shorten it).
    pub retry_base: Option<Duration>,
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

/// Hold `<data-dir>/serve.lock` for the life of the process: a second server on the
/// same directory would take the first one's in-flight messages and claims for a
/// crash's leftovers. The operating system releases the lock when the process ends,
/// however it ends; the file holds the holder's pid, for the error message.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, LocalError> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("serve.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io("cannot open the lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => {
            let written = file
                .set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| writeln!(file, "{}", std::process::id()));
            written.map_err(|e| io("cannot write the lock file", &path, e))?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Err(LocalError::InUse {
                dir: data_dir.display().to_string(),
                holder: holder.trim().parse().ok(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io("cannot lock the data directory", &path, e)),
    }
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
    outbound: Outbound,
    shutdown: impl Future<Output = ()> + Send + 'static,
    announce: impl Fn(String),
) -> Result<(), LocalError> {
    let paths = Paths::new(data_dir);
    std::fs::create_dir_all(data_dir)
        .map_err(|e| io("cannot create the data directory", data_dir, e))?;
    let _lock = lock_data_dir(data_dir)?;
    let (secrets, created) = FileSecretStore::open_or_create(&paths.secrets)
        .map_err(|e| io("cannot create the secrets file", &paths.secrets, e))?;
    announce(format!(
        "signing secrets: {}{}",
        secrets.path().display(),
        if created {
            " (created with random secrets)"
        } else {
            ""
        }
    ));
    let queue = Arc::new(
        SqliteQueue::open(&paths.queues)
            .map_err(|e| io("cannot open the queues", &paths.queues, e))?,
    );
    let recovered = queue
        .recover_in_flight()
        .await
        .map_err(|e| io("cannot open the queues", &paths.queues, e))?;
    if recovered > 0 {
        announce(format!(
            "{recovered} message(s) were in flight when the last run stopped; handling them again"
        ));
    }
    let idempotency = Arc::new(
        SqliteIdempotencyStore::open(&paths.idempotency)
            .map_err(|e| io("cannot open the idempotency store", &paths.idempotency, e))?,
    );
    let (dropped, presumed) = idempotency
        .recover_after_crash(crate::slack::DEFAULT_DEDUP_WINDOW)
        .await
        .map_err(|e| io("cannot open the idempotency store", &paths.idempotency, e))?;
    if dropped + presumed.len() > 0 {
        announce(format!(
            "the last run stopped with {dropped} post(s) not started (they will be sent) and {} in flight (presumed sent, so none goes out twice)",
            presumed.len()
        ));
    }
    for key in &presumed {
        // `slack:<event id>` or `alert:<destination>:event:<event id>:<rule>`: ids only.
        announce(format!(
            "presumed sent: {key} (check the channel; the event is in the warehouse)"
        ));
    }
    let rules = NotifyRules::parse(
        &std::env::var("SLACK_NOTIFY_TYPES")
            .unwrap_or_else(|_| crate::routing::DEFAULT_NOTIFY_TYPES.to_owned()),
    );
    let ingest = Arc::new(Ingest::new(
        SecretCache::new(Arc::new(secrets), Duration::from_secs(5)),
        queue.clone(),
        rules.clone(),
        DEFAULT_MAX_BODY_BYTES,
        Arc::new(NoMetrics),
    ));

    let http = http_client(false).map_err(|e| LocalError::Config(e.to_string()))?;
    let slack_poster = |url: &Option<String>,
                        label: &'static str|
     -> Result<Arc<dyn SlackPoster>, LocalError> {
        Ok(match url {
            Some(url) => {
                let url = WebhookUrl::new(url).map_err(|e| LocalError::Config(e.to_string()))?;
                Arc::new(WebhookPoster::new(
                    http.clone(),
                    SecretCache::new(Arc::new(StaticSecret(url)), Duration::from_secs(3600)),
                ))
            }
            None => Arc::new(Printer(label)),
        })
    };
    let pagerduty: Arc<dyn PagerDuty> = match &outbound.pagerduty_routing_key {
        Some(key) => {
            let key = RoutingKey::new(key).map_err(|e| LocalError::Config(e.to_string()))?;
            let url = outbound
                .pagerduty_events_url
                .clone()
                .unwrap_or_else(|| crate::config::DEFAULT_PAGERDUTY_EVENTS_URL.to_owned());
            Arc::new(PagerDutyClient::new(
                http.clone(),
                url,
                SecretCache::new(Arc::new(StaticSecret(key)), Duration::from_secs(3600)),
            ))
        }
        None => Arc::new(Printer("pagerduty")),
    };
    let handlers: [(Consumer, Arc<dyn BatchHandler>, usize); 3] = [
        (
            Consumer::Warehouse,
            Arc::new(WarehouseSink::new(Arc::new(LocalSink::new(
                &paths.warehouse,
            )))),
            500,
        ),
        (
            Consumer::Slack,
            Arc::new(
                SlackNotifier::new(
                    slack_poster(&outbound.slack_webhook_url, "slack")?,
                    idempotency.clone(),
                    rules,
                    DEFAULT_DIGEST_THRESHOLD,
                )
                .with_claim_hold(consumer::VISIBILITY),
            ),
            10,
        ),
        (
            Consumer::Alerts,
            Arc::new(
                ProgressAlerts::new(
                    Destinations {
                        slack: Some(slack_poster(&outbound.alerts_slack_webhook_url, "alerts")?),
                        pagerduty: Some(pagerduty),
                    },
                    idempotency,
                    Thresholds::default(),
                    DEFAULT_WINDOW,
                )
                .with_claim_hold(consumer::VISIBILITY),
            ),
            10,
        ),
    ];
    announce(format!("warehouse: {}", paths.warehouse.display()));

    let (stop, stopped) = watch::channel(false);
    let consumers: Vec<_> = handlers
        .into_iter()
        .map(|(consumer, handler, size)| {
            tokio::spawn(consumer::run(
                queue.clone(),
                consumer,
                handler,
                size,
                outbound.retry_base.unwrap_or(Duration::from_secs(1)),
                stopped.clone(),
            ))
        })
        .collect();

    let forgetting = tokio::spawn(forget_old_acceptances(queue.clone(), stopped.clone()));

    let router = Router::new()
        .route(
            "/healthz",
            get(|| async { json_response(StatusCode::OK, r#"{"status":"ok"}"#.into()) }),
        )
        .route("/webhooks/{source}", any(webhook))
        .fallback(|| async {
            json_response(
                StatusCode::NOT_FOUND,
                r#"{"error":"not_found","message":"POST to /webhooks/{source}"}"#.into(),
            )
        })
        .with_state(ingest);
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop.send(true);
    for consumer in consumers {
        let _ = consumer.await;
    }
    let _ = forgetting.await;
    served.map_err(|e| io("the server failed", data_dir, e))
}

/// Accepted event ids forgotten per batch, and how often a pass runs.
const FORGET_BATCH: usize = 1000;
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// Forget the accepted event ids older than the consumers' dedup window (15 days) in the
/// background, once a minute, in bounded batches, until `stop` turns true.
async fn forget_old_acceptances(queue: Arc<SqliteQueue>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(FORGET_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        // Batch after batch until the old ones are gone, yielding in between, so the
        // queue's writers wait for one batch at most.
        let mut forgotten = 0;
        loop {
            match queue
                .forget_accepted(crate::slack::DEFAULT_DEDUP_WINDOW, FORGET_BATCH)
                .await
            {
                Ok(n) => {
                    forgotten += n;
                    if n < FORGET_BATCH || *stop.borrow() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    tracing::warn!(error = %crate::error_chain(&error), "could not forget old accepted event ids");
                    break;
                }
            }
        }
        if forgotten > 0 {
            tracing::info!(
                forgotten,
                "forgot accepted event ids older than the dedup window"
            );
        }
    }
}

async fn webhook(
    State(ingest): State<Arc<Ingest>>,
    UrlPath(source): UrlPath<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // Read one byte past the limit, so an oversized body gets the contract's 413.
    let limit = DEFAULT_MAX_BODY_BYTES + 1;
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes.to_vec(),
        Err(_) => vec![0; limit],
    };
    let request = IngestRequest {
        method: parts.method,
        source,
        headers: parts.headers,
        body,
        body_is_base64: false,
    };
    let IngestResponse {
        status,
        headers,
        body,
    } = ingest.handle(request, OffsetDateTime::now_utc()).await;
    let mut response = (status, body).into_response();
    response.headers_mut().extend(headers);
    response
}

fn json_response(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| status.into_response())
}
