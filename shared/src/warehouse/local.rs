//! Objects in a local directory (local mode, tests).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{ObjectSink, SinkError};

/// Writes `<root>/<key>` atomically: to a hidden temporary file, synced, then renamed,
/// so a reader never sees half an object.
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
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let written = (|| {
                let mut file = std::fs::File::create(&temp)?;
                file.write_all(&body)?;
                file.sync_all()?;
                std::fs::rename(&temp, &path)
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
