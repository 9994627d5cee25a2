//! `okr-webhooks stalled`: the stalled check over a data directory, now: what it would
//! send (`--dry-run`) or sent (`--send`), and to whom.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};
use okr_consumers::stalled::{Action, Notice, Route, StalledCheck};
use okr_local::Paths;
use okr_local::config::{LocalConfig, LocalEmail};
use okr_local::directory_sqlite::SqliteDirectory;
use okr_local::progress_sqlite::SqliteProgressStore;
use okr_local::sqlite_store::SqliteIdempotencyStore;
use okr_pipeline::config::process_env;

use crate::serve::AlertingArgs;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["dry_run", "send"])))]
pub struct StalledArgs {
    /// The data directory of `okr-webhooks serve` (its read model and directory).
    #[arg(long, default_value = ".okr-webhooks")]
    data_dir: PathBuf,
    /// Print who would get what; send and record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Send now.
    #[arg(long)]
    send: bool,
    /// The SMTP server for the team leads' email (`smtp://host:port`); default: `.eml`
    /// files in <data-dir>/outbox/.
    #[arg(long, env = "OKR_SMTP_URL")]
    smtp_url: Option<String>,
    #[command(flatten)]
    alerting: AlertingArgs,
}

pub async fn run(args: StalledArgs) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(okr_pipeline::telemetry::filter(
            Some("warn"),
            std::env::var("RUST_LOG").ok().as_deref(),
        ))
        .init();
    if !args.data_dir.is_dir() {
        bail!(
            "{} is not a data directory (start `okr-webhooks serve --data-dir {}` first)",
            args.data_dir.display(),
            args.data_dir.display()
        );
    }
    let env = process_env();
    let mut config = LocalConfig::new(args.alerting.destinations(None), Default::default(), &env)?;
    config.email = LocalEmail::new(args.smtp_url, &env)?;
    let paths = Paths::new(&args.data_dir);
    let open =
        |what: &str, path: &std::path::Path| format!("cannot open the {what} {}", path.display());
    let progress = SqliteProgressStore::open(&paths.progress)
        .with_context(|| open("read model", &paths.progress))?;
    let directory = SqliteDirectory::open(&paths.directory)
        .with_context(|| open("directory", &paths.directory))?;
    let idempotency = SqliteIdempotencyStore::open(&paths.idempotency)
        .with_context(|| open("idempotency store", &paths.idempotency))?;
    let (mailer, line) = okr_local::email::mailer(&args.data_dir, &config.email)?;
    let check: StalledCheck = okr_local::stalled::check(
        &config,
        Arc::new(progress),
        Arc::new(directory),
        Arc::new(idempotency),
        mailer,
    )?;
    let now = time::OffsetDateTime::now_utc();
    let days = config.email.stalled_after.as_secs() / 86_400;
    let notices = check.plan(now).await?;
    println!(
        "{} stalled key result(s) to report (no update for {days} days){}",
        notices.len(),
        if args.dry_run { "; nothing sent" } else { "" }
    );
    for notice in &notices {
        println!("{}", describe(notice, &config));
    }
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let report = okr_local::stalled::run_now(&check).await?;
    println!("{}; email {line}", okr_local::stalled::said(&report));
    Ok(if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `open  KR title (owner John Doe, 20 days) -> Ross Kate <ross.kate@example.com> by email, Slack DM; alerts channel`
fn describe(notice: &Notice, config: &LocalConfig) -> String {
    let title = notice.record.title.as_deref().unwrap_or(&notice.record.id);
    let owner = notice.owner.as_deref().unwrap_or("owner unknown");
    let mut to = Vec::new();
    match &notice.route {
        Route::TeamLead { name, email } => {
            let ways = match (email, config.destinations.slack_bot_token.is_some()) {
                (Some(_), true) => " by email and Slack DM",
                (Some(_), false) => " by email",
                (None, _) => " (no work email: nothing to them)",
            };
            let address = email
                .as_deref()
                .map(|e| format!(" <{e}>"))
                .unwrap_or_default();
            to.push(format!("{name}{address}{ways}"));
        }
        Route::OwnerUnknown => to.push("(owner unknown)".into()),
        Route::OwnerInactive => to.push("(owner no longer active)".into()),
        Route::NoTeamLead => to.push("(no team lead)".into()),
    }
    to.push("the alerts channel".into());
    to.push("PagerDuty".into());
    let action = match notice.action {
        Action::Open => "open",
        Action::Remind => "remind",
        Action::Resolve => "resolve",
    };
    format!(
        "{action}\t{title} (owner {owner}, {} days without an update) -> {}",
        notice.days,
        to.join("; ")
    )
}
