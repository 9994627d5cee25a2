//! Email on one machine: through an SMTP server (`lettre`), or, without one, as `.eml`
//! files in an outbox directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Email, Mailer, refused};
use crate::outbound::{DeliveryError, Service};

/// The sender when none is given (`OKR_EMAIL_FROM`).
pub const DEFAULT_FROM: &str = "okr-webhooks@localhost";
/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// `email` as a MIME message from `from`: multipart/alternative, text then HTML. An
/// address that is not one is a refusal (naming no address).
pub fn message(from: &Mailbox, email: &Email) -> Result<Message, DeliveryError> {
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|_| refused(email, 0, "not a valid email address"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
        .map_err(|e| refused(email, 0, &e.to_string()))
}

/// The sender's address, checked.
pub fn sender(from: &str) -> Result<Mailbox, String> {
    from.parse()
        .map_err(|_| format!("the sender {from:?} is not an email address"))
}

/// An SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// The server at `url` (`smtp://host:port`; `?tls=required` for STARTTLS,
    /// `smtps://` for TLS from the start), logging in with `credentials` (user,
    /// password) when given.
    pub fn new(
        url: &str,
        credentials: Option<(String, String)>,
        from: Mailbox,
    ) -> Result<Self, String> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("the SMTP URL is not usable: {e}"))?
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), DeliveryError> {
        let message = message(&self.from, email)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // 5xx: the server will not take it (the address, the size, the sender).
            Err(error) if error.is_permanent() => {
                let code = error.status().map_or(550, u16::from);
                Err(refused(email, code, &error.to_string()))
            }
            Err(error) => Err(DeliveryError::unavailable(
                Service::Email,
                super::redact(&error.to_string(), &email.to),
            )),
        }
    }
}

/// An outbox: each email a `.eml` file in `dir` (any mail client opens one).
pub struct Outbox {
    dir: PathBuf,
    from: Mailbox,
}

impl Outbox {
    /// Files in `dir` (made when first needed), from `from`.
    pub fn new(dir: &Path, from: Mailbox) -> Self {
        Outbox {
            dir: dir.to_owned(),
            from,
        }
    }

    /// Where the files go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, email: &Email) -> Result<(), DeliveryError> {
        let bytes = message(&self.from, email)?.formatted();
        let dir = self.dir.clone();
        let name = format!(
            "{}-{:08x}.eml",
            time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
            rand::random::<u32>()
        );
        let written = tokio::task::spawn_blocking(move || write_new(&dir, &name, &bytes)).await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(DeliveryError::unavailable(Service::Email, error)),
            Err(error) => Err(DeliveryError::unavailable(Service::Email, error)),
        }
    }
}

/// Write `bytes` to `dir/name` whole or not at all (a temporary file, synced, renamed).
fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(name))
}
