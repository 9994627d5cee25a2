//! Opening a data directory's stores, and settling what a crashed run left in them.

use std::sync::Arc;

use crate::deliveries_sqlite::SqliteDeliveries;
use crate::directory_sqlite::SqliteDirectory;
use crate::paths::{LocalError, Paths, io};
use crate::progress_sqlite::SqliteProgressStore;
use crate::secrets_file::FileSecretStore;
use crate::sqlite_queue::SqliteQueue;
use crate::sqlite_store::SqliteIdempotencyStore;
use okr_consumers::slack::DEFAULT_DEDUP_WINDOW;
use okr_core::endpoints::Endpoints;

/// The stores of one data directory.
pub(super) struct Stores {
    pub secrets: Arc<FileSecretStore>,
    pub queue: Arc<SqliteQueue>,
    pub idempotency: Arc<SqliteIdempotencyStore>,
    pub progress: Arc<SqliteProgressStore>,
    pub directory: Arc<SqliteDirectory>,
    /// The delivery log, and the journal of each event's steps.
    pub deliveries: Arc<SqliteDeliveries>,
}

/// Open (or create) the secrets, the queues and the idempotency records under `paths`,
/// and settle a crashed run's leftovers: messages that were in flight are handled again,
/// claims whose side effect had not started are dropped, and those that were sending are
/// presumed done (and named, for the operator to check).
pub(super) async fn open(
    paths: &Paths,
    endpoints: &Endpoints,
    announce: &impl Fn(String),
) -> Result<Stores, LocalError> {
    let existed = paths.secrets.exists();
    let (secrets, added) = FileSecretStore::open_or_create(&paths.secrets, endpoints)
        .map_err(|e| io("cannot create the secrets file", &paths.secrets, e))?;
    let note = match (existed, added.is_empty()) {
        (false, _) => " (created with random secrets)".to_owned(),
        (true, false) => format!(
            " (random secrets written for {})",
            added
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (true, true) => String::new(),
    };
    announce(format!(
        "signing secrets: {}{note}",
        secrets.path().display()
    ));

    let cannot_open = |e| io("cannot open the queues", &paths.queues, e);
    let queue = Arc::new(SqliteQueue::open(&paths.queues).map_err(cannot_open)?);
    let recovered = queue.recover_in_flight().await.map_err(cannot_open)?;
    if recovered > 0 {
        announce(format!(
            "{recovered} message(s) were in flight when the last run stopped; handling them again"
        ));
    }

    let cannot_open = |e| io("cannot open the idempotency store", &paths.idempotency, e);
    let idempotency = SqliteIdempotencyStore::open(&paths.idempotency).map_err(cannot_open)?;
    let (dropped, presumed) = idempotency
        .recover_after_crash(DEFAULT_DEDUP_WINDOW)
        .await
        .map_err(cannot_open)?;
    if dropped + presumed.len() > 0 {
        announce(format!(
            "the last run stopped with {dropped} post(s) not started (they will be sent) and {} in flight (presumed sent, so none goes out twice)",
            presumed.len()
        ));
    }
    for key in &presumed {
        // `slack:<event id>` or `alert:<destination>:event:<event id>:<rule>`: ids only.
        announce(format!(
            "presumed sent: {key} (check the channel; the event is in the warehouse)"
        ));
    }
    let progress = SqliteProgressStore::open(&paths.progress)
        .map_err(|e| io("cannot open the progress read model", &paths.progress, e))?;
    let directory = SqliteDirectory::open(&paths.directory)
        .map_err(|e| io("cannot open the directory", &paths.directory, e))?;
    let deliveries = SqliteDeliveries::open(
        &paths.deliveries,
        okr_consumers::deliveries::DEFAULT_KEEP,
        okr_consumers::deliveries::DEFAULT_MAX_DELIVERIES,
    )
    .map_err(|e| {
        LocalError::Config(format!(
            "cannot open {}: {}",
            paths.deliveries.display(),
            okr_core::error_chain(&e)
        ))
    })?;
    Ok(Stores {
        secrets: Arc::new(secrets),
        queue,
        idempotency: Arc::new(idempotency),
        progress: Arc::new(progress),
        directory: Arc::new(directory),
        deliveries: Arc::new(deliveries),
    })
}
