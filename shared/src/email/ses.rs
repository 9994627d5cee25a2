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

/// SES's answer as a delivery error: throttling and an exceeded quota pass, a 5xx is an
/// outage, any other refusal (a rejected message, an unverified address in the sandbox,
/// a suspended account) says SES's code and reason.
fn classify(email: &Email, error: SdkError<SendEmailError>) -> DeliveryError {
    let SdkError::ServiceError(service) = &error else {
        return DeliveryError::unavailable(Service::Email, crate::error_chain(&error));
    };
    let status = service.raw().status().as_u16();
    let err = service.err();
    let code = err.code().unwrap_or("unknown");
    let reason = format!("{code}: {}", err.message().unwrap_or("no reason given"));
    let throttled = matches!(err, SendEmailError::TooManyRequestsException(_))
        || matches!(code, "Throttling" | "ThrottlingException")
        || status == 429;
    if throttled {
        DeliveryError::RateLimited {
            service: Service::Email,
            retry_after: None,
        }
    } else if status >= 500 || matches!(err, SendEmailError::LimitExceededException(_)) {
        DeliveryError::unavailable(Service::Email, super::redact(&reason, &email.to))
    } else {
        refused(email, status, &reason)
    }
}
