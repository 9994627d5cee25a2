//! `okr-webhooks sign`: the signature header line(s) an endpoint's tool would send.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use std::path::Path;

use crate::delivery::{BodyArgs, DEFAULT_DATA_DIR, signed};

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
    let endpoint = args.delivery.endpoint(Path::new(DEFAULT_DATA_DIR))?;
    let body = args.delivery.read_body()?;
    let (headers, signed_body) = signed(&endpoint, args.secret, &body, args.id, args.timestamp)?;
    let mut out = io::stdout().lock();
    for (name, value) in headers {
        writeln!(out, "{name}: {value}")?;
    }
    if signed_body != body {
        // The scheme carries its signature in the body: print the body that holds it.
        writeln!(out)?;
        out.write_all(&signed_body)?;
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}
