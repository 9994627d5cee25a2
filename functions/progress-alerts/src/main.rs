//! Progress alerts Lambda: behind-pace, low, dropped and at-risk key results from the
//! alerts queue, to a Slack alerts channel and/or PagerDuty. Wiring only; the logic is
//! `okr_webhooks::alerts`.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use okr_webhooks::alerts::{Destinations, ProgressAlerts};
use okr_webhooks::config::{AlertsConfig, consumer_aws_timeouts, process_env};
use okr_webhooks::idempotency::dynamodb::DynamoDbIdempotencyStore;
use okr_webhooks::metrics::EmfStdout;
use okr_webhooks::outbound::http::http_client;
use okr_webhooks::outbound::pagerduty::{PagerDuty, PagerDutyClient};
use okr_webhooks::outbound::slack::{SlackPoster, WebhookPoster};
use okr_webhooks::secrets::SecretCache;
use okr_webhooks::secrets::secrets_manager::SecretsManagerStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    okr_webhooks::telemetry::init();
    let config = AlertsConfig::from_env(&process_env())?;
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(consumer_aws_timeouts())
        .load()
        .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let http = http_client(true)?;
    let slack = config
        .slack_webhook_secret_id
        .as_ref()
        .map(|id| -> Arc<dyn SlackPoster> {
            let url = SecretCache::new(
                Arc::new(SecretsManagerStore::new(secrets.clone(), id)),
                config.secret_cache_ttl,
            );
            Arc::new(WebhookPoster::new(http.clone(), url))
        });
    let pagerduty =
        config
            .pagerduty_routing_key_secret_id
            .as_ref()
            .map(|id| -> Arc<dyn PagerDuty> {
                let key = SecretCache::new(
                    Arc::new(SecretsManagerStore::new(secrets.clone(), id)),
                    config.secret_cache_ttl,
                );
                Arc::new(PagerDutyClient::new(
                    http.clone(),
                    &config.pagerduty_events_url,
                    key,
                ))
            });
    let alerts = ProgressAlerts::new(
        Destinations { slack, pagerduty },
        Arc::new(DynamoDbIdempotencyStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            &config.idempotency_table,
        )),
        config.thresholds,
        config.window,
    )
    .with_claim_hold(config.visibility_timeout)
    .with_metrics(Arc::new(EmfStdout));

    let alerts = &alerts;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = okr_webhooks::batch::deadline_from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(alerts.handle(event.payload, deadline).await?)
    }))
    .await
}
