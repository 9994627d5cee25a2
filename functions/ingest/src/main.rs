//! Ingest Lambda: `POST /webhooks/{source}` behind an API Gateway HTTP API.
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
use okr_pipeline::config::process_env;
use okr_pipeline::metrics::EmfStdout;
use okr_pipeline::secrets::SecretCache;
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
    let store =
        SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&aws), &config.secret_id);
    let ingest = Ingest::new(
        SecretCache::new(Arc::new(store), config.secret_cache_ttl),
        queue.clone(),
        config.notify,
        config.max_body_bytes,
        Arc::new(EmfStdout),
    );
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
            Ok::<_, Error>(apigw::handle(ingest, event.payload, OffsetDateTime::now_utc()).await)
        },
    ))
    .await
}
