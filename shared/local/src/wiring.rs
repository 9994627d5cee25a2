//! The consumers of `serve`: the Lambda functions' handlers over the data directory's
//! stores, with Slack, the alerts channel and PagerDuty as configured (printed when not).

use std::sync::Arc;
use std::time::Duration;

use crate::config::LocalConfig;
use crate::consumer::{BatchHandler, VISIBILITY};
use crate::paths::{LocalError, Paths};
use crate::print::Printer;
use crate::stores::Stores;
use crate::subscriptions_file::SubscriptionsFile;
use okr_consumers::alerts::{
    AlertSettings, DEFAULT_WINDOW, Destinations, EmailAlerts, ProgressAlerts,
};
use okr_consumers::progress::ProgressProjection;
use okr_consumers::slack::{DEFAULT_DIGEST_THRESHOLD, SlackNotifier};
use okr_consumers::stalled::StalledDestinations;
use okr_consumers::subscriptions::SubscriptionSender;
use okr_consumers::warehouse::WarehouseSink;
use okr_consumers::warehouse::local::LocalSink;
use okr_core::routing::Consumer;
use okr_core::rules::Thresholds;
use okr_pipeline::breaker::{Breaker, BreakerConfig, BreakerSettings, SystemClock};
use okr_pipeline::metrics::NoMetrics;
use okr_pipeline::outbound::http::http_client;
use okr_pipeline::outbound::pagerduty::{PagerDuty, RoutingKey};
use okr_pipeline::outbound::slack::{SlackPoster, WebhookPoster, WebhookUrl};
use okr_pipeline::outbound::slack_api::{DirectMessages, SlackApi};
use okr_pipeline::retry::{Retries, Schedule};
use okr_pipeline::secrets::{FromSecret, SecretCache, StaticSecret};

/// Batch sizes. The warehouse writes one object per batch, so bigger batches mean fewer
/// files: the template takes 100 with a 30 s batching window; locally there is no window
/// (a consumer takes what is waiting as soon as a send commits), so up to 500 at once
/// keeps a burst in few objects. Slack and the alerts take 10, as in the template: their
/// records are sent one after another (Slack about one a second), so a batch must fit
/// the time one invocation (here, one visibility timeout) has.
const WAREHOUSE_BATCH: usize = 500;
const SLACK_BATCH: usize = 10;
const ALERTS_BATCH: usize = 10;
/// The read model applies a batch in one transaction: big batches, few commits.
const PROGRESS_BATCH: usize = 500;
/// The subscriptions' records are sent side by side, ten at a time as on AWS.
const SUBSCRIPTIONS_BATCH: usize = 10;

/// A consumer, its handler, and how many messages it takes at once.
pub(super) type ConsumerSpec = (Consumer, Arc<dyn BatchHandler>, usize);

/// The five consumers over `stores`, and their destinations' circuit breakers; the
/// alerts email `email`'s recipients too, when given.
pub(super) fn consumers(
    config: &LocalConfig,
    stores: &Stores,
    paths: &Paths,
    email: Option<EmailAlerts>,
) -> Result<(Vec<ConsumerSpec>, Vec<Arc<Breaker>>), LocalError> {
    let http = http_client().map_err(|e| LocalError::Config(e.to_string()))?;
    let urls = &config.destinations;
    // The retry schedule and the breakers' probes scale with `--retry-base-ms`.
    let retries = Retries {
        defer: stores.queue.clone(),
        schedule: Schedule::starting_at(config.retry_base),
    };
    let breaking = BreakerConfig {
        settings: BreakerSettings::scaled(config.retry_base),
        clock: Arc::new(SystemClock),
    };
    let journal = stores.deliveries.clone();
    let warehouse = WarehouseSink::new(Arc::new(LocalSink::new(&paths.warehouse)))
        .breaking(&breaking, stores.idempotency.clone(), Arc::new(NoMetrics))
        .retrying(retries.clone())
        .journaling(journal.clone());
    let notifier = SlackNotifier::new(
        slack_poster(
            &http,
            urls.slack_webhook_url.as_deref(),
            ("slack", "--slack-webhook-url"),
        )?,
        stores.idempotency.clone(),
        config.notify.clone(),
        DEFAULT_DIGEST_THRESHOLD,
    )
    // SQLite on this machine: read for each message (Slack takes one a second), so a
    // link or an HR change shows in the next message.
    .with_directory(stores.directory.clone(), Duration::ZERO)
    .guarded(VISIBILITY, Arc::new(NoMetrics))
    .breaking(&breaking)
    .retrying(retries.clone())
    .journaling(journal.clone());
    let alerts = alerts(config, stores, &http, email)?
        .breaking(&breaking)
        .retrying(retries.clone())
        .journaling(journal.clone());
    let subscriptions = subscriptions(paths, stores, &http)
        .breaking(&breaking)
        .guarded(VISIBILITY, Arc::new(NoMetrics))
        .retrying(retries.clone())
        .journaling(journal.clone());
    let projection = ProgressProjection::new(stores.progress.clone(), Thresholds::default())
        .with_directory(stores.directory.clone())
        .retrying(retries)
        .journaling(journal);
    let breakers = [warehouse.breaker().clone(), notifier.breaker().clone()]
        .into_iter()
        .chain(alerts.breakers())
        .collect();
    let consumers: Vec<ConsumerSpec> = vec![
        (Consumer::Warehouse, Arc::new(warehouse), WAREHOUSE_BATCH),
        (Consumer::Slack, Arc::new(notifier), SLACK_BATCH),
        (Consumer::Alerts, Arc::new(alerts), ALERTS_BATCH),
        (Consumer::Progress, Arc::new(projection), PROGRESS_BATCH),
        (
            Consumer::Subscriptions,
            Arc::new(subscriptions),
            SUBSCRIPTIONS_BATCH,
        ),
    ];
    Ok((consumers, breakers))
}

/// The subscriptions consumer over the data directory's two documents, read again
/// every 5 s, so `subscriptions add` and `enable` take effect without a restart.
fn subscriptions(paths: &Paths, stores: &Stores, http: &reqwest::Client) -> SubscriptionSender {
    let file = Arc::new(SubscriptionsFile::new(&paths.subscriptions));
    SubscriptionSender::new(
        Arc::new(SecretCache::new(file.clone(), DOCUMENT_REFRESH)),
        Arc::new(SecretCache::new(file, DOCUMENT_REFRESH)),
        http.clone(),
        stores.idempotency.clone(),
    )
}

/// How often `serve` reads the subscriptions documents again.
pub(super) const DOCUMENT_REFRESH: Duration = Duration::from_secs(5);

/// The progress alerts, to the alerts channel and PagerDuty as configured (each printed
/// when not) and to `email`, built by the function the Lambda uses.
fn alerts(
    config: &LocalConfig,
    stores: &Stores,
    http: &reqwest::Client,
    email: Option<EmailAlerts>,
) -> Result<ProgressAlerts, LocalError> {
    let (channel, pagerduty) = alert_channels(config, http)?;
    let mut destinations = Destinations::over_http(http, None, None);
    destinations.slack = Some(channel);
    destinations.pagerduty = Some(pagerduty);
    destinations.email = email;
    let settings = AlertSettings {
        thresholds: Thresholds::default(),
        window: DEFAULT_WINDOW,
        claim_hold: VISIBILITY,
    };
    Ok(ProgressAlerts::configured(
        destinations,
        stores.idempotency.clone(),
        &settings,
        Arc::new(NoMetrics),
    ))
}

/// The alerts channel and PagerDuty.
type AlertChannels = (Arc<dyn SlackPoster>, Arc<dyn PagerDuty>);

/// The alerts channel and PagerDuty as configured, each printed when not.
fn alert_channels(
    config: &LocalConfig,
    http: &reqwest::Client,
) -> Result<AlertChannels, LocalError> {
    let urls = &config.destinations;
    let pagerduty = match urls.pagerduty_routing_key.as_deref() {
        Some(key) => Some((
            config.pagerduty_events_url.clone(),
            fixed::<RoutingKey>(key, "--pagerduty-routing-key")?,
        )),
        None => None,
    };
    let pagerduty = Destinations::over_http(http, None, pagerduty)
        .pagerduty
        .unwrap_or_else(|| Arc::new(Printer("pagerduty")));
    let channel = slack_poster(
        http,
        urls.alerts_slack_webhook_url.as_deref(),
        ("alerts", "--alerts-slack-webhook-url"),
    )?;
    Ok((channel, pagerduty))
}

/// Where the stalled check sends: the alerts channel and PagerDuty as the alerts have
/// them, `mailer` for the team leads' email, and Slack direct messages with a bot token.
pub fn stalled_destinations(
    config: &LocalConfig,
    mailer: Option<Arc<dyn okr_pipeline::outbound::mail::Mailer>>,
) -> Result<StalledDestinations, LocalError> {
    let http = http_client().map_err(|e| LocalError::Config(format!("no HTTP client: {e}")))?;
    let (channel, pagerduty) = alert_channels(config, &http)?;
    let urls = &config.destinations;
    let direct = match urls
        .slack_bot_token
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        Some(token) => {
            let base = match urls.slack_api_url.trim() {
                "" => okr_pipeline::outbound::slack_api::SLACK_API,
                url => url,
            };
            let api = SlackApi::new(base, token)
                .map_err(|reason| LocalError::Config(format!("--slack-api-url: {reason}")))?;
            Some(Arc::new(api) as Arc<dyn DirectMessages>)
        }
        None => None,
    };
    Ok(StalledDestinations {
        mailer,
        direct,
        channel: Some(channel),
        pagerduty: Some(pagerduty),
    })
}

/// Posts to `url` (set by the option `setting`), or prints with `label` when there is
/// none.
fn slack_poster(
    http: &reqwest::Client,
    url: Option<&str>,
    (label, setting): (&'static str, &str),
) -> Result<Arc<dyn SlackPoster>, LocalError> {
    Ok(match url {
        Some(url) => {
            let url = fixed::<WebhookUrl>(url, setting)?;
            Arc::new(WebhookPoster::new(http.clone(), url))
        }
        None => Arc::new(Printer(label)),
    })
}

/// A credential given on the command line (the option `setting`), as a secret cache
/// that never changes. One that can never work stops `serve` naming the option, never
/// the value.
fn fixed<T>(text: &str, setting: &str) -> Result<SecretCache<T>, LocalError>
where
    T: FromSecret + Clone + PartialEq + Send + Sync + 'static,
{
    let value = T::from_secret(text).map_err(|e| match e {
        okr_pipeline::secrets::SecretsError::Invalid(reason) => {
            LocalError::Config(format!("{setting}: {reason}"))
        }
        other => LocalError::Config(format!("{setting}: {other}")),
    })?;
    Ok(SecretCache::new(
        Arc::new(StaticSecret(value)),
        Duration::from_secs(3600),
    ))
}
