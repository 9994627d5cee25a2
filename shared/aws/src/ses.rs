//! Email on AWS: Amazon SES v2 `SendEmail`, a simple (text and HTML) message from a
//! verified sender.

use async_trait::async_trait;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use okr_pipeline::outbound::mail::{Email, Mailer, refused};
use okr_pipeline::outbound::{DeliveryError, Service};

/// SES v2, sending from `from` (an address of a verified identity).
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesMailer {
    /// Send with `client` from `from`. Throttling is the client's to pace (give it the
    /// SDK's adaptive retry mode); what is still throttled is a [`DeliveryError::RateLimited`].
    pub fn new(client: aws_sdk_sesv2::Client, from: &str) -> Self {
        SesMailer {
            client,
            from: from.to_owned(),
        }
    }
}

fn content(data: &str) -> Result<Content, DeliveryError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| DeliveryError::unavailable(Service::Email, e))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<(), DeliveryError> {
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(
                Body::builder()
                    .text(content(&email.text)?)
                    .html(content(&email.html)?)
                    .build(),
            )
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(error) => Err(classify(email, &self.from, error)),
        }
    }
}

/// SES's answer as a delivery error, the call's error told apart by [`verdict`].
fn classify(email: &Email, from: &str, error: SdkError<SendEmailError>) -> DeliveryError {
    let SdkError::ServiceError(service) = &error else {
        return DeliveryError::unavailable(Service::Email, okr_core::error_chain(&error));
    };
    let err = service.err();
    let kind = match err {
        SendEmailError::TooManyRequestsException(_) => Kind::Throttled,
        SendEmailError::MessageRejected(_) => Kind::Rejected,
        SendEmailError::LimitExceededException(_)
        | SendEmailError::AccountSuspendedException(_)
        | SendEmailError::SendingPausedException(_)
        | SendEmailError::MailFromDomainNotVerifiedException(_)
        | SendEmailError::NotFoundException(_) => Kind::Account,
        _ => Kind::Other,
    };
    let answer = Answer {
        status: service.raw().status().as_u16(),
        code: err.code().unwrap_or("unknown"),
        message: err.message().unwrap_or("no reason given"),
        kind,
    };
    let reason = format!("{}: {}", answer.code, answer.message);
    match verdict(&answer, &email.to, from) {
        Verdict::Throttled => DeliveryError::RateLimited {
            service: Service::Email,
            retry_after: None,
        },
        Verdict::Unavailable => DeliveryError::unavailable(
            Service::Email,
            okr_pipeline::outbound::mail::redact(&reason, &email.to),
        ),
        Verdict::Refused => refused(email, answer.status, &reason),
    }
}

/// What kind of SES error it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Throttled,
    Rejected,
    /// About the sender or the account, never one recipient.
    Account,
    Other,
}

/// SES's error answer.
#[derive(Debug)]
struct Answer<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
    kind: Kind,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Throttled,
    Unavailable,
    Refused,
}

/// Throttling passes (and is waited out). What is not about this recipient (the sender
/// or the account: an unverified sender, a suspended or paused account, access denied,
/// a quota, a 5xx) makes SES unavailable for every recipient: retried and alarmed, never
/// skipped as one address's fault. A rejection is the address's only when it names the
/// recipient and not the sender (in the sandbox SES lists every unverified identity).
/// Any other refusal (a request SES will not take) is the address's.
fn verdict(answer: &Answer<'_>, to: &str, from: &str) -> Verdict {
    let names = |address: &str| {
        okr_pipeline::outbound::mail::redact(answer.message, address) != answer.message
    };
    if answer.kind == Kind::Throttled
        || matches!(answer.code, "Throttling" | "ThrottlingException")
        || answer.status == 429
    {
        Verdict::Throttled
    } else if answer.status >= 500
        || matches!(answer.status, 401 | 403)
        || answer.kind == Kind::Account
        || (answer.kind == Kind::Rejected && (names(from) || !names(to)))
    {
        Verdict::Unavailable
    } else {
        Verdict::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::{Answer, Kind, Verdict, verdict};

    fn judged(status: u16, code: &str, message: &str, kind: Kind) -> Verdict {
        let answer = Answer {
            status,
            code,
            message,
            kind,
        };
        verdict(&answer, "Lead@Example.com", "okr@example.com")
    }

    #[test]
    fn only_what_names_the_recipient_alone_is_the_addresss_fault() {
        let unverified = "Email address is not verified. The following identities failed the check in region US-EAST-1:";
        // The sandbox, an unverified recipient: that address is skipped.
        let recipient = format!("{unverified} lead@example.com");
        assert_eq!(
            judged(400, "MessageRejected", &recipient, Kind::Rejected),
            Verdict::Refused
        );
        // The sender too, or the sender alone: every send fails alike.
        let both = format!("{unverified} okr@example.com, lead@example.com");
        assert_eq!(
            judged(400, "MessageRejected", &both, Kind::Rejected),
            Verdict::Unavailable
        );
        let sender = format!("{unverified} okr@example.com");
        assert_eq!(
            judged(400, "MessageRejected", &sender, Kind::Rejected),
            Verdict::Unavailable
        );
        assert_eq!(
            judged(400, "AccountSuspendedException", "suspended", Kind::Account),
            Verdict::Unavailable
        );
        assert_eq!(
            judged(403, "AccessDeniedException", "not authorized", Kind::Other),
            Verdict::Unavailable
        );
        assert_eq!(
            judged(503, "ServiceUnavailable", "try later", Kind::Other),
            Verdict::Unavailable
        );
        assert_eq!(
            judged(400, "InvalidParameterValue", "Missing domain", Kind::Other),
            Verdict::Refused
        );
        assert_eq!(
            judged(
                429,
                "TooManyRequestsException",
                "slow down",
                Kind::Throttled
            ),
            Verdict::Throttled
        );
        assert_eq!(
            judged(
                400,
                "Throttling",
                "Maximum sending rate exceeded.",
                Kind::Other
            ),
            Verdict::Throttled
        );
    }
}
