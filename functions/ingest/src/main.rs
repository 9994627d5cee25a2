//! Ingest Lambda: `POST /webhooks/{endpoint}` behind an API Gateway HTTP API.
//! Wiring only; the contract lives in `okr_consumers::ingest`.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::{Error, LambdaEvent, service_fn};
use okr_aws::config::{IngestConfig, aws_timeouts};
use okr_aws::secrets_manager::SecretsManagerStore;
use okr_aws::sqs::SqsQueue;
use okr_consumers::ingest::{Ingest, apigw};
use okr_core::endpoints::Endpoints;
use okr_core::subscriptions::Subscriptions;
use okr_pipeline::config::process_env;
use okr_pipeline::metrics::EmfStdout;
use okr_pipeline::secrets::{SecretCache, SecretStore};
use time::OffsetDateTime;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text per AWS_LAMBDA_LOG_FORMAT, level per AWS_LAMBDA_LOG_LEVEL.
    okr_pipeline::telemetry::init();
    let config = IngestConfig::from_env(&process_env())?;

    // Providers give up after a few seconds (some after 3 s), so AWS calls must too.
    let timeouts = aws_timeouts(Duration::from_millis(1500), Duration::from_millis(2500));
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    let queue = Arc::new(SqsQueue::new(
        aws_sdk_sqs::Client::new(&aws),
        config.queue_urls.clone(),
    ));
    let secrets_manager = aws_sdk_secretsmanager::Client::new(&aws);
    let store = Arc::new(SecretsManagerStore::new(
        secrets_manager.clone(),
        &config.secret_id,
    ));
    let mut ingest = Ingest::new(
        SecretCache::new(store.clone(), config.secret_cache_ttl),
        queue.clone(),
        config.notify,
        config.max_body_bytes,
        Arc::new(EmfStdout),
    )
    .with_handshakes(store)
    // Each request as a log line, for `okr-webhooks deliveries --stack`.
    .with_deliveries(Arc::new(okr_consumers::deliveries::LogDeliveries));
    // The endpoints document, cached like the secrets: an edit takes effect within the
    // TTL, and one that does not validate leaves the last good one in force.
    if let Some(id) = &config.endpoints_secret_id {
        let endpoints: Arc<dyn SecretStore<Endpoints>> =
            Arc::new(SecretsManagerStore::new(secrets_manager.clone(), id));
        ingest = ingest.with_endpoints(SecretCache::new(endpoints, config.secret_cache_ttl));
    }
    if config.publish_to_event_bus {
        ingest = ingest.with_every_event_to_subscriptions();
    }
    // The subscriptions document, for which events go on the subscriptions queue.
    if let Some(id) = &config.subscriptions_secret_id {
        let subscriptions: Arc<dyn SecretStore<Subscriptions>> =
            Arc::new(SecretsManagerStore::new(secrets_manager, id));
        ingest =
            ingest.with_subscriptions(SecretCache::new(subscriptions, config.secret_cache_ttl));
    }
    // The queue checks and the secrets fetch open their connections side by side: start-up
    // takes the slower of the round trips, not their sum. Either may fail; the first
    // delivery tries again.
    let (queues, ()) = tokio::join!(queue.warm_up(), ingest.warm_up());
    if let Err(error) = queues {
        tracing::warn!(error = %okr_core::error_chain(&error), "could not reach a queue during start-up");
    }

    let ingest = &ingest;
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            let deadline = okr_pipeline::batch::deadline_from_epoch_ms(event.context.deadline);
            let answer = apigw::handle(ingest, event.payload, OffsetDateTime::now_utc());
            Ok::<_, Error>(okr_pipeline::trace::flushed(answer, deadline).await)
        },
    ))
    .await
}
