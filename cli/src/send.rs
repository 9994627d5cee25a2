//! `okr-webhooks send`: sign a body with the data directory's secret and POST it to
//! `serve`, as the provider would.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use okr_core::signing::SigningSecrets;
use serde_json::Value;

use crate::delivery::{BodyArgs, signed};

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    delivery: BodyArgs,
    /// Where to post (default: http://127.0.0.1:3000/webhooks/ENDPOINT).
    #[arg(long)]
    url: Option<String>,
    /// The data directory whose secrets.json signs the delivery.
    #[arg(long, default_value = ".okr-webhooks")]
    data_dir: PathBuf,
}

pub async fn run(args: SendArgs) -> Result<ExitCode> {
    let endpoint = args.delivery.endpoint(&args.data_dir)?;
    let name = endpoint.name();
    let body = args.delivery.read_body()?;
    let secret = first_secret(&args.data_dir, name)?;
    let (headers, body) = signed(&endpoint, secret, &body, None, None)?;
    let url = args
        .url
        .unwrap_or_else(|| format!("http://127.0.0.1:3000/webhooks/{name}"));
    let mut request = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| anyhow!("cannot reach {url}: {}", e.without_url()))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let detail = answer["event_id"]
        .as_str()
        .or(answer["message"].as_str())
        .unwrap_or("");
    let duplicate = if answer["duplicate"] == true {
        " (duplicate)"
    } else {
        ""
    };
    writeln!(io::stdout(), "{} {detail}{duplicate}", status.as_u16())?;
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The first signing secret for the endpoint `source` in the data directory's
/// `secrets.json`.
fn first_secret(data_dir: &std::path::Path, source: okr_core::Source) -> Result<String> {
    let path = okr_local::Paths::new(data_dir).secrets;
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (start `okr-webhooks serve` once to create it)",
            path.display()
        )
    })?;
    let secrets = SigningSecrets::parse(&text)?;
    let secret = secrets
        .for_endpoint(source)
        .first()
        .ok_or_else(|| anyhow!("{} has no {source} secret", path.display()))?;
    Ok(secret.expose().to_owned())
}
