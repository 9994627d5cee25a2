//! `okr-webhooks directory`: the people HR events describe, who owns which key result,
//! and the owners nobody matches; link an owner to a person by hand, or forget a person.
//! Over `serve`'s data directory, or a deployed stack's tables (`--stack`, with the
//! user's own AWS credentials).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use okr_aws::directory_dynamodb::DynamoDbDirectory;
use okr_aws::progress_dynamodb::DynamoDbProgressStore;
use okr_consumers::directory::{self, Directory, DirectoryStore, Record};
use okr_consumers::progress::{ProgressStore, Tracked};
use okr_local::Paths;
use okr_local::directory_sqlite::SqliteDirectory;
use okr_local::progress_sqlite::SqliteProgressStore;

use crate::delivery::DEFAULT_DATA_DIR;

#[derive(Debug, Args)]
pub struct DirectoryArgs {
    #[command(subcommand)]
    command: DirectoryCommand,
    /// The data directory of `serve`: its directory.sqlite and progress.sqlite.
    #[arg(long, default_value = DEFAULT_DATA_DIR, global = true)]
    data_dir: PathBuf,
    /// A deployed stack's name instead: its DirectoryTableName and ProgressTableName
    /// outputs are the tables (needs dynamodb:Scan, and for link and forget
    /// dynamodb:PutItem and dynamodb:DeleteItem, on them).
    #[arg(long, global = true, conflicts_with = "data_dir")]
    stack: Option<String>,
}

/// The directory and the read model the command works on.
struct Stores {
    directory: Arc<dyn DirectoryStore>,
    progress: Arc<dyn ProgressStore>,
}

impl Stores {
    /// `serve`'s SQLite files, or the stack's DynamoDB tables.
    async fn open(args: &DirectoryArgs) -> Result<Stores> {
        if let Some(stack) = &args.stack {
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let directory =
                crate::stack::output(&aws, stack, crate::stack::DIRECTORY_OUTPUT).await?;
            let progress = crate::stack::output(&aws, stack, crate::stack::PROGRESS_OUTPUT).await?;
            let client = aws_sdk_dynamodb::Client::new(&aws);
            return Ok(Stores {
                directory: Arc::new(DynamoDbDirectory::new(client.clone(), directory)),
                progress: Arc::new(DynamoDbProgressStore::new(client, progress)),
            });
        }
        let paths = Paths::new(&args.data_dir);
        if !args.data_dir.is_dir() {
            bail!(
                "{} is not a data directory (start `okr-webhooks serve --data-dir {}` first, or give --stack)",
                args.data_dir.display(),
                args.data_dir.display()
            );
        }
        let directory = SqliteDirectory::open(&paths.directory)
            .with_context(|| format!("cannot open {}", paths.directory.display()))?;
        let progress = SqliteProgressStore::open(&paths.progress)
            .with_context(|| format!("cannot open {}", paths.progress.display()))?;
        Ok(Stores {
            directory: Arc::new(directory),
            progress: Arc::new(progress),
        })
    }

    async fn people(&self) -> Result<Directory> {
        directory::load(self.directory.as_ref())
            .await
            .map_err(|e| anyhow::anyhow!(okr_core::error_chain(&e)))
            .context("cannot read the directory")
    }

    async fn read_model(&self) -> Result<Vec<Tracked>> {
        self.progress
            .all()
            .await
            .map_err(|e| anyhow::anyhow!(okr_core::error_chain(&e)))
            .context("cannot read the read model")
    }
}

#[derive(Debug, Subcommand)]
enum DirectoryCommand {
    /// Everyone: name, work email, department, position, team lead, active.
    List {
        /// One JSON object a line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One person (by work email, id or key): their fields, team lead, reports and
    /// the key results they own.
    Show {
        /// A work email, an HR id, or a key from `list --json`.
        person: String,
    },
    /// The owners of key results no one in the directory matches, and why.
    Unresolved,
    /// Make OWNER (a name or email as the OKR tool sends it) mean PERSON.
    Link {
        /// The owner, as `unresolved` prints it.
        owner: String,
        /// The person: a work email, an HR id, or a key.
        person: String,
    },
    /// Remove everyone with this work email, for an erasure request; their HR events
    /// are skipped from then on, replays included.
    Forget {
        /// The work email.
        email: String,
    },
}

pub async fn run(args: DirectoryArgs) -> Result<ExitCode> {
    let stores = Stores::open(&args).await?;
    let store = stores.directory.as_ref();
    let mut out = io::stdout().lock();
    match args.command {
        DirectoryCommand::List { json } => {
            let people = stores.people().await?;
            list(&mut out, &people, json)?;
        }
        DirectoryCommand::Show { person } => {
            let people = stores.people().await?;
            let Some(record) = people.find(&person) else {
                bail!(
                    "no person in the directory is {person:?} (see `okr-webhooks directory list`)"
                );
            };
            let records = stores.read_model().await?;
            show(&mut out, &people, record, &records)?;
        }
        DirectoryCommand::Unresolved => {
            let people = stores.people().await?;
            let records = stores.read_model().await?;
            unresolved(&mut out, &people, &records)?;
        }
        DirectoryCommand::Link { owner, person } => {
            let label = directory::link(store, &owner, &person).await?;
            writeln!(out, "linked {:?} to {label}", owner.trim())?;
        }
        DirectoryCommand::Forget { email } => {
            if !email.contains('@') {
                bail!("{email:?} is not an email address");
            }
            let removed = directory::forget(store, &email)
                .await
                .map_err(|e| anyhow::anyhow!(okr_core::error_chain(&e)))
                .context("cannot forget")?;
            match removed {
                0 => writeln!(
                    out,
                    "no one had that address; it is blocked from the directory from now on"
                )?,
                n => writeln!(
                    out,
                    "forgot {n} person(s); their HR events are skipped from now on, replays included"
                )?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The team lead as shown: their label, or the manager the record names who is not in
/// the directory yet.
fn team_lead(people: &Directory, record: &Record) -> String {
    match people.team_lead(&record.key()) {
        Some(lead) if lead.record.is_some() => lead.name,
        Some(lead) => format!("{} (not in the directory)", lead.name),
        None => "-".to_owned(),
    }
}

fn list(out: &mut impl Write, people: &Directory, as_json: bool) -> Result<()> {
    if as_json {
        for record in people.people() {
            let lead = people.team_lead(&record.key());
            let line = json!({
                "key": record.key(),
                "id": record.person.id,
                "name": record.person.name,
                "email": record.person.email,
                "department": record.person.department,
                "division": record.person.division,
                "position": record.person.position,
                "team_lead": lead.as_ref().map(|l| l.name.clone()),
                "team_lead_email": lead.and_then(|l| l.email),
                "active": record.active(),
            });
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    if people.is_empty() {
        writeln!(
            out,
            "the directory is empty: it fills from HR events (PeopleForce employee_*, or an endpoint's person mapping)"
        )?;
        return Ok(());
    }
    let rows: Vec<[String; 6]> = people
        .people()
        .map(|r| {
            [
                r.label().to_owned(),
                r.person.email.clone().unwrap_or_else(|| "-".into()),
                r.person.department.clone().unwrap_or_else(|| "-".into()),
                r.person.position.clone().unwrap_or_else(|| "-".into()),
                team_lead(people, r),
                if r.active() { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    let header = [
        "person",
        "work email",
        "department",
        "position",
        "team lead",
        "active",
    ];
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn show(
    out: &mut impl Write,
    people: &Directory,
    record: &Record,
    records: &[Tracked],
) -> Result<()> {
    let p = &record.person;
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    writeln!(out, "{} ({})", record.label(), record.key())?;
    writeln!(out, "  work email   {}", dash(&p.email))?;
    writeln!(out, "  department   {}", dash(&p.department))?;
    writeln!(out, "  division     {}", dash(&p.division))?;
    writeln!(out, "  position     {}", dash(&p.position))?;
    writeln!(out, "  team lead    {}", team_lead(people, record))?;
    writeln!(
        out,
        "  active       {}",
        if record.active() { "yes" } else { "no" }
    )?;
    let reports: Vec<&str> = people
        .reports(&record.key(), false)
        .iter()
        .map(|r| r.label())
        .collect();
    writeln!(
        out,
        "  reports      {}",
        if reports.is_empty() {
            "-".to_owned()
        } else {
            reports.join(", ")
        }
    )?;
    let owned: Vec<&Tracked> = records
        .iter()
        .filter(|t| t.kind == "key_result" && !t.deleted)
        .filter(|t| {
            t.owner()
                .and_then(|o| people.resolve(&o))
                .is_some_and(|(owner, _)| owner.key() == record.key())
        })
        .collect();
    writeln!(out, "  key results  {}", owned.len())?;
    for t in owned {
        writeln!(
            out,
            "    {} ({}%, updated {}{})",
            t.title.as_deref().unwrap_or(&t.id),
            t.progress
                .map(okr_core::event::percent)
                .unwrap_or_else(|| "?".into()),
            t.updated_at.date(),
            if t.completed { ", completed" } else { "" }
        )?;
    }
    Ok(())
}

fn unresolved(out: &mut impl Write, people: &Directory, records: &[Tracked]) -> Result<()> {
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    let mut without_owner = 0;
    for t in records
        .iter()
        .filter(|t| t.kind == "key_result" && !t.deleted)
    {
        match t.owner() {
            None => without_owner += 1,
            Some(owner) if people.resolve(&owner).is_none() => {
                *owners.entry(owner.label().to_owned()).or_default() += 1
            }
            Some(_) => {}
        }
    }
    if owners.is_empty() && without_owner == 0 {
        writeln!(out, "every key result's owner is in the directory")?;
        return Ok(());
    }
    for (owner, count) in &owners {
        let alike = people
            .people()
            .filter(|r| {
                r.person.name.as_deref().map(okr_core::person::name_key)
                    == Some(okr_core::person::name_key(owner))
            })
            .count();
        let why = match alike {
            0 => "no one in the directory has this name or address".to_owned(),
            n => format!("{n} people in the directory share this name"),
        };
        writeln!(out, "{owner}\t{count} key result(s)\t{why}")?;
    }
    if without_owner > 0 {
        writeln!(
            out,
            "(no owner)\t{without_owner} key result(s)\tthe provider named neither an owner nor who updated it"
        )?;
    }
    writeln!(
        out,
        "link one with: okr-webhooks directory link OWNER PERSON-EMAIL"
    )?;
    Ok(())
}
