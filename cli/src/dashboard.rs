//! `okr-webhooks dashboard`: the live progress dashboard of a deployed stack, on this
//! machine's loopback, reading the stack's DynamoDB read model with the user's own AWS
//! credentials.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use okr_aws::directory_dynamodb::DynamoDbDirectory;
use okr_aws::progress_dynamodb::DynamoDbProgressStore;
use okr_consumers::directory::DirectoryStore;
use okr_consumers::progress::ProgressStore;

use crate::stack::{DIRECTORY_OUTPUT, PROGRESS_OUTPUT as TABLE_OUTPUT};

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// The read model's DynamoDB table (the stack's ProgressTableName output).
    #[arg(long, required_unless_present = "stack", conflicts_with = "stack")]
    table: Option<String>,
    /// A deployed stack's name: its ProgressTableName output is the table.
    #[arg(long)]
    stack: Option<String>,
    /// Where to serve the page: a loopback address (it reads with your credentials).
    #[arg(long, default_value = "127.0.0.1:3001")]
    addr: SocketAddr,
    /// How often to look for changes (the table's by-written-at index), in milliseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(200..=60_000))]
    poll_ms: u64,
}

pub async fn run(args: DashboardArgs) -> Result<ExitCode> {
    if !args.addr.ip().is_loopback() {
        bail!(
            "--addr {}: the dashboard command serves on loopback only (it reads the table with your AWS credentials); use serve --dashboard-token to share a dashboard",
            args.addr
        );
    }
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (table, directory_table) = match (args.table, args.stack) {
        (Some(table), _) => (table, None),
        (None, Some(stack)) => (
            crate::stack::output(&aws, &stack, TABLE_OUTPUT).await?,
            // A stack from before the directory has none: owners are shown as sent.
            crate::stack::output(&aws, &stack, DIRECTORY_OUTPUT)
                .await
                .ok(),
        ),
        (None, None) => bail!("give --table or --stack"),
    };
    let directory: Option<Arc<dyn DirectoryStore>> = directory_table.map(|table| {
        Arc::new(DynamoDbDirectory::new(
            aws_sdk_dynamodb::Client::new(&aws),
            table,
        )) as Arc<dyn DirectoryStore>
    });
    let store: Arc<dyn ProgressStore> = Arc::new(DynamoDbProgressStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &table,
    ));
    // Read once before serving, so a missing table or permission is said now.
    let records = store
        .all()
        .await
        .map_err(|e| anyhow::anyhow!(okr_core::error_chain(&e)))
        .with_context(|| format!("cannot read the table {table} (it needs dynamodb:Scan and dynamodb:Query on it and its by-written-at index)"))?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let _ = writeln!(
        io::stderr(),
        "dashboard of {table} ({} objectives and key results): http://{}/dashboard",
        records.len(),
        args.addr
    );
    okr_local::dashboard::serve_alone(
        store,
        directory,
        listener,
        Duration::from_millis(args.poll_ms),
        crate::serve::shutdown(),
    )
    .await
    .context("the dashboard server failed")?;
    Ok(ExitCode::SUCCESS)
}
