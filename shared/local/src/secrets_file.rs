//! `<data-dir>/secrets.json`: the signing secrets of local mode, in the same format as
//! the Secrets Manager secret, created with random secrets on first run.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use okr_core::Source;
use okr_core::providers::provider;
use okr_pipeline::secrets::{SecretStore, SecretsError, SigningSecrets};

/// Reads the secrets file on every fetch (the cache in front of it keeps that rare), so
/// an edit is picked up.
pub struct FileSecretStore {
    path: PathBuf,
}

impl FileSecretStore {
    /// The store at `path`; the file is created with random secrets when missing.
    /// Returns whether it was created.
    pub fn open_or_create(path: &Path) -> std::io::Result<(Self, bool)> {
        let created = !path.exists();
        if created {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // A random secret for each provider, in its own format.
            let document: serde_json::Map<String, serde_json::Value> = Source::ALL
                .into_iter()
                .map(|source| {
                    let secret = provider(source).new_secret(rand::random());
                    (source.as_str().to_owned(), secret.into())
                })
                .collect();
            let text = serde_json::to_string_pretty(&document).map_err(std::io::Error::other)?;
            write_private(path, text.as_bytes())?;
        }
        Ok((
            FileSecretStore {
                path: path.to_owned(),
            },
            created,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[async_trait]
impl SecretStore for FileSecretStore {
    async fn fetch(&self) -> Result<SigningSecrets, SecretsError> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| SecretsError::Unavailable(Box::new(e)))?;
        <SigningSecrets as okr_pipeline::secrets::FromSecret>::from_secret(&text)
    }
}
