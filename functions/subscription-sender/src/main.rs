//! Subscriptions Lambda: each event a subscription takes, from the subscriptions queue
//! to its receiver, signed with Standard Webhooks. Wiring only; the logic is
//! `okr_consumers::subscriptions`.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use okr_aws::config::{SubscriptionsConfig, consumer_aws_timeouts};
use okr_aws::dynamodb::DynamoDbIdempotencyStore;
use okr_aws::eventbridge::EventBridgeBus;
use okr_aws::secrets_manager::SecretsManagerStore;
use okr_aws::sqs::SqsDefer;
use okr_consumers::subscriptions::SubscriptionSender;
use okr_pipeline::config::process_env;
use okr_pipeline::metrics::EmfStdout;
use okr_pipeline::outbound::http::http_client;
use okr_pipeline::secrets::SecretCache;

#[tokio::main]
async fn main() -> Result<(), Error> {
    okr_pipeline::telemetry::init();
    let config = SubscriptionsConfig::from_env(&process_env())?;
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(consumer_aws_timeouts())
        .load()
        .await;
    let secrets_manager = aws_sdk_secretsmanager::Client::new(&aws);
    // Both documents are read again every SECRET_CACHE_TTL_SECONDS: a subscription added
    // or a secret rotated takes effect without a redeploy.
    let document = SecretsManagerStore::new(secrets_manager.clone(), &config.document_secret_id);
    let secrets = SecretsManagerStore::new(secrets_manager, &config.secrets_secret_id);
    let sender = SubscriptionSender::new(
        Arc::new(SecretCache::new(
            Arc::new(document),
            config.secret_cache_ttl,
        )),
        Arc::new(SecretCache::new(Arc::new(secrets), config.secret_cache_ttl)),
        http_client()?,
        Arc::new(DynamoDbIdempotencyStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            &config.idempotency_table,
        )),
    )
    .guarded(config.visibility_timeout, Arc::new(EmfStdout))
    .retrying(SqsDefer::retries(
        aws_sdk_sqs::Client::new(&aws),
        config.queue_url.as_deref(),
    ));

    let sender = match &config.event_bus {
        Some(bus) => sender.publishing_to(Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&aws),
            bus,
        ))),
        None => sender,
    };
    let sender = &sender;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = okr_pipeline::batch::deadline_from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(
            okr_pipeline::trace::flushed(sender.handle(event.payload, deadline), deadline).await?,
        )
    }))
    .await
}
