//! `serve`: start the stores, the consumers and the HTTP server; stop them in order.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::LocalConfig;
use crate::dashboard::Access;
use crate::paths::{LocalError, Paths, io};
use crate::secrets_file::EndpointsFile;
use crate::subscriptions_file::SubscriptionsFile;
use crate::{consumer, email, health, lock, router, stores, wiring};
use okr_consumers::ingest::Ingest;
use okr_pipeline::config::DEFAULT_MAX_BODY_BYTES;
use okr_pipeline::metrics::NoMetrics;
use okr_pipeline::secrets::SecretCache;

/// How often the dashboard's feed looks for records written.
const FEED_EVERY: Duration = Duration::from_millis(200);

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
    let endpoints_file = EndpointsFile::new(&paths.endpoints);
    let endpoints = endpoints_file.load().map_err(|reason| {
        LocalError::Config(format!(
            "{} does not validate, so serve does not start: {reason}",
            paths.endpoints.display()
        ))
    })?;
    let subscriptions_file = SubscriptionsFile::new(&paths.subscriptions);
    let subscriptions = subscriptions_file.load().map_err(|reason| {
        LocalError::Config(format!(
            "the subscriptions document does not validate, so serve does not start: {reason}"
        ))
    })?;
    let stores = stores::open(&paths, &endpoints, &announce).await?;
    let mail = email::wiring(data_dir, &config.email, &stores, &announce).await?;
    let email_alerts = mail.as_ref().map(|(alerts, _)| alerts.clone());
    let (consumers, breakers) = wiring::consumers(&config, &stores, &paths, email_alerts)?;
    let health = Arc::new(health::Health {
        queue: stores.queue.clone(),
        breakers,
    });
    announce(format!("warehouse: {}", paths.warehouse.display()));
    announce(format!(
        "subscriptions: {} in {}",
        subscriptions.subscriptions.len(),
        SubscriptionsFile::new(&paths.subscriptions)
            .path()
            .display()
    ));
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
        if url.is_some_and(okr_pipeline::outbound::http::is_stand_in) {
            announce(format!(
                "{setting}: plain http to a loopback address (a stand-in on this machine)"
            ));
        }
    }
    let deliveries: Arc<dyn okr_consumers::deliveries::DeliveryStore> = stores.deliveries.clone();
    let ingest = Arc::new(
        Ingest::new(
            SecretCache::new(stores.secrets.clone(), Duration::from_secs(5)),
            stores.queue.clone(),
            config.notify.clone(),
            DEFAULT_MAX_BODY_BYTES,
            Arc::new(NoMetrics),
        )
        .with_endpoints(SecretCache::new(
            Arc::new(endpoints_file),
            Duration::from_secs(5),
        ))
        .with_subscriptions(SecretCache::new(
            Arc::new(subscriptions_file),
            wiring::DOCUMENT_REFRESH,
        ))
        .with_handshakes(stores.secrets.clone())
        .with_deliveries(deliveries.clone())
        .journaling(stores.deliveries.clone()),
    );

    let (stop, stopped) = watch::channel(false);
    // Fired as soon as shutdown starts (before the requests finish), so the dashboard's
    // streams end and their connections close.
    let (closing, shutting_down) = watch::channel(false);
    let feed = okr_consumers::progress::feed::spawn(
        stores.progress.clone(),
        Some(stores.directory.clone()),
        FEED_EVERY,
        shutting_down,
    );
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
    // What to paste where, for each endpoint.
    for endpoint in endpoints.iter() {
        let provider = endpoint.provider();
        let (place, secret) = provider.setup();
        let name = endpoint.name();
        let secret = match provider.handshake_header() {
            Some(_) => format!("{secret} (in {})", paths.secrets.display()),
            None => format!("{secret} goes in {} as \"{name}\"", paths.secrets.display()),
        };
        announce(format!(
            "{}: paste http://{addr}/webhooks/{name} into {place}; {secret}",
            provider.display_name(),
        ));
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
    // The warehouse's people table: the day's snapshot now, then daily.
    tasks.push(tokio::spawn(crate::people::daily(
        stores.directory.clone(),
        paths.warehouse.clone(),
        stopped.clone(),
        |line| eprintln!("{line}"),
    )));
    if let Some(cron) = config.email.stalled_cron.clone() {
        let (mailer, _) = email::mailer(data_dir, &config.email)?;
        let check = crate::stalled::check(
            &config,
            stores.progress.clone(),
            stores.directory.clone(),
            stores.idempotency.clone(),
            mailer,
        )?;
        tasks.push(tokio::spawn(crate::stalled::on_schedule(
            cron,
            check,
            stopped.clone(),
            |line| eprintln!("{line}"),
        )));
    }
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
    let app = router::router(ingest, health)
        .merge(crate::dashboard::router(
            stores.progress.clone(),
            Some(stores.directory.clone()),
            feed,
            access.clone(),
        ))
        .merge(crate::inspector::router(
            deliveries,
            crate::inspector::Replays::new(
                data_dir.to_path_buf(),
                paths.warehouse.clone(),
                stores.queue.clone(),
                stores.idempotency.clone(),
                config.notify.clone(),
            ),
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
    // The delivery log's last records and steps, written before the process ends.
    stores.deliveries.flush().await;
    served.map_err(|e| io("the server failed", data_dir, e))
}
