//! `okr-webhooks verify`: is this delivery genuine, and if not, the likely causes.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Args;
use http::{HeaderName, HeaderValue};
use okr_core::signature::likely_causes;
use okr_core::{SigningSecret, verify};
use time::OffsetDateTime;

use std::path::Path;

use crate::delivery::{BodyArgs, DEFAULT_DATA_DIR, header_map, parse_header};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    delivery: BodyArgs,
    /// A signing secret; repeat for several (rotation: any may match).
    #[arg(
        long = "secret",
        required = true,
        env = "OKR_WEBHOOKS_SECRET",
        hide_env_values = true
    )]
    secrets: Vec<String>,
    /// A request header as `Name: value`; repeat for several.
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The time to check a signed timestamp against, in Unix seconds (default: now).
    #[arg(long)]
    at: Option<i64>,
}

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    let endpoint = args.delivery.endpoint(Path::new(DEFAULT_DATA_DIR))?;
    let provider = endpoint.provider();
    let body = args.delivery.read_body()?;
    let secrets: Vec<SigningSecret> = args.secrets.into_iter().map(SigningSecret::new).collect();
    let headers = header_map(args.headers);
    let now = match args.at {
        Some(at) => OffsetDateTime::from_unix_timestamp(at)
            .map_err(|_| anyhow!("--at {at} is not a representable Unix time"))?,
        None => OffsetDateTime::now_utc(),
    };
    let mut out = io::stdout().lock();
    let Err(error) = verify(provider, &secrets, &headers, &body, now) else {
        writeln!(out, "valid")?;
        return Ok(ExitCode::SUCCESS);
    };
    writeln!(out, "invalid: {error}")?;
    let causes = likely_causes(provider, &secrets, &headers, &body, now, &error);
    if !causes.is_empty() {
        writeln!(out, "likely causes:")?;
    }
    for cause in causes {
        let mark = if cause.confirmed { "confirmed: " } else { "" };
        writeln!(out, "  - {mark}{}", cause.text)?;
    }
    Ok(ExitCode::from(1))
}
