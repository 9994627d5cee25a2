//! `GET /healthz`: whether `serve` can accept webhooks (its queues can be written), and
//! the state of every destination's circuit breaker.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::sqlite_queue::SqliteQueue;
use okr_pipeline::breaker::Breaker;

/// The longest the check waits for the queues' write lock.
const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// What `/healthz` looks at.
pub(super) struct Health {
    pub queue: Arc<SqliteQueue>,
    pub breakers: Vec<Arc<Breaker>>,
}

impl Health {
    /// 200 when the queues can be written (`status` `ok`, or `degraded` while a
    /// destination's breaker is open: webhooks are still accepted, and wait in the
    /// queues); 503 when they cannot, since a webhook would then be refused.
    pub(super) async fn check(&self) -> (StatusCode, String) {
        let writable = self.queue.check_writable(QUEUE_WAIT).await;
        let destinations: Vec<_> = self.breakers.iter().map(|b| b.status()).collect();
        let queues = match &writable {
            Ok(()) => json!({"writable": true}),
            Err(error) => json!({"writable": false, "error": okr_core::error_chain(error)}),
        };
        let (status, word) = match writable {
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Ok(()) if destinations.iter().any(|d| d.state != "closed") => {
                (StatusCode::OK, "degraded")
            }
            Ok(()) => (StatusCode::OK, "ok"),
        };
        let body = json!({"status": word, "queues": queues, "destinations": destinations});
        (status, body.to_string())
    }
}
