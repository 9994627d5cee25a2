//! Email in local mode: the recipients file, the mailer (SMTP, or `.eml` files in the
//! outbox), the summaries over the data directory's stores, and `--summary-cron`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::LocalEmail;
use crate::paths::LocalError;
use crate::smtp::{Outbox, SmtpMailer, sender};
use okr_consumers::email::recipients::Recipients;
use okr_consumers::email::schedule::{Cron, date_in, to_offset};
use okr_consumers::email::send::{Report, Summaries};
use okr_consumers::progress::ProgressStore;
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::outbound::mail::Mailer;
use okr_pipeline::secrets::{FromSecret, SecretCache, SecretStore, SecretsError};

/// `<data-dir>/email-recipients.json`: who gets email (the same document as the secret
/// on AWS).
pub const RECIPIENTS_FILE: &str = "email-recipients.json";
/// `<data-dir>/outbox/`: emails as `.eml` files when no SMTP server is given.
pub const OUTBOX: &str = "outbox";
/// How long a summaries run may take locally.
const RUN_TIME: Duration = Duration::from_secs(600);

/// The recipients file, read again at most every few seconds (an edit is picked up).
struct RecipientsFile(PathBuf);

#[async_trait]
impl SecretStore<Recipients> for RecipientsFile {
    async fn fetch(&self) -> Result<Recipients, SecretsError> {
        let text = tokio::fs::read_to_string(&self.0)
            .await
            .map_err(|e| SecretsError::Unavailable(Box::new(e)))?;
        Recipients::from_secret(&text)
    }
}

/// The data directory's recipients, when its file exists; a file that does not parse
/// stops here, with the reason (never an address).
pub async fn recipients(
    data_dir: &Path,
) -> Result<Option<Arc<SecretCache<Recipients>>>, LocalError> {
    let path = data_dir.join(RECIPIENTS_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let cache = SecretCache::new(
        Arc::new(RecipientsFile(path.clone())),
        Duration::from_secs(5),
    );
    cache.current().await.map_err(|e| {
        LocalError::Config(format!("{}: {}", path.display(), okr_core::error_chain(&e)))
    })?;
    Ok(Some(Arc::new(cache)))
}

/// The mailer `email` asks for, and a line saying where mail goes.
pub fn mailer(
    data_dir: &Path,
    email: &LocalEmail,
) -> Result<(Arc<dyn Mailer>, String), LocalError> {
    let from = sender(&email.from).map_err(LocalError::Config)?;
    Ok(match &email.smtp_url {
        Some(url) => {
            let mailer = SmtpMailer::new(url, email.credentials.clone(), from)
                .map_err(LocalError::Config)?;
            (
                Arc::new(mailer),
                format!("through the SMTP server at {}", without_password(url)),
            )
        }
        None => {
            let outbox = Outbox::new(&data_dir.join(OUTBOX), from);
            let line = format!(
                "as .eml files in {} (no --smtp-url)",
                outbox.dir().display()
            );
            (Arc::new(outbox), line)
        }
    })
}

/// `url` without a password it may carry.
fn without_password(url: &str) -> String {
    match url
        .split_once("://")
        .and_then(|(scheme, rest)| Some((scheme, rest.rsplit_once('@')?.1)))
    {
        Some((scheme, host)) => format!("{scheme}://...@{host}"),
        None => url.to_owned(),
    }
}

/// The summaries over a data directory's stores.
pub fn summaries(
    progress: Arc<dyn ProgressStore>,
    directory: Arc<dyn okr_consumers::directory::DirectoryStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    recipients: Arc<SecretCache<Recipients>>,
    mailer: Arc<dyn Mailer>,
    email: &LocalEmail,
) -> Summaries {
    Summaries::new(
        progress,
        recipients,
        mailer,
        idempotency,
        email.stalled_after,
    )
    .with_directory(directory)
}

/// Send the summaries now (this machine's date).
pub async fn send_now(
    summaries: &Summaries,
) -> Result<Report, okr_consumers::email::send::SummaryError> {
    let now = chrono::Local::now();
    let at = to_offset(&now);
    summaries
        .send(at, date_in(at, &chrono::Local), Instant::now() + RUN_TIME)
        .await
}

/// Send the summaries whenever `cron` matches (this machine's time zone), until `stop`.
pub async fn on_schedule(
    cron: Cron,
    summaries: Summaries,
    mut stop: watch::Receiver<bool>,
    announce: impl Fn(String) + Send + 'static,
) {
    loop {
        let now = chrono::Local::now();
        let Some(next) = cron.next_after(&now) else {
            announce("summaries: the cron pattern never matches again".to_owned());
            return;
        };
        announce(format!(
            "summaries: next at {}",
            next.format("%Y-%m-%d %H:%M %Z")
        ));
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let at = to_offset(&next);
        let date = date_in(at, &chrono::Local);
        match summaries.send(at, date, Instant::now() + RUN_TIME).await {
            Ok(report) => announce(format!(
                "summaries: {} sent, {} sent before, {} refused, {} failed (of {} recipients)",
                report.sent, report.already_sent, report.refused, report.failed, report.recipients
            )),
            Err(error) => announce(format!("summaries: not sent: {error}")),
        }
    }
}

/// Email for `serve`: alert emails and summaries, when the recipients file exists
/// (announced either way).
pub(super) async fn wiring(
    data_dir: &Path,
    email: &LocalEmail,
    stores: &crate::stores::Stores,
    announce: &impl Fn(String),
) -> Result<Option<(okr_consumers::alerts::EmailAlerts, Summaries)>, LocalError> {
    let Some(recipients) = recipients(data_dir).await? else {
        announce(format!(
            "email: off (write {} to send summaries and alert emails)",
            data_dir.join(RECIPIENTS_FILE).display()
        ));
        return Ok(None);
    };
    let (mailer, line) = mailer(data_dir, email)?;
    let count = recipients
        .current()
        .await
        .map(|r| r.listed.len())
        .unwrap_or(0);
    announce(format!("email: {count} recipient(s), sent {line}"));
    let summaries = self::summaries(
        stores.progress.clone(),
        stores.directory.clone(),
        stores.idempotency.clone(),
        recipients.clone(),
        mailer.clone(),
        email,
    );
    Ok(Some((
        okr_consumers::alerts::EmailAlerts { mailer, recipients },
        summaries,
    )))
}
