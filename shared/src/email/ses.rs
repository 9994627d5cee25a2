//! Email on AWS: Amazon SES v2 `SendEmail`, a simple (text and HTML) message from a
//! verified sender.

use async_trait::async_trait;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use super::{Email, Mailer, refused};
use crate::outbound::{DeliveryError, Service};

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
            Err(error) => Err(classify(email, error)),
        }
    }
}

/// SES's answer as a delivery error. Throttling passes (and is waited out). What says
/// nothing about this recipient (the sender or the account: an unverified sender, a
/// suspended or paused account, access denied, a quota, a 5xx) makes SES unavailable
/// for every recipient: retried, and alarmed, never skipped as one address's fault.
/// The rest (the address refused, a request SES will not take) is a refusal, with
/// SES's code and reason.
fn classify(email: &Email, error: SdkError<SendEmailError>) -> DeliveryError {
    let SdkError::ServiceError(service) = &error else {
        return DeliveryError::unavailable(Service::Email, crate::error_chain(&error));
    };
    let status = service.raw().status().as_u16();
    let err = service.err();
    let code = err.code().unwrap_or("unknown");
    let message = err.message().unwrap_or("no reason given");
    let reason = format!("{code}: {message}");
    let throttled = matches!(err, SendEmailError::TooManyRequestsException(_))
        || matches!(code, "Throttling" | "ThrottlingException")
        || status == 429;
    let names_recipient = super::redact(message, &email.to) != message;
    let not_the_address = status >= 500
        || matches!(status, 401 | 403)
        || matches!(
            err,
            SendEmailError::LimitExceededException(_)
                | SendEmailError::AccountSuspendedException(_)
                | SendEmailError::SendingPausedException(_)
                | SendEmailError::MailFromDomainNotVerifiedException(_)
                | SendEmailError::NotFoundException(_)
        )
        || (matches!(err, SendEmailError::MessageRejected(_)) && !names_recipient);
    if throttled {
        DeliveryError::RateLimited {
            service: Service::Email,
            retry_after: None,
        }
    } else if not_the_address {
        DeliveryError::unavailable(Service::Email, super::redact(&reason, &email.to))
    } else {
        refused(email, status, &reason)
    }
}
