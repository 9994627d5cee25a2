//! `okr-webhooks replay`: re-send archived events (the warehouse) to the consumers'
//! queues, `serve`'s or SQS's, by window and filter, at a set rate, resumable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use okr_aws::s3_archive::S3Archive;
use okr_aws::sqs::SqsQueue;
use okr_consumers::replay::archive::{Archive, LocalArchive};
use okr_consumers::replay::checkpoint::{Checkpoint, CheckpointFile};
use okr_consumers::replay::select::{By, Selection, parse_time};
use okr_consumers::replay::{Plan, Target, check_name, replay};
use okr_consumers::warehouse::WarehouseUrl;
use okr_core::routing::{Consumer, NotifyRules};
use okr_local::sqlite_queue::SqliteQueue;
use okr_local::sqlite_store::SqliteIdempotencyStore;
use okr_pipeline::config::{QueueUrls, process_env};
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::queue::EventQueue;

use output::{Display, report};

mod output;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The archive: a directory in the warehouse's layout, or s3://bucket/prefix
    /// (default: the data directory's warehouse/).
    #[arg(long)]
    from: Option<String>,
    /// `serve`'s data directory: its queues, its records of what was posted, and the
    /// replays' checkpoints (replays/<name>.json).
    #[arg(long, default_value = ".okr-webhooks")]
    data_dir: PathBuf,
    /// From this time on: an RFC 3339 time, or a date (from its midnight, UTC).
    #[arg(long)]
    since: Option<String>,
    /// Before this time: an RFC 3339 time, or a date (that whole day included).
    #[arg(long)]
    until: Option<String>,
    /// Which time the window is on.
    #[arg(long, value_enum, default_value = "received-at")]
    by: ByName,
    /// Only events of this source, the tool (repeatable).
    #[arg(long = "source")]
    sources: Vec<String>,
    /// Only events posted to this endpoint (repeatable): one of two accounts of a tool.
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// Only events of this type, a glob such as `key_result.*` (repeatable).
    #[arg(long = "type")]
    types: Vec<String>,
    /// Only this event id, or @FILE of ids one per line (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Only events about this objective or key result id.
    #[arg(long)]
    entity: Option<String>,
    /// Where to send: slack, alerts, warehouse or progress (repeatable; progress
    /// rebuilds the read model), routed as ingest routes; or subscription:NAME, the
    /// events that subscription takes, to it alone.
    #[arg(long = "to", value_parser = parse_to, required_unless_present = "resume")]
    to: Vec<ReplayTo>,
    /// Send every selected event to Slack, not only the types it notifies.
    #[arg(long)]
    all_types: bool,
    /// Count what would be sent, by day, source and type, and what Slack already has.
    #[arg(long)]
    dry_run: bool,
    /// Send again what was already posted or alerted (once per replay name).
    #[arg(long)]
    force: bool,
    /// The replay's name (default replay-<UTC time>).
    #[arg(long, conflicts_with = "resume")]
    name: Option<String>,
    /// Go on with an interrupted replay, after its checkpoint: its archive, selection,
    /// targets and queues are the checkpoint's (only --rate may change).
    #[arg(long, conflicts_with_all = [
        "from", "since", "until", "sources", "endpoints", "types", "ids", "entity", "to",
        "all_types", "dry_run", "force", "queue_urls",
    ])]
    resume: Option<String>,
    /// At most this many events a second (`100` or `100/s`; default as fast as it goes).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// CONSUMER=URL: send that consumer's events to this SQS queue (the stack's queue
    /// URLs) instead of the data directory's; one for each --to.
    #[arg(long = "queue-url")]
    queue_urls: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ByName {
    ReceivedAt,
    OccurredAt,
}

/// Where a replay sends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReplayTo {
    /// A consumer's queue, routed as ingest routes.
    Queue(Consumer),
    /// One subscription, through the subscriptions queue.
    Subscription(String),
}

fn parse_to(text: &str) -> Result<ReplayTo, String> {
    if let Some(name) = text.strip_prefix("subscription:") {
        return match okr_core::subscriptions::is_name(name) {
            true => Ok(ReplayTo::Subscription(name.to_owned())),
            false => Err(format!("{name:?} is not a subscription's name")),
        };
    }
    match text {
        "slack" => Ok(ReplayTo::Queue(Consumer::Slack)),
        "alerts" => Ok(ReplayTo::Queue(Consumer::Alerts)),
        "warehouse" => Ok(ReplayTo::Queue(Consumer::Warehouse)),
        "progress" => Ok(ReplayTo::Queue(Consumer::Progress)),
        _ => Err(format!(
            "{text:?}: expected slack, alerts, warehouse, progress or subscription:NAME"
        )),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: events a second, such as 100 or 100/s"
        )),
    }
}

pub async fn run(args: ReplayArgs) -> Result<ExitCode> {
    let (plan, checkpoint, resume) = plan(&args)?;
    let archive = archive(&plan.archive).await?;
    let rules: NotifyRules = okr_pipeline::config::notify_rules(&process_env());
    let mut display = Display::new(&plan.name);
    let summary = if args.dry_run {
        // Locally, serve's records of what Slack got; on AWS they are in DynamoDB.
        let store = match plan.queue_urls.is_empty() {
            true => done_store(&args.data_dir)?,
            false => None,
        };
        let target = Target::DryRun(store.as_deref());
        replay(&plan, &rules, archive.as_ref(), target, None, &mut |p| {
            display.show(p)
        })
        .await?
    } else {
        let queue = queues(&args.data_dir, &plan).await?;
        let target = Target::Queues {
            queue: queue.as_ref(),
            checkpoint: &checkpoint,
        };
        let resume = resume.as_ref();
        replay(&plan, &rules, archive.as_ref(), target, resume, &mut |p| {
            display.show(p)
        })
        .await?
    };
    display.finish();
    report(&plan, &summary, args.dry_run, &checkpoint)?;
    Ok(ExitCode::SUCCESS)
}

/// A replay's plan, its checkpoint file, and (resuming) its checkpoint.
type Planned = (Plan, CheckpointFile, Option<Checkpoint>);

/// The plan: from the arguments, or from the checkpoint of the replay to resume.
fn plan(args: &ReplayArgs) -> Result<Planned> {
    if let Some(name) = &args.resume {
        return resumed(args, name);
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "replay-[year][month][day]T[hour][minute][second]Z"
            ))
            .context("cannot name the replay")?,
    };
    check_name(&name).map_err(anyhow::Error::msg)?;
    let file = CheckpointFile::new(&args.data_dir, &name);
    if !args.dry_run
        && let Some(previous) = load(&file)?
        && !previous.finished
    {
        bail!(
            "the replay {name} was interrupted: --resume {name} to go on, or choose another --name"
        );
    }
    let mut targets: Vec<Consumer> = Vec::new();
    let mut subscription = None;
    for to in &args.to {
        match to {
            ReplayTo::Queue(consumer) => targets.push(*consumer),
            ReplayTo::Subscription(name) => {
                if subscription
                    .replace(name.clone())
                    .is_some_and(|other| other != *name)
                {
                    bail!("--to subscription:NAME: one subscription a replay");
                }
            }
        }
    }
    targets.sort();
    targets.dedup();
    let archive = match &args.from {
        Some(from) => from.clone(),
        None => okr_local::Paths::new(&args.data_dir)
            .warehouse
            .display()
            .to_string(),
    };
    let plan = Plan {
        name,
        selection: selection(args)?,
        targets,
        all_types: args.all_types,
        force: args.force,
        rate: args.rate,
        archive,
        queue_urls: args.queue_urls.clone(),
        subscription,
    };
    Ok((plan, file, None))
}

/// The plan of the interrupted replay `name`, with `--rate` if given.
fn resumed(args: &ReplayArgs, name: &str) -> Result<Planned> {
    check_name(name).map_err(anyhow::Error::msg)?;
    let file = CheckpointFile::new(&args.data_dir, name);
    let Some(checkpoint) = load(&file)? else {
        bail!(
            "no replay named {name} in {}",
            args.data_dir.join("replays").display()
        );
    };
    if checkpoint.finished {
        bail!(
            "the replay {name} has finished (it sent {} events); start a new one",
            checkpoint.sent
        );
    }
    let mut plan = checkpoint.plan.clone();
    plan.rate = args.rate.or(plan.rate);
    Ok((plan, file, Some(checkpoint)))
}

fn load(file: &CheckpointFile) -> Result<Option<Checkpoint>> {
    file.load()
        .with_context(|| format!("cannot read {}", file.path().display()))
}

/// The window and filters of the arguments.
fn selection(args: &ReplayArgs) -> Result<Selection> {
    let time = |text: &Option<String>, end_of_day| {
        text.as_deref()
            .map(|t| parse_time(t, end_of_day))
            .transpose()
            .map_err(anyhow::Error::msg)
    };
    Ok(Selection {
        since: time(&args.since, false)?,
        until: time(&args.until, true)?,
        by: match args.by {
            ByName::ReceivedAt => By::ReceivedAt,
            ByName::OccurredAt => By::OccurredAt,
        },
        sources: args.sources.clone(),
        endpoints: args.endpoints.clone(),
        types: args.types.clone(),
        ids: ids(&args.ids)?,
        entity: args.entity.clone(),
    })
}

/// `--id` values, with `@FILE`s read (one id per line; blanks and `#` comments skipped).
fn ids(values: &[String]) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for value in values {
        match value.strip_prefix('@') {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the ids in {path}"))?;
                ids.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                );
            }
            None => ids.push(value.clone()),
        }
    }
    Ok(ids)
}

async fn archive(from: &str) -> Result<Box<dyn Archive>> {
    let url: WarehouseUrl = from
        .parse()
        .map_err(|expected| anyhow::anyhow!("--from {from}: expected {expected}"))?;
    Ok(match url {
        WarehouseUrl::Local(path) => Box::new(LocalArchive::new(path)),
        WarehouseUrl::S3 { bucket, prefix } => {
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let client = okr_aws::s3::S3Sink::client(&config);
            Box::new(S3Archive::new(client, bucket, prefix))
        }
    })
}

/// The data directory's record of what was posted, for a dry run's count (none when
/// `serve` never ran there).
fn done_store(data_dir: &Path) -> Result<Option<Arc<dyn IdempotencyStore>>> {
    let path = okr_local::Paths::new(data_dir).idempotency;
    if !path.exists() {
        return Ok(None);
    }
    let store = SqliteIdempotencyStore::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Some(Arc::new(store)))
}

/// Where the events go: SQS queues given by --queue-url, else the data directory's.
async fn queues(data_dir: &Path, plan: &Plan) -> Result<Box<dyn EventQueue>> {
    if plan.queue_urls.is_empty() {
        let path = okr_local::Paths::new(data_dir).queues;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let queue = SqliteQueue::open(&path)
            .with_context(|| format!("cannot open the queues in {}", path.display()))?;
        return Ok(Box::new(queue));
    }
    let mut urls = QueueUrls {
        warehouse: String::new(),
        slack: String::new(),
        alerts: String::new(),
        progress: String::new(),
        subscriptions: String::new(),
    };
    for pair in &plan.queue_urls {
        let Some((name, url)) = pair.split_once('=') else {
            bail!("--queue-url {pair}: expected CONSUMER=URL, such as slack=https://sqs...");
        };
        match name {
            "warehouse" => urls.warehouse = url.to_owned(),
            "slack" => urls.slack = url.to_owned(),
            "alerts" => urls.alerts = url.to_owned(),
            "progress" => urls.progress = url.to_owned(),
            "subscriptions" => urls.subscriptions = url.to_owned(),
            other => {
                bail!(
                    "--queue-url {pair}: {other} is not slack, alerts, warehouse, progress or subscriptions"
                )
            }
        }
    }
    for target in &plan.targets {
        if urls.get(*target).is_empty() {
            bail!("--to {target} needs --queue-url {target}=URL when the others go to SQS");
        }
    }
    if let Some(name) = &plan.subscription
        && urls.subscriptions.is_empty()
    {
        bail!(
            "--to subscription:{name} needs --queue-url subscriptions=URL (the stack's SubscriptionsQueue)"
        );
    }
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok(Box::new(SqsQueue::new(
        aws_sdk_sqs::Client::new(&config),
        urls,
    )))
}
