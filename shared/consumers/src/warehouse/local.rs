//! Objects in a local directory (local mode, tests).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::warehouse::{ObjectSink, SinkError};

/// Writes `<root>/<key>` atomically: to a hidden temporary file, synced, then renamed,
/// so a reader never sees half an object. The directory is synced after the rename, and
/// each directory created for it (a new `date=` partition) in its parent, so once `put`
/// returns (and the queue messages are deleted) the object survives a power loss.
#[derive(Debug, Clone)]
pub struct LocalSink {
    root: PathBuf,
}

impl LocalSink {
    /// A sink under `root` (created as needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSink { root: root.into() }
    }
}

#[async_trait]
impl ObjectSink for LocalSink {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), SinkError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| SinkError {
            key: key.to_owned(),
            source,
        };
        if key.split('/').any(|part| part.is_empty() || part == "..") {
            return Err(failed("the key is not a relative path".into()));
        }
        let path = self.root.join(key);
        let temp = path.with_file_name(format!(
            ".{}.{}-{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("object"),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let parent = path.parent().unwrap_or(Path::new("."));
            create_dirs_durably(parent)?;
            let written = (|| {
                let mut file = std::fs::File::create(&temp)?;
                file.write_all(&body)?;
                file.sync_all()?;
                std::fs::rename(&temp, &path)?;
                sync_dir(parent)
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&temp);
            }
            written
        })
        .await
        .map_err(|e| failed(Box::new(e)))?
        .map_err(|e| failed(Box::new(e)))
    }
}

/// Create `dir` and its missing ancestors, syncing each new one's parent so the new
/// entries are on disk.
fn create_dirs_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    create_dirs_durably(parent)?;
    match std::fs::create_dir(dir) {
        // Made here, or by another writer meanwhile, which may not have synced it yet.
        Ok(()) => sync_dir(parent),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => sync_dir(parent),
        Err(error) => Err(error),
    }
}

/// fsync a directory, so the entries created or renamed in it are durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
