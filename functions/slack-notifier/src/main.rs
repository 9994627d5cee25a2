//! Slack notifier Lambda: notable events from the Slack queue to an incoming webhook.
//! Wiring only; the logic is `okr_consumers::slack`.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use okr_aws::config::{SlackConfig, consumer_aws_timeouts};
use okr_aws::directory_dynamodb::DynamoDbDirectory;
use okr_aws::dynamodb::DynamoDbIdempotencyStore;
use okr_aws::secrets_manager::SecretsManagerStore;
use okr_aws::sqs::SqsDefer;
use okr_consumers::slack::SlackNotifier;
use okr_pipeline::config::process_env;
use okr_pipeline::metrics::EmfStdout;
use okr_pipeline::outbound::check_at_start;
use okr_pipeline::outbound::http::{http_client, log_stand_in};
use okr_pipeline::outbound::slack::{WebhookPoster, WebhookUrl};
use okr_pipeline::secrets::SecretCache;

#[tokio::main]
async fn main() -> Result<(), Error> {
    okr_pipeline::telemetry::init();
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
    // A URL that can never be called fails the init, naming the variable.
    let checked = check_at_start(&url, "SLACK_WEBHOOK_SECRET_ID").await?;
    if checked.is_some_and(|url| url.is_plain_http()) {
        log_stand_in("SLACK_WEBHOOK_SECRET_ID");
    }
    let http = http_client()?;
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
    let notifier = match &config.directory_table {
        // A scan of the table a minute at most, however many messages.
        Some(table) => notifier.with_directory(
            Arc::new(DynamoDbDirectory::new(
                aws_sdk_dynamodb::Client::new(&aws),
                table,
            )),
            std::time::Duration::from_secs(60),
        ),
        None => notifier,
    };

    let notifier = &notifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = okr_pipeline::batch::deadline_from_epoch_ms(event.context.deadline);
        Ok::<_, Error>(
            okr_pipeline::trace::flushed(notifier.handle(event.payload, deadline), deadline)
                .await?,
        )
    }))
    .await
}
