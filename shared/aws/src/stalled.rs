//! The stalled check on AWS, wired from its configuration: the read model, the
//! directory and the alerts' state in DynamoDB; email through SES; the bot token, the
//! alerts channel's webhook URL and PagerDuty's routing key from Secrets Manager. The
//! function builds it at each run, so a secret put since the last run is in force.

use std::sync::Arc;

use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_types::SdkConfig;
use okr_consumers::alerts::Destinations;
use okr_consumers::stalled::{StalledCheck, StalledDestinations};
use okr_pipeline::outbound::check_at_start;
use okr_pipeline::outbound::http::{http_client, is_stand_in, log_stand_in};
use okr_pipeline::outbound::mail::Mailer;
use okr_pipeline::outbound::pagerduty::RoutingKey;
use okr_pipeline::outbound::slack::WebhookUrl;
use okr_pipeline::outbound::slack_api::{BotToken, DirectMessages, SlackApi};
use okr_pipeline::secrets::{SecretCache, SecretStore};

use crate::config::StalledConfig;
use crate::directory_dynamodb::DynamoDbDirectory;
use crate::dynamodb::DynamoDbIdempotencyStore;
use crate::progress_dynamodb::DynamoDbProgressStore;
use crate::secrets_manager::SecretsManagerStore;
use crate::ses::SesMailer;

/// The check `config` describes over `aws`'s clients. An error names the setting whose
/// secret cannot be read or used, never its value.
pub async fn check(config: &StalledConfig, aws: &SdkConfig) -> Result<StalledCheck, String> {
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    let secret = |id: &str| Arc::new(SecretsManagerStore::new(secrets.clone(), id));
    // Read once per run: the run is the cache.
    let once = std::time::Duration::from_secs(900);

    let mailer = config.email_sender.as_ref().map(|sender| {
        // SES throttles per account: the adaptive mode slows the client down when it does.
        let ses = aws_sdk_sesv2::config::Builder::from(aws)
            .retry_config(RetryConfig::adaptive().with_max_attempts(5))
            .build();
        Arc::new(SesMailer::new(
            aws_sdk_sesv2::Client::from_conf(ses),
            sender,
        )) as Arc<dyn Mailer>
    });

    let direct = match &config.slack_bot_token_secret_id {
        None => None,
        // A token not put yet (the secret is created empty) or unusable costs the
        // direct messages of this run, not its email, channel posts and pages.
        Some(id) => match SecretStore::<BotToken>::fetch(secret(id).as_ref()).await {
            Ok(token) => {
                if is_stand_in(&config.slack_api_url) {
                    log_stand_in("SLACK_API_URL");
                }
                let api = SlackApi::new(&config.slack_api_url, token.expose())
                    .map_err(|reason| format!("SLACK_API_URL: {reason}"))?;
                Some(Arc::new(api) as Arc<dyn DirectMessages>)
            }
            Err(error) => {
                tracing::error!(setting = "SLACK_BOT_TOKEN_SECRET_ID", error = %okr_core::error_chain(&error), "no Slack bot token: this run sends no direct messages");
                None
            }
        },
    };

    let channel = config
        .slack_webhook_secret_id
        .as_ref()
        .map(|id| SecretCache::<WebhookUrl>::new(secret(id), once));
    if let Some(url) = &channel {
        let checked = check_at_start(url, "ALERTS_SLACK_WEBHOOK_SECRET_ID").await?;
        if checked.is_some_and(|url| url.is_plain_http()) {
            log_stand_in("ALERTS_SLACK_WEBHOOK_SECRET_ID");
        }
    }
    let pagerduty = config
        .pagerduty_routing_key_secret_id
        .as_ref()
        .map(|id| SecretCache::<RoutingKey>::new(secret(id), once));
    if let Some(key) = &pagerduty {
        check_at_start(key, "PAGERDUTY_ROUTING_KEY_SECRET_ID").await?;
        if is_stand_in(&config.pagerduty_events_url) {
            log_stand_in("PAGERDUTY_EVENTS_URL");
        }
    }
    let http = http_client().map_err(|e| format!("no HTTP client: {e}"))?;
    let alerts = Destinations::over_http(
        &http,
        channel,
        pagerduty.map(|key| (config.pagerduty_events_url.clone(), key)),
    );

    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    Ok(StalledCheck::new(
        Arc::new(DynamoDbProgressStore::new(
            dynamodb.clone(),
            &config.progress_table,
        )),
        Arc::new(DynamoDbDirectory::new(
            dynamodb.clone(),
            &config.directory_table,
        )),
        Arc::new(DynamoDbIdempotencyStore::new(
            dynamodb,
            &config.idempotency_table,
        )),
        StalledDestinations {
            mailer,
            direct,
            channel: alerts.slack,
            pagerduty: alerts.pagerduty,
        },
        config.stalled_after,
        config.window,
    ))
}
