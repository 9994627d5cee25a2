//! Stalled check Lambda: invoked daily by an EventBridge Scheduler schedule, opens,
//! reminds and resolves the stalled alerts of key results, to their owners' team leads
//! and the alerts channel and PagerDuty. Wiring only; the logic is
//! `okr_consumers::stalled`.

use aws_config::BehaviorVersion;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use okr_aws::config::{StalledConfig, consumer_aws_timeouts};
use okr_consumers::email::send::ScheduledRun;
use okr_pipeline::config::process_env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    okr_pipeline::telemetry::init();
    let config = StalledConfig::from_env(&process_env())?;
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(consumer_aws_timeouts())
        .load()
        .await;

    let (config, aws) = (&config, &aws);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ScheduledRun>| async move {
            let deadline = okr_pipeline::batch::deadline_from_epoch_ms(event.context.deadline);
            let check = okr_aws::stalled::check(config, aws).await?;
            // Retries of a run judge at its scheduled time, as the run did.
            let now = event
                .payload
                .scheduled_time
                .unwrap_or_else(time::OffsetDateTime::now_utc);
            let report = check.run(now, deadline).await?;
            tracing::info!(?report, "stalled check");
            if report.failed > 0 {
                // Lambda retries the run (twice); what was sent is not sent again.
                return Err(Error::from(format!(
                    "{} stalled alert message(s) not sent; retry",
                    report.failed
                )));
            }
            Ok::<_, Error>(report)
        },
    ))
    .await
}
