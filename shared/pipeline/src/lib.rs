//! The pipeline's ports and policies: the queue, the claim and state stores, the
//! secrets cache, metrics, the retry schedule, the circuit breaker, the batch consumer
//! skeleton and the one HTTP classifier every outbound send goes through. Most ports have
//! a memory adapter here; the AWS adapters are in `okr-aws`, the local ones in
//! `okr-local`.

pub mod batch;
pub mod breaker;
pub mod config;
pub mod idempotency;
pub mod journal;
pub mod metrics;
pub mod outbound;
pub mod queue;
pub mod retry;
pub mod secrets;
pub mod telemetry;
pub mod trace;
