//! Local mode (`okr-webhooks serve`): the whole pipeline in one process, with the same
//! ingest handler and HTTP contract as the Lambda, durable SQLite queues with
//! dead-letter queues, and the same consumer handlers.
//!
//! The data directory holds `secrets.json` (the signing secrets), `queues.sqlite`,
//! `idempotency.sqlite`, `warehouse/` (the events, and the directory's daily snapshots),
//! `progress.sqlite` (the read model the dashboard shows), `directory.sqlite` (the
//! people HR events describe), `deliveries.sqlite` (every request to `/webhooks/*`, for
//! the delivery inspector), `serve.lock` (one server per directory), and for email
//! `email-recipients.json` (written by the user) and `outbox/`.

pub mod config;
pub mod consumer;
pub mod dashboard;
pub mod deliveries_sqlite;
pub mod directory_sqlite;
pub mod email;
mod health;
mod inspector;
mod lock;
mod paths;
pub mod people;
pub mod print;
pub mod progress_sqlite;
mod router;
pub mod secrets_file;
mod serve;
pub mod smtp;
pub mod sqlite_queue;
pub mod sqlite_store;
pub mod stalled;
mod stores;
pub mod subscriptions_file;
mod wiring;

pub use paths::{LocalError, Paths};
pub use serve::serve;
