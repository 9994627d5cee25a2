//! `okr-webhooks replay`: re-send archived events (the warehouse) to the consumers'
//! queues, `serve`'s or SQS's, by window and filter, at a set rate, resumable.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use okr_webhooks::config::{QueueUrls, process_env};
use okr_webhooks::idempotency::IdempotencyStore;
use okr_webhooks::idempotency::sqlite::SqliteIdempotencyStore;
use okr_webhooks::queue::EventQueue;
use okr_webhooks::queue::sqlite::SqliteQueue;
use okr_webhooks::queue::sqs::SqsQueue;
use okr_webhooks::replay::archive::{Archive, LocalArchive, S3Archive};
use okr_webhooks::replay::checkpoint::CheckpointFile;
use okr_webhooks::replay::select::{By, Selection, parse_time};
use okr_webhooks::replay::{Plan, Progress, Summary, Target, check_name, replay};
use okr_webhooks::routing::{Consumer, NotifyRules};
use okr_webhooks::warehouse::WarehouseUrl;

use crate::QueueName;

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
    /// Only events of this source (repeatable).
    #[arg(long = "source")]
    sources: Vec<String>,
    /// Only events of this type, a glob such as `key_result.*` (repeatable).
    #[arg(long = "type")]
    types: Vec<String>,
    /// Only this event id, or @FILE of ids one per line (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Only events about this objective or key result id.
    #[arg(long)]
    entity: Option<String>,
    /// Where to send: slack, alerts or warehouse (repeatable); routed as ingest routes.
    #[arg(long = "to", value_enum, required_unless_present = "resume")]
    to: Vec<QueueName>,
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
        "from", "since", "until", "sources", "types", "ids", "entity", "to",
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
    let rules: NotifyRules = okr_webhooks::config::notify_rules(&process_env());
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

/// The plan: from the arguments, or from the checkpoint of the replay to resume.
fn plan(
    args: &ReplayArgs,
) -> Result<(
    Plan,
    CheckpointFile,
    Option<okr_webhooks::replay::checkpoint::Checkpoint>,
)> {
    if let Some(name) = &args.resume {
        check_name(name).map_err(anyhow::Error::msg)?;
        let file = CheckpointFile::new(&args.data_dir, name);
        let Some(checkpoint) = file
            .load()
            .with_context(|| format!("cannot read {}", file.path().display()))?
        else {
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
        return Ok((plan, file, Some(checkpoint)));
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
        && let Some(previous) = file
            .load()
            .with_context(|| format!("cannot read {}", file.path().display()))?
        && !previous.finished
    {
        bail!(
            "the replay {name} was interrupted: --resume {name} to go on, or choose another --name"
        );
    }
    let mut targets: Vec<Consumer> = args.to.iter().map(|t| Consumer::from(*t)).collect();
    targets.sort();
    targets.dedup();
    let selection = Selection {
        since: args
            .since
            .as_deref()
            .map(|t| parse_time(t, false))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        until: args
            .until
            .as_deref()
            .map(|t| parse_time(t, true))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        by: match args.by {
            ByName::ReceivedAt => By::ReceivedAt,
            ByName::OccurredAt => By::OccurredAt,
        },
        sources: args.sources.clone(),
        types: args.types.clone(),
        ids: ids(&args.ids)?,
        entity: args.entity.clone(),
    };
    let archive = match &args.from {
        Some(from) => from.clone(),
        None => okr_webhooks::local::Paths::new(&args.data_dir)
            .warehouse
            .display()
            .to_string(),
    };
    let plan = Plan {
        name,
        selection,
        targets,
        all_types: args.all_types,
        force: args.force,
        rate: args.rate,
        archive,
        queue_urls: args.queue_urls.clone(),
    };
    Ok((plan, file, None))
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
            let client = okr_webhooks::warehouse::s3::S3Sink::client(&config);
            Box::new(S3Archive::new(client, bucket, prefix))
        }
    })
}

/// The data directory's record of what was posted, for a dry run's count (none when
/// `serve` never ran there).
fn done_store(data_dir: &Path) -> Result<Option<Arc<dyn IdempotencyStore>>> {
    let path = okr_webhooks::local::Paths::new(data_dir).idempotency;
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
        let path = okr_webhooks::local::Paths::new(data_dir).queues;
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
    };
    for pair in &plan.queue_urls {
        let Some((name, url)) = pair.split_once('=') else {
            bail!("--queue-url {pair}: expected CONSUMER=URL, such as slack=https://sqs...");
        };
        match name {
            "warehouse" => urls.warehouse = url.to_owned(),
            "slack" => urls.slack = url.to_owned(),
            "alerts" => urls.alerts = url.to_owned(),
            other => bail!("--queue-url {pair}: {other} is not slack, alerts or warehouse"),
        }
    }
    for target in &plan.targets {
        if urls.get(*target).is_empty() {
            bail!("--to {target} needs --queue-url {target}=URL when the others go to SQS");
        }
    }
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok(Box::new(SqsQueue::new(
        aws_sdk_sqs::Client::new(&config),
        urls,
    )))
}

/// Progress on stderr: a bar (objects, with the rate and an ETA) on a terminal, a line
/// every 5 s otherwise.
struct Display {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last: Instant,
}

impl Display {
    fn new(name: &str) -> Self {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} objects, {msg}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-");
            bar.set_style(style);
            bar.set_prefix(name.to_owned());
            bar
        });
        Display {
            name: name.to_owned(),
            bar,
            started: Instant::now(),
            last: Instant::now(),
        }
    }

    fn show(&mut self, progress: Progress) {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = progress.sent as f64 / elapsed;
        match &self.bar {
            Some(bar) => {
                bar.set_length(progress.objects as u64);
                bar.set_position(progress.done as u64);
                bar.set_message(format!("{} events, {rate:.0}/s", progress.sent));
            }
            None if self.last.elapsed() >= Duration::from_secs(5) => {
                self.last = Instant::now();
                let left = progress.objects.saturating_sub(progress.done);
                let eta = elapsed / progress.done.max(1) as f64 * left as f64;
                let _ = writeln!(
                    io::stderr(),
                    "{}: {} events, {rate:.0}/s, {}/{} objects, ETA {eta:.0} s",
                    self.name,
                    progress.sent,
                    progress.done,
                    progress.objects
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What it came to, on stdout.
fn report(
    plan: &Plan,
    summary: &Summary,
    dry_run: bool,
    checkpoint: &CheckpointFile,
) -> Result<()> {
    let mut out = io::stdout().lock();
    let targets: Vec<&str> = plan.targets.iter().map(|t| t.as_str()).collect();
    let to = targets.join(", ");
    if dry_run {
        writeln!(
            out,
            "dry run of {}: would send {} event(s) to {to}",
            plan.name, summary.sent
        )?;
        writeln!(
            out,
            "  {} object(s) in the window, {} event(s) selected, {} copies, {} for none of {to}",
            summary.objects, summary.selected, summary.copies, summary.not_routed
        )?;
        if plan.targets.contains(&Consumer::Slack) {
            let skipped = match (plan.queue_urls.is_empty(), plan.force) {
                (false, _) => "not counted (the notifier's records are in DynamoDB)".to_owned(),
                (true, true) => format!(
                    "{} (under this replay's name: the notifier skips them)",
                    summary.already_posted
                ),
                (true, false) => format!(
                    "{} (posted already: the notifier skips them)",
                    summary.already_posted
                ),
            };
            writeln!(out, "  already posted to Slack: {skipped}")?;
        }
        writeln!(
            out,
            "  day         source       type                              events"
        )?;
        for ((day, source, event_type), count) in &summary.by_day {
            writeln!(out, "  {day:<11} {source:<12} {event_type:<33} {count}")?;
        }
    } else {
        writeln!(
            out,
            "replay {}: sent {} event(s) to {to} ({} selected, {} copies skipped, {} for none of them)",
            plan.name, summary.sent, summary.selected, summary.copies, summary.not_routed
        )?;
        if summary.already_queued > 0 {
            writeln!(
                out,
                "  {} message(s) were queued by this replay before and are not queued again",
                summary.already_queued
            )?;
        }
        writeln!(out, "  checkpoint: {}", checkpoint.path().display())?;
    }
    if summary.bad_lines > 0 {
        writeln!(out, "{} line(s) are not events:", summary.bad_lines)?;
        for (key, line) in &summary.bad_places {
            match line {
                0 => writeln!(
                    out,
                    "  {key}: its gzip stream breaks (the lines before were taken)"
                )?,
                line => writeln!(out, "  {key} line {line}")?,
            }
        }
    }
    Ok(())
}
