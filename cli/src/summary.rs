//! `okr-webhooks summary`: the managers' summaries from a data directory's read model,
//! printed (`--dry-run`) or sent now (`--send`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};
use okr_consumers::email::render::moment;
use okr_consumers::email::schedule::{date_in, to_offset};
use okr_local::Paths;
use okr_local::config::LocalEmail;
use okr_local::email::{RECIPIENTS_FILE, mailer, recipients, send_now, summaries};
use okr_local::progress_sqlite::SqliteProgressStore;
use okr_local::sqlite_store::SqliteIdempotencyStore;
use okr_pipeline::config::process_env;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["dry_run", "send"])))]
pub struct SummaryArgs {
    /// The data directory of `okr-webhooks serve` (its read model and recipients file).
    #[arg(long, default_value = ".okr-webhooks")]
    data_dir: PathBuf,
    /// Print what each recipient would get; send and record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Send each recipient's summary now.
    #[arg(long)]
    send: bool,
    /// The SMTP server (`smtp://host:port`, `?tls=required` for STARTTLS); default:
    /// `.eml` files in <data-dir>/outbox/.
    #[arg(long, env = "OKR_SMTP_URL")]
    smtp_url: Option<String>,
}

pub async fn run(args: SummaryArgs) -> Result<ExitCode> {
    // Each recipient's outcome (by id, never by address) and a refusal's reason.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(okr_pipeline::telemetry::filter(
            Some("info"),
            std::env::var("RUST_LOG").ok().as_deref(),
        ))
        .init();
    let email = LocalEmail::new(args.smtp_url, &process_env())?;
    let Some(recipients) = recipients(&args.data_dir).await? else {
        bail!(
            "no recipients: write {} first (see docs/email.md)",
            args.data_dir.join(RECIPIENTS_FILE).display()
        );
    };
    let paths = Paths::new(&args.data_dir);
    let progress = SqliteProgressStore::open(&paths.progress)
        .with_context(|| format!("cannot open {}", paths.progress.display()))?;
    let idempotency = SqliteIdempotencyStore::open(&paths.idempotency)
        .with_context(|| format!("cannot open {}", paths.idempotency.display()))?;
    let (mailer, line) = mailer(&args.data_dir, &email)?;
    let directory = okr_local::directory_sqlite::SqliteDirectory::open(&paths.directory)
        .with_context(|| format!("cannot open {}", paths.directory.display()))?;
    let summaries = summaries(
        Arc::new(progress),
        Arc::new(directory),
        Arc::new(idempotency),
        recipients,
        mailer,
        &email,
    );
    if args.dry_run {
        let at = to_offset(&chrono::Local::now());
        let emails = summaries.preview(at, date_in(at, &chrono::Local)).await?;
        println!(
            "{} summaries, up to {} (nothing sent)",
            emails.len(),
            moment(at)
        );
        for (_, window, email) in emails {
            // Each recipient's covers the time since the last summary they were sent.
            let since = window.previous.map_or(
                "the start (no summary was sent to them before)".to_owned(),
                moment,
            );
            println!(
                "\n---\nTo: {}\nCovering: {since} to {}\nSubject: {}\n\n{}",
                email.to,
                moment(window.until),
                email.subject,
                email.text
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = send_now(&summaries).await?;
    println!(
        "{} sent, {} sent before, {} refused, {} failed (of {} recipients), {line}",
        report.sent, report.already_sent, report.refused, report.failed, report.recipients
    );
    Ok(if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
