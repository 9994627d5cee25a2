//! People snapshot Lambda: invoked daily by an EventBridge Scheduler schedule, writes
//! the directory of people as that day's partition of the warehouse's `people` table.
//! Wiring only; the logic is `okr_consumers::warehouse::people`.

use aws_config::BehaviorVersion;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use okr_aws::config::{PeopleSnapshotConfig, consumer_aws_timeouts};
use okr_aws::directory_dynamodb::DynamoDbDirectory;
use okr_aws::s3::warehouse_sink;
use okr_consumers::email::send::ScheduledRun;
use okr_consumers::warehouse::people::snapshot;
use okr_pipeline::config::process_env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    okr_pipeline::telemetry::init();
    let config = PeopleSnapshotConfig::from_env(&process_env())?;
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(consumer_aws_timeouts())
        .load()
        .await;
    let sink = warehouse_sink(config.url, &aws);
    let directory =
        DynamoDbDirectory::new(aws_sdk_dynamodb::Client::new(&aws), &config.directory_table);

    let (sink, directory) = (&sink, &directory);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ScheduledRun>| async move {
            // The day the run was due (UTC): a retry writes the same partition.
            let at = event
                .payload
                .scheduled_time
                .unwrap_or_else(time::OffsetDateTime::now_utc);
            let date = at.to_offset(time::UtcOffset::UTC).date();
            let people = snapshot(directory, sink.as_ref(), date).await?;
            tracing::info!(people, %date, "people snapshot written");
            Ok::<_, Error>(serde_json::json!({"date": date.to_string(), "people": people}))
        },
    ))
    .await
}
