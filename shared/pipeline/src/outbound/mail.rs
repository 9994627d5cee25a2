//! Email out: the [`Mailer`] port that sends one [`Email`] to one address (SES on AWS,
//! SMTP or an outbox of `.eml` files on one machine), and the rules every mailer keeps:
//! an address never appears in an error or a log line.

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
pub fn refused(email: &Email, code: u16, reason: &str) -> DeliveryError {
    DeliveryError::Refused {
        service: Service::Email,
        status: code,
        reason: redact(reason, &email.to),
    }
}

/// `text` with every occurrence of `address` (in any case) replaced.
pub fn redact(text: &str, address: &str) -> String {
    let needle: Vec<char> = address.chars().flat_map(char::to_lowercase).collect();
    if needle.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match matched_len(rest, &needle) {
            Some(len) => {
                out.push_str("<recipient>");
                rest = &rest[len..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// How many bytes at the start of `text` spell `needle` (lower-cased), if they do.
fn matched_len(text: &str, needle: &[char]) -> Option<usize> {
    let mut wanted = needle.iter();
    let mut len = 0;
    for c in text.chars() {
        for lower in c.to_lowercase() {
            if wanted.next() != Some(&lower) {
                return None;
            }
        }
        len += c.len_utf8();
        if wanted.as_slice().is_empty() {
            return Some(len);
        }
    }
    None
}

/// Text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
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
        // Characters whose lower case is longer or shorter do not throw it off.
        assert_eq!(
            redact(
                "\u{130}x <\u{212a}elvin@example.com> ok",
                "kelvin@example.com"
            ),
            "\u{130}x <<recipient>> ok"
        );
        assert_eq!(redact("a@b.c a@b.c", "A@B.C"), "<recipient> <recipient>");
    }
}
