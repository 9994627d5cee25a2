//! Progress alerts Lambda: behind-pace, low, dropped and at-risk key results from the
//! alerts queue, to a Slack alerts channel, PagerDuty and/or email (SES). Wiring only; the logic is
//! `okr_consumers::alerts`.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use okr_aws::config::{AlertsConfig, consumer_aws_timeouts};
use okr_aws::dynamodb::DynamoDbIdempotencyStore;
use okr_aws::secrets_manager::SecretsManagerStore;
use okr_aws::ses::SesMailer;
use okr_aws::sqs::SqsDefer;
use okr_consumers::alerts::{Destinations, EmailAlerts, ProgressAlerts};
use okr_pipeline::config::process_env;
use okr_pipeline::metrics::EmfStdout;
use okr_pipeline::outbound::check_at_start;
use okr_pipeline::outbound::http::{http_client, is_stand_in, log_stand_in};
use okr_pipeline::outbound::pagerduty::RoutingKey;
use okr_pipeline::outbound::slack::WebhookUrl;
use okr_pipeline::secrets::SecretCache;

#[tokio::main]
async fn main() -> Result<(), Error> {
    okr_pipeline::telemetry::init();
    let config = AlertsConfig::from_env(&process_env())?;
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(consumer_aws_timeouts())
        .load()
        .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let ttl = config.secret_cache_ttl;
    let slack = config
        .slack_webhook_secret_id
        .as_ref()
        .map(|id| cached::<WebhookUrl>(&secrets, id, ttl));
    let pagerduty = config
        .pagerduty_routing_key_secret_id
        .as_ref()
        .map(|id| cached::<RoutingKey>(&secrets, id, ttl));
    // A URL or key that can never work fails the init, naming the variable.
    if let Some(url) = &slack {
        let checked = check_at_start(url, "ALERTS_SLACK_WEBHOOK_SECRET_ID").await?;
        if checked.is_some_and(|url| url.is_plain_http()) {
            log_stand_in("ALERTS_SLACK_WEBHOOK_SECRET_ID");
        }
    }
    if let Some(key) = &pagerduty {
        check_at_start(key, "PAGERDUTY_ROUTING_KEY_SECRET_ID").await?;
        if is_stand_in(&config.pagerduty_events_url) {
            log_stand_in("PAGERDUTY_EVENTS_URL");
        }
    }
    let mut destinations = Destinations::over_http(
        &http_client()?,
        slack,
        pagerduty.map(|key| (config.pagerduty_events_url.clone(), key)),
    );
    destinations.email = config.email.as_ref().map(|email| EmailAlerts {
        mailer: Arc::new(SesMailer::new(
            aws_sdk_sesv2::Client::new(&aws),
            &email.sender,
        )),
        recipients: Arc::new(cached(&secrets, &email.recipients_secret_id, ttl)),
    });
    let store = DynamoDbIdempotencyStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &config.idempotency_table,
    );
    let alerts = ProgressAlerts::configured(
        destinations,
        Arc::new(store),
        &config.settings(),
        Arc::new(EmfStdout),
    )
    .retrying(SqsDefer::retries(
        aws_sdk_sqs::Client::new(&aws),
        config.queue_url.as_deref(),
    ));

    let alerts = &alerts;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = okr_pipeline::batch::deadline_from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(
            okr_pipeline::trace::flushed(alerts.handle(event.payload, deadline), deadline).await?,
        )
    }))
    .await
}

/// The secret `id` in Secrets Manager, cached for `ttl`.
fn cached<T>(client: &aws_sdk_secretsmanager::Client, id: &str, ttl: Duration) -> SecretCache<T>
where
    T: okr_pipeline::secrets::FromSecret + PartialEq + Send + Sync + 'static,
{
    SecretCache::new(Arc::new(SecretsManagerStore::new(client.clone(), id)), ttl)
}
