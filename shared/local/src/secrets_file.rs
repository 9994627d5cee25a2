//! `<data-dir>/secrets.json`: the signing secrets of local mode, keyed by endpoint
//! name, in the same format as the Secrets Manager secret; and `<data-dir>/endpoints.json`,
//! the endpoints document. `serve` writes a random secret for each endpoint that has
//! none (except those whose secret a handshake hands over), and keeps a handshake's
//! secret here.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use okr_core::Source;
use okr_core::endpoints::Endpoints;
use okr_core::signing::{SigningSecret, has_secret};
use okr_pipeline::secrets::{
    Adopted, FromSecret, SecretStore, SecretWriter, SecretsError, SigningSecrets,
};

/// Reads the secrets file on every fetch (the cache in front of it keeps that rare), so
/// an edit is picked up.
pub struct FileSecretStore {
    path: PathBuf,
    /// One writer at a time within this process (the data directory's lock keeps other
    /// processes out).
    writing: Mutex<()>,
}

impl FileSecretStore {
    /// The store at `path`, with a random secret written for each of `endpoints` that
    /// has none (the file is created when missing). Returns the names given one.
    pub fn open_or_create(
        path: &Path,
        endpoints: &Endpoints,
    ) -> std::io::Result<(Self, Vec<Source>)> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _writing = lock_for_writing(path)?;
        let mut document = match std::fs::read_to_string(path) {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => map,
                // Left as it is: reading it reports what is wrong.
                _ => {
                    return Ok((FileSecretStore::at(path), Vec::new()));
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(error) => return Err(error),
        };
        let mut added = Vec::new();
        for endpoint in endpoints.iter() {
            let name = endpoint.name();
            let provider = endpoint.provider();
            if document.contains_key(name.as_str()) || provider.handshake_header().is_some() {
                continue;
            }
            let secret = provider.new_secret(rand::random());
            document.insert(name.as_str().to_owned(), secret.into());
            added.push(name);
        }
        if !added.is_empty() {
            write_document(path, &document)?;
        }
        Ok((FileSecretStore::at(path), added))
    }

    fn at(path: &Path) -> Self {
        FileSecretStore {
            path: path.to_owned(),
            writing: Mutex::new(()),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove `endpoint`'s secret, so its next handshake is accepted (`endpoints
    /// rearm`). Returns whether it had one.
    pub fn forget(path: &Path, endpoint: Source) -> std::io::Result<bool> {
        let _writing = lock_for_writing(path)?;
        let mut document = read_document(path)?;
        let had = document.remove(endpoint.as_str()).is_some();
        if had {
            write_document(path, &document)?;
        }
        Ok(had)
    }
}

fn read_document(path: &Path) -> std::io::Result<Map<String, Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(std::io::Error::other(
                "the secrets file is not a JSON object of endpoint names",
            )),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(error) => Err(error),
    }
}

/// An exclusive lock on `<path>.lock`, held while a document is read, changed and
/// written: `serve`'s handshakes and the `endpoints` commands (other processes) take
/// turns, so no write is lost. Released when the file is dropped.
pub(crate) fn lock_for_writing(path: &Path) -> std::io::Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(name))?;
    file.lock()?;
    Ok(file)
}

/// Write the document whole: to a private temporary file of this writer's own, synced,
/// then renamed over the old one, so a crash leaves the old file or the new, never half
/// of one. Callers hold [`lock_for_writing`].
pub(crate) fn write_document(path: &Path, document: &Map<String, Value>) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(document).map_err(std::io::Error::other)?;
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".{}-{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let temporary = PathBuf::from(name);
    write_private(&temporary, text.as_bytes())?;
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
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
        <SigningSecrets as FromSecret>::from_secret(&text)
    }
}

#[async_trait]
impl SecretWriter for FileSecretStore {
    async fn adopt(
        &self,
        endpoint: Source,
        secret: &SigningSecret,
    ) -> Result<Adopted, SecretsError> {
        let _writing = self.writing.lock().await;
        let path = self.path.clone();
        let secret = secret.expose().to_owned();
        let adopted = tokio::task::spawn_blocking(move || {
            let _writing = lock_for_writing(&path)?;
            let mut document = read_document(&path)?;
            if has_secret(document.get(endpoint.as_str())) {
                return Ok(Adopted::AlreadySet);
            }
            document.insert(endpoint.as_str().to_owned(), Value::String(secret));
            write_document(&path, &document)?;
            Ok::<_, std::io::Error>(Adopted::Kept)
        })
        .await
        .map_err(|e| SecretsError::Unavailable(Box::new(e)))?;
        adopted.map_err(|e| SecretsError::Unavailable(Box::new(e)))
    }
}

/// `<data-dir>/endpoints.json`, read on every fetch (behind a cache), so an edit takes
/// effect without a restart; a missing file is the four built-in endpoints.
pub struct EndpointsFile {
    path: PathBuf,
}

impl EndpointsFile {
    /// The document at `path`.
    pub fn new(path: &Path) -> Self {
        EndpointsFile {
            path: path.to_owned(),
        }
    }

    /// Add the endpoint `name` with `entry` (`{"preset": ...}` or `{"scheme": ...,
    /// "mapping": ...}`): the document is checked whole before it is written (in one
    /// rename), so an entry that does not validate never takes effect. An existing name
    /// is refused.
    pub fn add(&self, name: &str, entry: Value) -> Result<Endpoints, String> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let _writing = lock_for_writing(&self.path)
            .map_err(|e| format!("cannot lock {}: {e}", self.path.display()))?;
        let mut document = match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("{} is not JSON: {e}", self.path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                serde_json::json!({"endpoints": {}})
            }
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        let endpoints = document
            .get_mut("endpoints")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| format!("{} has no \"endpoints\" object", self.path.display()))?;
        if endpoints.contains_key(name) {
            return Err(format!(
                "{} already has an endpoint named {name}",
                self.path.display()
            ));
        }
        endpoints.insert(name.to_owned(), entry);
        let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let parsed = Endpoints::parse(&text).map_err(|e| e.to_string())?;
        let map = document.as_object().cloned().unwrap_or_default();
        write_document(&self.path, &map)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        Ok(parsed)
    }

    /// Read it now: the endpoints, or why the document is refused (the endpoint and
    /// the field, never a secret).
    pub fn load(&self) -> Result<Endpoints, String> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Endpoints::parse(&text).map_err(|error| error.to_string()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Endpoints::builtin()),
            Err(error) => Err(error.to_string()),
        }
    }
}

#[async_trait]
impl SecretStore<Endpoints> for EndpointsFile {
    async fn fetch(&self) -> Result<Endpoints, SecretsError> {
        self.load().map_err(SecretsError::Invalid)
    }
}
