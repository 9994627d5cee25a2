//! Warehouse sink Lambda: each SQS batch of normalized events becomes gzip NDJSON in S3
//! (or a local directory). Wiring only; the logic is `okr_consumers::warehouse`.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use okr_aws::config::{WarehouseConfig, aws_timeouts, consumer_aws_timeouts};
use okr_aws::dynamodb::DynamoDbIdempotencyStore;
use okr_aws::s3::warehouse_sink;
use okr_aws::sqs::SqsDefer;
use okr_consumers::warehouse::WarehouseSink;
use okr_pipeline::breaker::BreakerConfig;
use okr_pipeline::config::process_env;
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::metrics::EmfStdout;

#[tokio::main]
async fn main() -> Result<(), Error> {
    okr_pipeline::telemetry::init();
    let config = WarehouseConfig::from_env(&process_env())?;
    // An object of a batch can be megabytes: longer attempts than the other consumers',
    // still well inside the 60 s function timeout.
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(aws_timeouts(
            Duration::from_secs(20),
            Duration::from_secs(40),
        ))
        .load()
        .await;
    let sink = warehouse_sink(config.url, &aws);
    // Deferring a record is a small call: the other consumers' shorter timeouts.
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&aws)
            .timeout_config(consumer_aws_timeouts())
            .build(),
    );
    // The circuit breaker's state, shared by every instance through the idempotency
    // table (small calls, like deferring).
    let breaker_store: Arc<dyn IdempotencyStore> = match &config.idempotency_table {
        Some(table) => Arc::new(DynamoDbIdempotencyStore::new(
            aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&aws)
                    .timeout_config(consumer_aws_timeouts())
                    .build(),
            ),
            table,
        )),
        None => Arc::new(MemoryIdempotencyStore::default()),
    };
    let warehouse = WarehouseSink::new(sink)
        .breaking(
            &BreakerConfig::default(),
            breaker_store,
            Arc::new(EmfStdout),
        )
        .retrying(SqsDefer::retries(sqs, config.queue_url.as_deref()));

    let warehouse = &warehouse;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = okr_pipeline::batch::deadline_from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(
            okr_pipeline::trace::flushed(warehouse.handle(event.payload), deadline).await?,
        )
    }))
    .await
}
