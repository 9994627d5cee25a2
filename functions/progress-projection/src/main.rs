//! Progress projection Lambda: events about objectives and key results from the progress
//! queue, applied to the read model in DynamoDB that the dashboard and the progress API
//! read, and HR records applied to the directory of people beside it. Wiring only; the logic is `okr_consumers::progress`.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use okr_aws::config::{ProjectionConfig, consumer_aws_timeouts};
use okr_aws::directory_dynamodb::DynamoDbDirectory;
use okr_aws::progress_dynamodb::DynamoDbProgressStore;
use okr_aws::sqs::SqsDefer;
use okr_consumers::progress::ProgressProjection;
use okr_pipeline::config::process_env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    okr_pipeline::telemetry::init();
    let config = ProjectionConfig::from_env(&process_env())?;
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(consumer_aws_timeouts())
        .load()
        .await;
    let store = DynamoDbProgressStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table);
    let directory =
        DynamoDbDirectory::new(aws_sdk_dynamodb::Client::new(&aws), &config.directory_table);
    let projection = ProgressProjection::new(Arc::new(store), config.thresholds)
        .with_directory(Arc::new(directory))
        .retrying(SqsDefer::retries(
            aws_sdk_sqs::Client::new(&aws),
            config.queue_url.as_deref(),
        ));

    let projection = &projection;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = okr_pipeline::batch::deadline_from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(
            okr_pipeline::trace::flushed(projection.handle(event.payload), deadline).await?,
        )
    }))
    .await
}
