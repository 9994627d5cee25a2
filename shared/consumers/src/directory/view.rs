//! The directory as one value: people by key, email and name; who reports to whom
//! (manager cycles cut); owners resolved to people.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use okr_core::person::{Owner, email_key, name_key};

use super::{Entry, Record, owner_key, person_key};

/// The directory, read whole.
#[derive(Debug, Default)]
pub struct Directory {
    people: BTreeMap<String, Record>,
    /// Email (lowercase) to the people with it, the one updated last first.
    by_email: HashMap<String, Vec<String>>,
    /// Name (lowercase, single spaces) to the people with it.
    by_name: HashMap<String, Vec<String>>,
    /// Owner (lowercase) to the person linked by hand.
    links: HashMap<String, String>,
    /// Each person's manager, resolved, with cycles cut.
    managers: HashMap<String, String>,
    /// Each person's direct reports.
    reports: HashMap<String, Vec<String>>,
    /// The cycles found, each as the keys around it, starting where it was cut.
    cycles: Vec<Vec<String>>,
}

/// A person's team lead.
#[derive(Debug, Clone)]
pub struct Lead<'a> {
    /// Their name (or email, when the reference names none).
    pub name: String,
    /// Their work email, when known.
    pub email: Option<String>,
    /// Their own record, when the directory has one.
    pub record: Option<&'a Record>,
}

impl Lead<'_> {
    /// Employed, as far as the directory knows (a reference without a record is).
    pub fn active(&self) -> bool {
        self.record.is_none_or(|r| r.active())
    }
}

/// How an owner was matched to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// By a link made with `directory link`.
    Linked,
    /// By work email.
    Email,
    /// By full name, the only person with it.
    Name,
}

impl Resolution {
    /// `linked`, `email`, `name`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Linked => "linked",
            Resolution::Email => "email",
            Resolution::Name => "name",
        }
    }
}

impl Directory {
    /// The directory of `entries`.
    pub fn new(entries: impl IntoIterator<Item = Entry>) -> Directory {
        let mut directory = Directory::default();
        let mut links = Vec::new();
        for entry in entries {
            match entry {
                Entry::Person(record) => {
                    directory.people.insert(record.key(), *record);
                }
                Entry::Link(link) => links.push(link),
                Entry::Erased(_) => {}
            }
        }
        for (key, record) in &directory.people {
            if let Some(email) = &record.person.email {
                directory
                    .by_email
                    .entry(email_key(email))
                    .or_default()
                    .push(key.clone());
            }
            if let Some(name) = &record.person.name {
                directory
                    .by_name
                    .entry(name_key(name))
                    .or_default()
                    .push(key.clone());
            }
        }
        for keys in directory.by_email.values_mut() {
            // The later event wins: the person updated last first.
            keys.sort_by(|a, b| {
                let at = |key: &String| directory.people[key].updated_at;
                at(b).cmp(&at(a)).then(a.cmp(b))
            });
        }
        for link in links {
            if directory.people.contains_key(&link.person) {
                directory.links.insert(owner_key(&link.owner), link.person);
            }
        }
        let managers: Vec<(String, String)> = directory
            .people
            .iter()
            .filter_map(|(key, record)| {
                let manager = record.person.manager.as_ref()?;
                let by_id = manager
                    .id
                    .as_ref()
                    .map(|id| person_key(record.endpoint, id))
                    .filter(|k| directory.people.contains_key(k));
                let by_email = || {
                    manager.email.as_deref().and_then(|email| {
                        directory.with_email(email).first().map(|k| k.to_string())
                    })
                };
                let found = by_id.or_else(by_email)?;
                (found != *key).then(|| (key.clone(), found))
            })
            .collect();
        directory.managers = managers.into_iter().collect();
        directory.cut_cycles();
        for (person, manager) in &directory.managers {
            directory
                .reports
                .entry(manager.clone())
                .or_default()
                .push(person.clone());
        }
        for reports in directory.reports.values_mut() {
            reports.sort();
        }
        directory
    }

    /// Follow each chain of managers; where one comes back to a person on it, drop the
    /// manager of the cycle's first person (by key), so every chain ends.
    fn cut_cycles(&mut self) {
        let mut done: BTreeSet<String> = BTreeSet::new();
        let keys: Vec<String> = self.people.keys().cloned().collect();
        for start in keys {
            let mut path: Vec<String> = Vec::new();
            let mut at = Some(start);
            while let Some(key) = at {
                if done.contains(&key) {
                    break;
                }
                if let Some(position) = path.iter().position(|k| *k == key) {
                    let mut cycle = path[position..].to_vec();
                    let first = cycle.iter().min().cloned().unwrap_or_default();
                    let turn = cycle.iter().position(|k| *k == first).unwrap_or(0);
                    cycle.rotate_left(turn);
                    self.managers.remove(&first);
                    self.cycles.push(cycle);
                    break;
                }
                path.push(key.clone());
                at = self.managers.get(&key).cloned();
            }
            done.extend(path);
        }
    }

    /// Every person, by key.
    pub fn people(&self) -> impl Iterator<Item = &Record> {
        self.people.values()
    }

    /// How many people it has.
    pub fn len(&self) -> usize {
        self.people.len()
    }

    /// Whether it has nobody.
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// The person at `key`.
    pub fn person(&self, key: &str) -> Option<&Record> {
        self.people.get(key)
    }

    /// The keys of the people with work email `email`, the one updated last first.
    pub fn with_email(&self, email: &str) -> Vec<&str> {
        self.by_email
            .get(&email_key(email))
            .map(|keys| keys.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The person `text` names: a key (`person#...`), a work email, or an HR id when
    /// only one endpoint has it.
    pub fn find(&self, text: &str) -> Option<&Record> {
        let text = text.trim();
        if let Some(record) = self.people.get(text) {
            return Some(record);
        }
        if text.contains('@') {
            return self.with_email(text).first().and_then(|k| self.person(k));
        }
        let mut by_id = self.people.values().filter(|r| r.person.id == text);
        match (by_id.next(), by_id.next()) {
            (Some(record), None) => Some(record),
            _ => None,
        }
    }

    /// The person an owner is: linked by hand, else by work email, else by full name
    /// when exactly one person has it.
    pub fn resolve(&self, owner: &Owner) -> Option<(&Record, Resolution)> {
        let linked = [
            owner.email.as_deref(),
            owner.name.as_deref(),
            owner.id.as_deref(),
        ]
        .into_iter()
        .flatten()
        .find_map(|text| self.links.get(&owner_key(text)))
        .and_then(|key| self.person(key));
        if let Some(record) = linked {
            return Some((record, Resolution::Linked));
        }
        if let Some(record) = owner
            .email
            .as_deref()
            .and_then(|email| self.with_email(email).first().and_then(|k| self.person(k)))
        {
            return Some((record, Resolution::Email));
        }
        match owner
            .name
            .as_deref()
            .and_then(|n| self.by_name.get(&name_key(n)))
        {
            Some(keys) if keys.len() == 1 => self.person(&keys[0]).map(|r| (r, Resolution::Name)),
            _ => None,
        }
    }

    /// The person's manager, when the directory has them.
    pub fn manager(&self, key: &str) -> Option<&Record> {
        self.managers.get(key).and_then(|k| self.person(k))
    }

    /// The person's team lead: their manager in the directory, else the manager their
    /// HR record names (by name and email) while that manager has no record here.
    pub fn team_lead(&self, key: &str) -> Option<Lead<'_>> {
        if let Some(record) = self.manager(key) {
            return Some(Lead {
                name: record.label().to_owned(),
                email: record.person.email.clone(),
                record: Some(record),
            });
        }
        let record = self.person(key)?;
        let manager = record.person.manager.as_ref()?;
        // A reference to someone with a record (themselves, or a cut cycle) is not
        // a team lead waiting for their record.
        let by_id = manager
            .id
            .as_ref()
            .is_some_and(|id| self.people.contains_key(&person_key(record.endpoint, id)));
        let by_email = manager
            .email
            .as_deref()
            .is_some_and(|email| !self.with_email(email).is_empty());
        if by_id || by_email {
            return None;
        }
        let name = manager.name.clone().or_else(|| manager.email.clone())?;
        Some(Lead {
            name,
            email: manager.email.clone(),
            record: None,
        })
    }

    /// The person's direct reports (`all`: and theirs, down the whole chart).
    pub fn reports(&self, key: &str, all: bool) -> Vec<&Record> {
        let mut found: Vec<&str> = Vec::new();
        let mut queue: Vec<&str> = vec![key];
        while let Some(at) = queue.pop() {
            for report in self.reports.get(at).into_iter().flatten() {
                if !found.contains(&report.as_str()) && report != key {
                    found.push(report);
                    if all {
                        queue.push(report);
                    }
                }
            }
        }
        found.sort();
        found.into_iter().filter_map(|k| self.person(k)).collect()
    }

    /// The active people with at least one active direct report.
    pub fn team_leads(&self) -> Vec<&Record> {
        self.people
            .values()
            .filter(|r| r.active())
            .filter(|r| self.reports(&r.key(), false).iter().any(|p| p.active()))
            .collect()
    }

    /// The manager cycles found (and cut).
    pub fn cycles(&self) -> &[Vec<String>] {
        &self.cycles
    }
}
