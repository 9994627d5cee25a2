//! `okr-webhooks sign`: the signature header line(s) a source would send.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::delivery::{BodyArgs, signed};

#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    delivery: BodyArgs,
    /// The signing secret, as the provider shows it.
    #[arg(long, env = "OKR_WEBHOOKS_SECRET", hide_env_values = true)]
    secret: String,
    /// The webhook-id, for a scheme that signs one (default: a random msg_... id).
    #[arg(long)]
    id: Option<String>,
    /// The webhook-timestamp in Unix seconds, for a scheme that signs one (default: now).
    #[arg(long)]
    timestamp: Option<i64>,
}

pub fn run(args: SignArgs) -> Result<ExitCode> {
    let body = args.delivery.read_body()?;
    let headers = signed(
        args.delivery.source,
        args.secret,
        &body,
        args.id,
        args.timestamp,
    )?;
    let mut out = io::stdout().lock();
    for (name, value) in headers {
        writeln!(out, "{name}: {value}")?;
    }
    Ok(ExitCode::SUCCESS)
}
