//! The dashboard's live feed: the store polled for records written since the last
//! look, each new version broadcast once (as JSON) to the pages listening.
//!
//! Polling rather than a push from the consumer: the same loop serves `serve` (SQLite,
//! every 200 ms: an indexed read of nothing, most of the time) and the `dashboard`
//! command on an AWS deployment (DynamoDB's write-time index, every 2 s), where the
//! projection runs in a Lambda the dashboard cannot hear from.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::directory::{Directory, DirectoryStore};
use crate::progress::query::Row;
use crate::progress::{ProgressStore, Tracked};

/// Messages a slow page may fall behind by before it is told to reload.
const BACKLOG: usize = 4096;

/// The feed's sending side; pages subscribe to it.
#[derive(Clone)]
pub struct Feed {
    sender: broadcast::Sender<Arc<str>>,
    stop: watch::Receiver<bool>,
}

impl Feed {
    /// A receiver of every record broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.sender.subscribe()
    }

    /// Turns true when the server stops: the pages' streams end then, so the server
    /// is not kept waiting for their connections.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }
}

/// Start polling `store` every `every` until `stop` turns true; each record goes out
/// as the API gives it ([`Row`]), its owner looked up in `directory` (read again when
/// there is news).
pub fn spawn(
    store: Arc<dyn ProgressStore>,
    directory: Option<Arc<dyn DirectoryStore>>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Feed {
    let (sender, _) = broadcast::channel(BACKLOG);
    let feed = Feed {
        sender: sender.clone(),
        stop: stop.clone(),
    };
    tokio::spawn(async move {
        let mut known: HashMap<String, u64> = HashMap::new();
        let mut cursor = 0;
        let mut first = true;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let (records, next) = match store.changed_since(cursor).await {
                Ok(changed) => changed,
                Err(error) => {
                    tracing::warn!(error = %okr_core::error_chain(&error), "could not read the read model's changes");
                    continue;
                }
            };
            cursor = next;
            let news: Vec<Tracked> = records
                .into_iter()
                .filter(|record| is_new(&mut known, record) && !first)
                .collect();
            let people = match (&directory, news.is_empty()) {
                (Some(directory), false) => {
                    crate::directory::load(directory.as_ref())
                        .await
                        .unwrap_or_else(|error| {
                            tracing::warn!(error = %okr_core::error_chain(&error), "could not read the directory");
                            Directory::default()
                        })
                }
                _ => Directory::default(),
            };
            for record in news {
                if let Ok(json) = serde_json::to_string(&Row::of(record, &people)) {
                    // No page listening is not an error.
                    let _ = sender.send(json.into());
                }
            }
            // What stood at start is what the pages load; only later writes are news.
            first = false;
        }
    });
    feed
}

/// Whether `record` is a version not seen yet (and remember it).
fn is_new(known: &mut HashMap<String, u64>, record: &Tracked) -> bool {
    let key = record.key();
    match known.get(&key) {
        Some(&version) if version >= record.version => false,
        _ => {
            known.insert(key, record.version);
            true
        }
    }
}
