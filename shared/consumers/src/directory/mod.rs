//! The directory: a read model of people, built from HR events (their `person`), that
//! says who owns a key result, who their team lead is and what department they are in.
//!
//! It keeps only [`Person`]'s fields, never the rest of an HR record. Each person is
//! one entry keyed by endpoint and the HR tool's id, its fields each set by the newest
//! event that carried them (so any order of arrival, a repeat or a rebuild by `replay`
//! gives the same entry). Beside people it keeps the links an operator made
//! (`okr-webhooks directory link`) and the erasures (`directory forget`): a hash of the
//! forgotten address and person, so a replay of their old events does not bring them
//! back and nothing of them is kept.
//!
//! The progress consumer feeds it from the progress queue; it lives in SQLite in
//! `serve`, in DynamoDB on AWS, behind [`DirectoryStore`].

mod view;

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use okr_core::event::Event;
use okr_core::person::{Person, email_key, name_key};
use okr_core::source::Source;

pub use view::{Directory, Lead, Resolution};

/// A directory store failed; the text names the store, never a person.
#[derive(Debug, thiserror::Error)]
#[error("directory store: {0}")]
pub struct DirectoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl DirectoryError {
    /// A failure described by `text`.
    pub fn new(text: impl Into<String>) -> Self {
        DirectoryError(text.into().into())
    }
}

/// One entry of the directory, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum Entry {
    /// A person.
    Person(Box<Record>),
    /// An owner (as a provider names them) linked by hand to a person.
    Link(Link),
    /// A forgotten person: hashes only.
    Erased(Erased),
}

impl Entry {
    /// The key it is stored under: `person#<endpoint>#<id>`, `link#<owner>`,
    /// `erased#<hash>`.
    pub fn key(&self) -> String {
        match self {
            Entry::Person(record) => record.key(),
            Entry::Link(link) => format!("link#{}", owner_key(&link.owner)),
            Entry::Erased(erased) => format!("erased#{}", erased.hash),
        }
    }
}

/// A person and which event set each of their fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The endpoint their HR events came through.
    pub endpoint: Source,
    /// What the newest events said.
    pub person: Person,
    /// For each field of `person`, the event that set it.
    #[serde(default)]
    pub set_by: BTreeMap<String, Stamp>,
    /// When the newest event applied happened.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Record {
    /// `person#<endpoint>#<id>`.
    pub fn key(&self) -> String {
        person_key(self.endpoint, &self.person.id)
    }

    /// Employed: not terminated (a person no event said anything of is).
    pub fn active(&self) -> bool {
        self.person.active != Some(false)
    }

    /// How the CLI and messages name them.
    pub fn label(&self) -> &str {
        (self.person.name.as_deref())
            .or(self.person.email.as_deref())
            .unwrap_or(&self.person.id)
    }
}

/// An owner linked to a person by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The owner as a provider names them (a name or an email).
    pub owner: String,
    /// The person: their key (`person#...`).
    pub person: String,
}

/// A forgotten work email or person: the SHA-256 of it, never the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    /// Hex SHA-256 of the email (lowercase) or the person's key.
    pub hash: String,
}

/// An event's place in time: `occurred_at`, then its id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    /// `occurred_at`.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The event's id.
    pub event: String,
}

/// `person#<endpoint>#<id>`.
pub fn person_key(endpoint: Source, id: &str) -> String {
    format!("person#{endpoint}#{id}")
}

/// An owner's text as links compare it: an email or a name, lowercase.
pub fn owner_key(owner: &str) -> String {
    match owner.contains('@') {
        true => email_key(owner),
        false => name_key(owner),
    }
}

/// The hash an erasure keeps of `text` (an email, compared lowercase, or a key).
pub fn erasure_hash(text: &str) -> String {
    let text = match text.contains('@') {
        true => email_key(text),
        false => text.to_owned(),
    };
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// An entry as read, with the version a write must name to replace it.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// The entry.
    pub entry: Entry,
    /// Counts the writes: 1 for the first.
    pub version: u64,
}

/// Where the directory lives: DynamoDB on AWS, SQLite in `serve`, memory in tests.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Every entry.
    async fn entries(&self) -> Result<Vec<Versioned>, DirectoryError>;

    /// Write `entry` at its key if the stored version is still `expected` (`None`: no
    /// entry); false, having written nothing, when another writer got there first.
    async fn put(&self, entry: &Entry, expected: Option<u64>) -> Result<bool, DirectoryError>;

    /// Write each of `writes` as [`put`](DirectoryStore::put) does, in order, stopping at
    /// the first another writer got to first (false). A store that can makes them one
    /// transaction, all or none (SQLite: one commit for a batch's people, not one each);
    /// either way a false or an error is answered by applying the batch again.
    async fn put_all(&self, writes: &[(Entry, Option<u64>)]) -> Result<bool, DirectoryError> {
        for (entry, expected) in writes {
            if !self.put(entry, *expected).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Remove the entry at `key` (nothing there is not an error).
    async fn remove(&self, key: &str) -> Result<(), DirectoryError>;
}

/// The directory as it stands in `store`.
pub async fn load(store: &dyn DirectoryStore) -> Result<Directory, DirectoryError> {
    let entries = store.entries().await?;
    Ok(Directory::new(entries.into_iter().map(|v| v.entry)))
}

/// What applying a batch's HR events did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// People added or changed.
    pub changed: usize,
    /// Events of forgotten people, not applied.
    pub erased: usize,
}

/// Apply the `person` of each event to the directory in `store`: each field takes
/// what the newest event that carried it said; an event of a forgotten person is
/// dropped. Another writer in between makes it read and apply again (three times at
/// most). Logs a manager cycle and two people sharing a work email (by person key,
/// never by name or address).
pub async fn apply(
    store: &dyn DirectoryStore,
    events: &[Event],
) -> Result<Applied, DirectoryError> {
    let people: Vec<&Event> = events.iter().filter(|e| e.person.is_some()).collect();
    if people.is_empty() {
        return Ok(Applied::default());
    }
    for _ in 0..3 {
        let entries = store.entries().await?;
        let mut current: BTreeMap<String, Versioned> =
            entries.into_iter().map(|v| (v.entry.key(), v)).collect();
        let erased = |text: &str| current.contains_key(&format!("erased#{}", erasure_hash(text)));
        let mut applied = Applied::default();
        let mut writes: BTreeMap<String, (Record, Option<u64>)> = BTreeMap::new();
        for event in &people {
            let Some(person) = &event.person else {
                continue;
            };
            let endpoint = event.endpoint();
            let key = person_key(endpoint, &person.id);
            if erased(&key) || person.email.as_deref().is_some_and(erased) {
                applied.erased += 1;
                continue;
            }
            let (record, version) = match writes.remove(&key) {
                Some(pending) => pending,
                None => match current.get(&key) {
                    Some(Versioned {
                        entry: Entry::Person(record),
                        version,
                    }) => ((**record).clone(), Some(*version)),
                    _ => (
                        Record {
                            endpoint,
                            person: Person {
                                id: person.id.clone(),
                                ..Person::default()
                            },
                            set_by: BTreeMap::new(),
                            updated_at: event.occurred_at,
                        },
                        None,
                    ),
                },
            };
            // A forgotten manager is not named again by their reports' records.
            let mut person = person.clone();
            if person.manager.as_ref().is_some_and(|manager| {
                manager.email.as_deref().is_some_and(erased)
                    || manager
                        .id
                        .as_deref()
                        .is_some_and(|id| erased(&person_key(endpoint, id)))
            }) {
                person.manager = None;
            }
            let mut next = record.clone();
            merge(&mut next, &person, event);
            // Stamps count: a newer event saying the same keeps a later older one out.
            if next != record || version.is_none() {
                applied.changed += 1;
                writes.insert(key, (next, version));
            } else {
                writes.insert(key, (record, version));
            }
        }
        let mut keys = Vec::new();
        let mut puts = Vec::new();
        for (key, (record, version)) in &writes {
            let entry = Entry::Person(Box::new(record.clone()));
            if current.get(key).is_none_or(|v| v.entry != entry) {
                keys.push(key);
                puts.push((entry, *version));
            }
        }
        if !puts.is_empty() && !store.put_all(&puts).await? {
            continue;
        }
        for (key, (entry, version)) in keys.into_iter().zip(puts) {
            current.insert(
                key.clone(),
                Versioned {
                    entry,
                    version: version.unwrap_or(0) + 1,
                },
            );
        }
        warn_of_conflicts(&current, &writes);
        return Ok(applied);
    }
    Err(DirectoryError::new(
        "contended: other writers changed the directory three times over",
    ))
}

/// Set each field `person` carries that `event` is newer for (and its stamp); whether
/// a value changed.
fn merge(record: &mut Record, person: &Person, event: &Event) -> bool {
    let stamp = Stamp {
        at: event.occurred_at,
        event: event.id.clone(),
    };
    let (Ok(serde_json::Value::Object(mut fields)), Ok(serde_json::Value::Object(new))) = (
        serde_json::to_value(&record.person),
        serde_json::to_value(person),
    ) else {
        return false;
    };
    let mut changed = false;
    for (name, value) in new {
        if name == "id" {
            continue;
        }
        let newer = record.set_by.get(&name).is_none_or(|set| &stamp > set);
        if newer {
            if fields.get(&name) != Some(&value) {
                changed = true;
            }
            fields.insert(name.clone(), value);
            record.set_by.insert(name, stamp.clone());
        }
    }
    if event.occurred_at > record.updated_at {
        record.updated_at = event.occurred_at;
        changed = true;
    }
    match serde_json::from_value(serde_json::Value::Object(fields)) {
        Ok(person) => record.person = person,
        Err(_) => return false,
    }
    changed
}

/// Log, once as each write makes them, the manager cycles and shared work emails
/// among the people just written.
fn warn_of_conflicts(
    current: &BTreeMap<String, Versioned>,
    writes: &BTreeMap<String, (Record, Option<u64>)>,
) {
    let directory = Directory::new(current.values().map(|v| v.entry.clone()));
    for cycle in directory.cycles() {
        if cycle.iter().any(|key| writes.contains_key(key)) {
            tracing::warn!(
                people = %cycle.join(" -> "),
                "manager cycle in the HR data: cut at the first person named (they show no manager until it is fixed)"
            );
        }
    }
    for (key, (record, _)) in writes {
        let Some(email) = record.person.email.as_deref() else {
            continue;
        };
        let others: Vec<&str> = directory
            .with_email(email)
            .into_iter()
            .filter(|other| *other != key)
            .collect();
        if !others.is_empty() {
            tracing::warn!(
                person = %key,
                others = %others.join(", "),
                "two people share a work email: the one updated last is used"
            );
        }
    }
}

/// A directory in memory, for tests.
#[derive(Default)]
pub struct MemoryDirectory {
    entries: Mutex<BTreeMap<String, Versioned>>,
}

#[async_trait]
impl DirectoryStore for MemoryDirectory {
    async fn entries(&self) -> Result<Vec<Versioned>, DirectoryError> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Ok(entries.values().cloned().collect())
    }

    async fn put(&self, entry: &Entry, expected: Option<u64>) -> Result<bool, DirectoryError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = entry.key();
        let stored = entries.get(&key).map(|v| v.version);
        if stored != expected {
            return Ok(false);
        }
        entries.insert(
            key,
            Versioned {
                entry: entry.clone(),
                version: expected.unwrap_or(0) + 1,
            },
        );
        Ok(true)
    }

    async fn remove(&self, key: &str) -> Result<(), DirectoryError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(key);
        Ok(())
    }
}

/// Link `owner` (a name or email as a provider sends it) to `person` (found by
/// [`Directory::find`]); the person's label.
pub async fn link(
    store: &dyn DirectoryStore,
    owner: &str,
    person: &str,
) -> Result<String, LinkError> {
    let directory = load(store).await?;
    let record = directory
        .find(person)
        .ok_or_else(|| LinkError::NoSuchPerson(person.to_owned()))?;
    if owner_key(owner).is_empty() {
        return Err(LinkError::EmptyOwner);
    }
    let entry = Entry::Link(Link {
        owner: owner.trim().to_owned(),
        person: record.key(),
    });
    let label = record.label().to_owned();
    let key = entry.key();
    for _ in 0..3 {
        let version = store
            .entries()
            .await?
            .into_iter()
            .find(|v| v.entry.key() == key)
            .map(|v| v.version);
        if store.put(&entry, version).await? {
            return Ok(label);
        }
    }
    Err(DirectoryError::new("contended: the link changed three times over").into())
}

/// Forget everyone with the work email `email`: their entries and links go, and an
/// erasure (hashes of the email and of each person's key) keeps their events from
/// coming back. How many people were removed.
pub async fn forget(store: &dyn DirectoryStore, email: &str) -> Result<usize, DirectoryError> {
    let wanted = email_key(email);
    let entries = store.entries().await?;
    let removed: Vec<String> = entries
        .iter()
        .filter_map(|v| match &v.entry {
            Entry::Person(record)
                if record.person.email.as_deref().map(email_key).as_deref()
                    == Some(wanted.as_str()) =>
            {
                Some(record.key())
            }
            _ => None,
        })
        .collect();
    let mut hashes = vec![erasure_hash(&wanted)];
    hashes.extend(removed.iter().map(|key| erasure_hash(key)));
    // Their reports' records name them as manager: the reference goes too (the stamp
    // stays, and their events naming the manager again are stripped by `apply`).
    for v in &entries {
        let Entry::Person(record) = &v.entry else {
            continue;
        };
        let Some(manager) = &record.person.manager else {
            continue;
        };
        let names_them = manager.email.as_deref().map(email_key).as_deref() == Some(&wanted)
            || manager
                .id
                .as_deref()
                .is_some_and(|id| removed.contains(&person_key(record.endpoint, id)));
        if names_them && !removed.contains(&record.key()) {
            let mut record = (**record).clone();
            record.person.manager = None;
            if !store
                .put(&Entry::Person(Box::new(record)), Some(v.version))
                .await?
            {
                return Err(DirectoryError::new(
                    "contended: a report's record changed during the erasure; run forget again",
                ));
            }
        }
    }
    for hash in hashes {
        let entry = Entry::Erased(Erased { hash });
        // An erasure is the same whoever writes it: one already there is enough.
        let _ = store.put(&entry, None).await?;
    }
    for v in &entries {
        if let Entry::Link(link) = &v.entry
            && removed.contains(&link.person)
        {
            store.remove(&v.entry.key()).await?;
        }
    }
    for key in &removed {
        store.remove(key).await?;
    }
    Ok(removed.len())
}

/// Why a link could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No person in the directory answers to the text.
    #[error(
        "no person in the directory is {0:?} (give a work email, an id or a key from `directory list`)"
    )]
    NoSuchPerson(String),
    /// The owner is blank.
    #[error("the owner is empty")]
    EmptyOwner,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] DirectoryError),
}
