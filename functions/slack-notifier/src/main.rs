//! Slack notifier Lambda: notable events from the Slack queue to an incoming webhook.
//! Wiring only; the logic is `okr_webhooks::slack`.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use okr_webhooks::config::{SlackConfig, consumer_aws_timeouts, process_env};
use okr_webhooks::idempotency::dynamodb::DynamoDbIdempotencyStore;
use okr_webhooks::metrics::EmfStdout;
use okr_webhooks::outbound::http::http_client;
use okr_webhooks::outbound::slack::{WebhookPoster, WebhookUrl};
use okr_webhooks::queue::sqs::SqsDefer;
use okr_webhooks::secrets::SecretCache;
use okr_webhooks::secrets::secrets_manager::SecretsManagerStore;
use okr_webhooks::slack::SlackNotifier;

#[tokio::main]
async fn main() -> Result<(), Error> {
    okr_webhooks::telemetry::init();
    let config = SlackConfig::from_env(&process_env())?;
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(consumer_aws_timeouts())
        .load()
        .await;
    let url_store = SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&aws),
        &config.webhook_secret_id,
    );
    let url: SecretCache<WebhookUrl> =
        SecretCache::new(Arc::new(url_store), config.secret_cache_ttl);
    let http = http_client(true)?;
    let notifier = SlackNotifier::new(
        Arc::new(WebhookPoster::new(http, url)),
        Arc::new(DynamoDbIdempotencyStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            &config.idempotency_table,
        )),
        config.notify,
        config.digest_threshold,
    )
    .guarded(config.visibility_timeout, Arc::new(EmfStdout))
    .retrying(SqsDefer::retries(
        aws_sdk_sqs::Client::new(&aws),
        config.queue_url.as_deref(),
    ));

    let notifier = &notifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = okr_webhooks::batch::deadline_from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(notifier.handle(event.payload, deadline).await?)
    }))
    .await
}
