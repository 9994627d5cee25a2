//! A replay's checkpoint: its plan and how far it got, in
//! `<data-dir>/replays/<name>.json`, written after every send, so `--resume <name>`
//! goes on after an interruption without sending again what was sent.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::replay::Plan;

/// A place in the archive: everything up to and including `line` (1 for the first;
/// `usize::MAX` for the whole object) of the object `key`, and every object before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The object.
    pub key: String,
    /// Its last line done.
    pub line: usize,
}

/// What a checkpoint file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The replay.
    pub plan: Plan,
    /// How far it got; `None` before the first send.
    pub at: Option<Position>,
    /// Events sent, over every run of it.
    pub sent: u64,
    /// It went through the whole window.
    pub finished: bool,
}

/// The checkpoint file of one replay.
#[derive(Debug, Clone)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// The checkpoint of the replay `name` under `data_dir`.
    pub fn new(data_dir: &Path, name: &str) -> Self {
        CheckpointFile {
            path: data_dir.join("replays").join(format!("{name}.json")),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint, if the replay ran before.
    pub fn load(&self) -> std::io::Result<Option<Checkpoint>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Replace the checkpoint, whole or not at all (a temporary file, renamed). Not
    /// synced: a checkpoint lost to a power cut only means sending again what the
    /// queues and consumers recognise by the replay's name.
    pub fn save(&self, checkpoint: &Checkpoint) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let temp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&serde_json::to_vec_pretty(checkpoint).map_err(std::io::Error::other)?)?;
        std::fs::rename(&temp, &self.path)
    }
}
