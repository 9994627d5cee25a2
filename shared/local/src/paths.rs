//! The data directory's layout, and why local mode could not start.

use std::path::{Path, PathBuf};

/// Where local mode keeps things.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<data-dir>/secrets.json`.
    pub secrets: PathBuf,
    /// `<data-dir>/endpoints.json`: the endpoints document (optional).
    pub endpoints: PathBuf,
    /// `<data-dir>/queues.sqlite`.
    pub queues: PathBuf,
    /// `<data-dir>/idempotency.sqlite`.
    pub idempotency: PathBuf,
    /// `<data-dir>/warehouse`.
    pub warehouse: PathBuf,
    /// `<data-dir>/progress.sqlite`: the progress read model.
    pub progress: PathBuf,
    /// `<data-dir>/directory.sqlite`: the directory of people.
    pub directory: PathBuf,
    /// `<data-dir>/deliveries.sqlite`: the delivery log.
    pub deliveries: PathBuf,
    /// `<data-dir>/subscriptions.json`: who takes our events (their secrets beside it,
    /// in `subscription-secrets.json`).
    pub subscriptions: PathBuf,
}

impl Paths {
    /// The paths under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Paths {
            secrets: data_dir.join("secrets.json"),
            endpoints: data_dir.join("endpoints.json"),
            queues: data_dir.join("queues.sqlite"),
            idempotency: data_dir.join("idempotency.sqlite"),
            warehouse: data_dir.join("warehouse"),
            progress: data_dir.join("progress.sqlite"),
            directory: data_dir.join("directory.sqlite"),
            deliveries: data_dir.join("deliveries.sqlite"),
            subscriptions: data_dir.join("subscriptions.json"),
        }
    }
}

/// Why local mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The data directory or one of its files.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What was being opened.
        what: &'static str,
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A configured URL or key is not usable.
    #[error("{0}")]
    Config(String),
    /// Another `serve` holds the data directory.
    #[error(
        "the data directory {dir} is in use by another `okr-webhooks serve`{}: stop it, or give this one its own --data-dir",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        /// The data directory.
        dir: String,
        /// The holder's process id, when its lock file says.
        holder: Option<u32>,
    },
}

pub fn io(
    what: &'static str,
    path: &Path,
    source: impl std::error::Error + Send + Sync + 'static,
) -> LocalError {
    LocalError::Io {
        what,
        path: path.display().to_string(),
        source: Box::new(source),
    }
}
