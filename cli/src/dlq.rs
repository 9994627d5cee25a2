//! `okr-webhooks dlq`: list, show or redrive dead-letter queues: `serve`'s by default,
//! or one on SQS with --queue-url. Both are [`DeadLetters`]: one code path, one output.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use okr_aws::sqs_dlq::SqsDeadLetterQueue;
use okr_core::routing::Consumer;
use okr_local::sqlite_queue::{LocalDeadLetters, SqliteQueue};
use okr_pipeline::queue::dead_letters::{DeadLetters, Listing};

use crate::QueueName;

#[derive(Debug, Args)]
pub struct DlqArgs {
    /// list: counts and ids; show: the events; redrive: move them back to their queue.
    action: Action,
    /// One local queue (default: all three).
    #[arg(long, conflicts_with = "queue_url")]
    queue: Option<QueueName>,
    /// The data directory of `serve`.
    #[arg(long, default_value = ".okr-webhooks", conflicts_with = "queue_url")]
    data_dir: PathBuf,
    /// An SQS dead-letter queue's URL (the stack's *DeadLetterQueueUrl outputs),
    /// reached with the usual AWS credentials, region and AWS_ENDPOINT_URL.
    #[arg(long)]
    queue_url: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Action {
    List,
    Show,
    Redrive,
}

pub async fn run(args: DlqArgs) -> Result<ExitCode> {
    let queues = match &args.queue_url {
        Some(url) => vec![sqs(url).await],
        None => local(&args)?,
    };
    for queue in queues {
        match args.action {
            Action::List => list(queue.as_ref()).await?,
            Action::Show => show(queue.as_ref()).await?,
            Action::Redrive => redrive(queue.as_ref()).await?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `serve`'s dead-letter queues: the one named, or all three.
fn local(args: &DlqArgs) -> Result<Vec<Box<dyn DeadLetters>>> {
    let path = okr_local::Paths::new(&args.data_dir).queues;
    if !path.exists() {
        bail!(
            "no queues at {} (run `okr-webhooks serve` first)",
            path.display()
        );
    }
    let queue = Arc::new(SqliteQueue::open(&path)?);
    let consumers = match args.queue {
        Some(name) => vec![Consumer::from(name)],
        None => Consumer::ALL.to_vec(),
    };
    Ok(consumers
        .into_iter()
        .map(|consumer| -> Box<dyn DeadLetters> {
            Box::new(LocalDeadLetters::new(Arc::clone(&queue), consumer))
        })
        .collect())
}

/// The SQS dead-letter queue at `url`, in its own region
/// (`https://sqs.REGION.amazonaws.com/...`), else the configured one.
async fn sqs(url: &str) -> Box<dyn DeadLetters> {
    use aws_config::{BehaviorVersion, Region};
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region_in(url) {
        loader = loader.region(Region::new(region));
    }
    let config = loader.load().await;
    Box::new(SqsDeadLetterQueue::new(
        aws_sdk_sqs::Client::new(&config),
        url,
    ))
}

async fn list(queue: &dyn DeadLetters) -> Result<()> {
    let listing = queue.list().await?;
    let mut out = io::stdout().lock();
    writeln!(out, "{}: {} dead letter(s)", queue.name(), listing.total)?;
    for letter in &listing.letters {
        writeln!(
            out,
            "  {} {} {} received {} times",
            letter.message_id, letter.event_id, letter.event_type, letter.receive_count
        )?;
    }
    if let Some(note) = partial(&listing) {
        writeln!(out, "  {note}")?;
    }
    Ok(())
}

async fn show(queue: &dyn DeadLetters) -> Result<()> {
    let listing = queue.list().await?;
    let mut out = io::stdout().lock();
    for letter in &listing.letters {
        writeln!(out, "{}", letter.body)?;
    }
    if let Some(note) = partial(&listing) {
        writeln!(io::stderr(), "{}: {note}", queue.name())?;
    }
    Ok(())
}

/// `(the first N shown)`, when the listing holds fewer than the queue.
fn partial(listing: &Listing) -> Option<String> {
    let shown = listing.letters.len();
    ((shown as u64) < listing.total).then(|| format!("(the first {shown} shown)"))
}

async fn redrive(queue: &dyn DeadLetters) -> Result<()> {
    let name = queue.name().to_owned();
    let progress = move |moved: u64| {
        let _ = writeln!(io::stderr(), "{name}: moving, {moved} so far");
    };
    let done = queue.redrive(&progress).await?;
    writeln!(
        io::stdout(),
        "{}: moved {} message(s) back to {}",
        queue.name(),
        done.moved,
        done.to.join(", ")
    )?;
    Ok(())
}

/// The region in an SQS queue URL `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`.
fn region_in(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let mut labels = host.split('.');
    (labels.next()? == "sqs")
        .then(|| labels.next().map(str::to_owned))
        .flatten()
}
