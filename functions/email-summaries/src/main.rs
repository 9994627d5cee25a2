//! Email summaries Lambda: invoked by an EventBridge Scheduler schedule, sends each
//! recipient's OKR summary, from the progress read model, through Amazon SES v2. Wiring
//! only; the logic is `okr_consumers::email`.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use okr_aws::config::{SummariesConfig, consumer_aws_timeouts};
use okr_aws::directory_dynamodb::DynamoDbDirectory;
use okr_aws::dynamodb::DynamoDbIdempotencyStore;
use okr_aws::progress_dynamodb::DynamoDbProgressStore;
use okr_aws::secrets_manager::SecretsManagerStore;
use okr_aws::ses::SesMailer;
use okr_consumers::email::send::{ScheduledRun, Summaries};
use okr_pipeline::config::process_env;
use okr_pipeline::secrets::SecretCache;

#[tokio::main]
async fn main() -> Result<(), Error> {
    okr_pipeline::telemetry::init();
    let config = SummariesConfig::from_env(&process_env())?;
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(consumer_aws_timeouts())
        .load()
        .await;
    // SES throttles per account: the adaptive mode slows the client down when it does.
    let ses = aws_sdk_sesv2::config::Builder::from(&aws)
        .retry_config(RetryConfig::adaptive().with_max_attempts(5))
        .build();
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let recipients = SecretCache::new(
        Arc::new(SecretsManagerStore::new(
            secrets,
            &config.email.recipients_secret_id,
        )),
        config.secret_cache_ttl,
    );
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let summaries = Summaries::new(
        Arc::new(DynamoDbProgressStore::new(
            dynamodb.clone(),
            &config.progress_table,
        )),
        Arc::new(recipients),
        Arc::new(SesMailer::new(
            aws_sdk_sesv2::Client::from_conf(ses),
            &config.email.sender,
        )),
        Arc::new(DynamoDbIdempotencyStore::new(
            dynamodb,
            &config.idempotency_table,
        )),
        config.stalled_after,
    )
    .pacing(config.pace)
    .with_directory(Arc::new(DynamoDbDirectory::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &config.directory_table,
    )));

    let (summaries, zone) = (&summaries, &config.time_zone);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ScheduledRun>| async move {
            let deadline = okr_pipeline::batch::deadline_from_epoch_ms(event.context.deadline);
            let report = summaries.scheduled(&event.payload, zone, deadline).await?;
            if report.failed > 0 {
                // The schedule retries the run; what was sent is not sent again.
                return Err(Error::from(format!(
                    "{} of {} summaries not sent; retry",
                    report.failed, report.recipients
                )));
            }
            Ok::<_, Error>(report)
        },
    ))
    .await
}
