//! Dead-letter queues behind one trait: list (and show) the messages without taking
//! them, and move them back to their queue. `serve`'s SQLite queues and SQS dead-letter
//! queues implement it, so the `dlq` command has one code path and one output.

use async_trait::async_trait;

/// At most this many messages of an SQS dead-letter queue are listed (it keeps 14 days
/// of them, and each look is a receive); a local one lists them all.
pub const LIST_LIMIT: usize = 100;

/// A message moved to a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message id.
    pub message_id: String,
    /// `Event::id`.
    pub event_id: String,
    /// `Event::event_type`.
    pub event_type: String,
    /// How often it was received before it was moved.
    pub receive_count: u32,
    /// The event's JSON.
    pub body: String,
}

/// What a dead-letter queue holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// How many messages it holds (approximate on SQS).
    pub total: u64,
    /// Them, or on SQS up to [`LIST_LIMIT`] of them; oldest first where the queue can tell.
    pub letters: Vec<DeadLetter>,
}

/// What a finished redrive moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// Messages moved.
    pub moved: u64,
    /// The queue(s) they went back to.
    pub to: Vec<String>,
}

/// Something the queue refused or that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// A request to the queue failed.
    #[error("{action} failed")]
    Failed {
        /// The request.
        action: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The URL names a queue no queue dead-letters into.
    #[error(
        "{0} is not the dead-letter queue of any queue: give the dead-letter queue's URL (the template's *DeadLetterQueueUrl outputs)"
    )]
    NotADeadLetterQueue(String),
    /// Listed messages SQS would not make visible again at once.
    #[error(
        "{count} listed message(s) could not be made visible again; they reappear within {seconds} s"
    )]
    StillHidden {
        /// How many.
        count: usize,
        /// When they reappear by themselves.
        seconds: i32,
    },
    /// The move task stopped without moving everything.
    #[error("the move task ended {status}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    MoveTask {
        /// `FAILED` or `CANCELLED`.
        status: String,
        /// SQS's `FailureReason`.
        reason: Option<String>,
    },
}

/// A dead-letter queue.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Its name in output: the consumer's name locally, the queue's name on SQS.
    fn name(&self) -> &str;
    /// How many messages it holds, and them (on SQS up to [`LIST_LIMIT`]), left in the
    /// queue.
    async fn list(&self) -> Result<Listing, DeadLetterError>;
    /// Move every message back to the queue it came from; `progress` hears the count
    /// moved so far while a long move runs.
    async fn redrive(
        &self,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Redriven, DeadLetterError>;
}
