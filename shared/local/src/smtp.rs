//! Email on one machine: through an SMTP server (`lettre`), or, without one, as `.eml`
//! files in an outbox directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use okr_consumers::warehouse::ObjectSink;
use okr_consumers::warehouse::local::LocalSink;
use okr_pipeline::outbound::mail::{Email, Mailer, refused};
use okr_pipeline::outbound::{DeliveryError, Service};

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
        if credentials.is_some() && !encrypted_or_loopback(url) {
            return Err(
                "OKR_SMTP_USERNAME and OKR_SMTP_PASSWORD would cross the network in clear: give an smtps:// URL, or add ?tls=required (STARTTLS)".to_owned(),
            );
        }
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
                okr_pipeline::outbound::mail::redact(&error.to_string(), &email.to),
            )),
        }
    }
}

/// Whether `url` encrypts (TLS from the start, or STARTTLS required), or stays on this
/// machine.
fn encrypted_or_loopback(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    scheme.eq_ignore_ascii_case("smtps") || url.contains("tls=required") || loopback
}

/// An outbox: each email a `.eml` file in `dir` (any mail client opens one), written
/// whole and durably by the warehouse's local sink.
pub struct Outbox {
    dir: PathBuf,
    files: LocalSink,
    from: Mailbox,
}

impl Outbox {
    /// Files in `dir` (made when first needed), from `from`.
    pub fn new(dir: &Path, from: Mailbox) -> Self {
        Outbox {
            dir: dir.to_owned(),
            files: LocalSink::new(dir),
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
        let name = format!(
            "{}-{:08x}.eml",
            time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
            rand::random::<u32>()
        );
        self.files
            .put(&name, bytes)
            .await
            .map_err(|error| DeliveryError::unavailable(Service::Email, error))
    }
}

#[cfg(test)]
mod tests {
    use super::{SmtpMailer, encrypted_or_loopback, sender};

    #[test]
    fn credentials_go_only_over_tls_or_to_this_machine() {
        for url in [
            "smtps://mail.example.com",
            "smtp://mail.example.com:587?tls=required",
            "smtp://127.0.0.1:2525",
            "smtp://localhost:25",
            "smtp://[::1]:25",
        ] {
            assert!(encrypted_or_loopback(url), "{url}");
        }
        for url in [
            "smtp://mail.example.com:587",
            "smtp://10.0.0.5:25?tls=opportunistic",
        ] {
            assert!(!encrypted_or_loopback(url), "{url}");
        }
        let from = sender("okr@example.com").unwrap();
        let login = Some(("okr".to_owned(), "hunter2".to_owned()));
        let refused = SmtpMailer::new("smtp://mail.example.com:587", login.clone(), from.clone());
        let message = refused.err().unwrap();
        assert!(
            message.contains("in clear") && !message.contains("hunter2"),
            "{message}"
        );
        assert!(SmtpMailer::new("smtp://mail.example.com:587?tls=required", login, from).is_ok());
    }
}
