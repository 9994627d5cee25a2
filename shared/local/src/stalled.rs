//! The stalled check on one machine: over the data directory's read model, directory
//! and idempotency store, to the team leads (SMTP or the outbox; Slack direct messages
//! with a bot token) and the alerts channel and PagerDuty as `serve` has them; now
//! (`okr-webhooks stalled`) or on `--stalled-cron`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::LocalConfig;
use crate::paths::LocalError;
use okr_consumers::alerts::DEFAULT_WINDOW;
use okr_consumers::directory::DirectoryStore;
use okr_consumers::email::schedule::{Cron, to_offset};
use okr_consumers::progress::ProgressStore;
use okr_consumers::stalled::{Report, StalledCheck};
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::outbound::mail::Mailer;

/// How long a check may take locally.
const RUN_TIME: Duration = Duration::from_secs(600);

/// The check over these stores, sending as `config` says and emailing with `mailer`.
pub fn check(
    config: &LocalConfig,
    progress: Arc<dyn ProgressStore>,
    directory: Arc<dyn DirectoryStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    mailer: Arc<dyn Mailer>,
) -> Result<StalledCheck, LocalError> {
    let destinations = crate::wiring::stalled_destinations(config, Some(mailer))?;
    Ok(StalledCheck::new(
        progress,
        directory,
        idempotency,
        destinations,
        config.email.stalled_after,
        DEFAULT_WINDOW,
    ))
}

/// Run the check now.
pub async fn run_now(check: &StalledCheck) -> Result<Report, okr_consumers::stalled::StalledError> {
    check
        .run(time::OffsetDateTime::now_utc(), Instant::now() + RUN_TIME)
        .await
}

/// One line for a check's report.
pub fn said(report: &Report) -> String {
    format!(
        "stalled: {} opened, {} reminded, {} resolved; {} message(s) sent, {} sent before, {} refused, {} failed",
        report.opened,
        report.reminded,
        report.resolved,
        report.sent,
        report.already_sent,
        report.refused,
        report.failed
    )
}

/// Run the check whenever `cron` matches (this machine's time zone), until `stop`.
pub async fn on_schedule(
    cron: Cron,
    check: StalledCheck,
    mut stop: watch::Receiver<bool>,
    announce: impl Fn(String) + Send + 'static,
) {
    loop {
        let now = chrono::Local::now();
        let Some(next) = cron.next_after(&now) else {
            announce("stalled: the cron pattern never matches again".to_owned());
            return;
        };
        announce(format!(
            "stalled check: next at {}",
            next.format("%Y-%m-%d %H:%M %Z")
        ));
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        match check.run(to_offset(&next), Instant::now() + RUN_TIME).await {
            Ok(report) => announce(said(&report)),
            Err(error) => announce(format!(
                "stalled: not run: {}",
                okr_core::error_chain(&error)
            )),
        }
    }
}
