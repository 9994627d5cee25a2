//! Email: weekly summaries for managers (built from the progress read model) and alert
//! emails, through Amazon SES on AWS and SMTP (or an outbox of `.eml` files) on one
//! machine.
//!
//! Who gets what is one JSON document ([`recipients`]): an address, a scope, and whether
//! it gets summaries and alerts. Addresses are personal data: logs and errors name a
//! recipient by [`recipients::Recipient::id`], a hash, and count them, never print them.
//!
//! A [`Mailer`] sends one [`Email`] to one address; the adapters are [`ses::SesMailer`],
//! [`smtp::SmtpMailer`] and [`smtp::Outbox`]. What is sent once is the idempotency
//! guard's job, as for every other side effect ([`send`]).

pub mod alert;
pub mod baseline;
pub mod recipients;
pub mod render;
pub mod schedule;
pub mod send;
pub mod ses;
pub mod smtp;
pub mod summary;

use async_trait::async_trait;

use crate::outbound::{DeliveryError, Service};

/// One message to one recipient: both parts of a multipart/alternative email.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part: inline styles only, no remote resources.
    pub html: String,
}

/// Sends one email. A refusal (the address, the sender, the content) is
/// [`DeliveryError::Refused`]; throttling [`DeliveryError::RateLimited`]; anything
/// else [`DeliveryError::Unavailable`]. Error texts never carry the address.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Send `email`.
    async fn send(&self, email: &Email) -> Result<(), DeliveryError>;
}

/// A refusal of `email`, with the service's `reason` stripped of the address (SES names
/// it in some of its reasons).
pub(crate) fn refused(email: &Email, code: u16, reason: &str) -> DeliveryError {
    DeliveryError::Refused {
        service: Service::Email,
        status: code,
        reason: redact(reason, &email.to),
    }
}

/// `text` with every occurrence of `address` (in any case) replaced.
pub(crate) fn redact(text: &str, address: &str) -> String {
    if address.is_empty() {
        return text.to_owned();
    }
    let lower = text.to_lowercase();
    let needle = address.to_lowercase();
    if lower.len() != text.len() {
        // Case folding changed byte offsets: fall back to an exact match.
        return text.replace(address, "<recipient>");
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower.match_indices(&needle) {
        out.push_str(&text[rest..at]);
        out.push_str("<recipient>");
        rest = at + needle.len();
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_removes_the_address_in_any_case() {
        assert_eq!(
            redact(
                "Email address is not verified: Lead@Example.com.",
                "lead@example.com"
            ),
            "Email address is not verified: <recipient>."
        );
        assert_eq!(redact("no address here", "a@b.c"), "no address here");
    }
}
