//! Email: weekly summaries for managers (built from the progress read model) and alert
//! emails, through Amazon SES on AWS and SMTP (or an outbox of `.eml` files) on one
//! machine.
//!
//! Who gets what is one JSON document ([`recipients`]): an address, a scope, and whether
//! it gets summaries and alerts. Addresses are personal data: logs and errors name a
//! recipient by [`recipients::Recipient::id`], a hash, and count them, never print them.
//!
//! A `Mailer` (`okr_pipeline::outbound::mail`) sends one `Email` to one address; the
//! adapters are `okr_aws::ses::SesMailer`, `okr_local::smtp::SmtpMailer` and
//! `okr_local::smtp::Outbox`. What is sent once is the idempotency
//! guard's job, as for every other side effect ([`send`]).

pub mod baseline;
pub mod heard;
pub mod recipients;
pub mod render;
pub mod schedule;
pub mod send;
pub mod summary;
