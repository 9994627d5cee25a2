//! What the pipeline does with an event: ingest (the HTTP contract of
//! `POST /webhooks/{source}`), and the consumers: Slack, the warehouse, progress alerts,
//! the progress read model, the subscriptions, email summaries, and replay from the
//! archive. Handlers are
//! plain async functions over the ports of `okr-pipeline`, tested without AWS.

pub mod alerts;
pub mod deliveries;
pub mod directory;
pub mod email;
pub mod ingest;
pub mod progress;
pub mod replay;
pub mod slack;
pub mod stalled;
pub mod subscriptions;
pub mod warehouse;
