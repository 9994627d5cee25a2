//! What the delivery commands share: the body argument, request headers, and signing.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use http::{HeaderMap, HeaderName, HeaderValue};
use okr_core::endpoints::{Endpoint, Endpoints};
use okr_core::providers::{preset_names, provider};
use okr_core::signature::sign_delivery;
use okr_core::{SigningSecret, Source};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The data directory the commands use by default.
pub const DEFAULT_DATA_DIR: &str = ".okr-webhooks";

/// A delivery's endpoint and body.
#[derive(Debug, Args)]
pub struct BodyArgs {
    /// The endpoint, by its name in `/webhooks/<name>`: one in the endpoints document, or
    /// a built-in source or preset (docs/providers.md). `--source` is the same.
    #[arg(
        long = "endpoint",
        short = 'e',
        visible_alias = "source",
        short_alias = 's'
    )]
    pub endpoint: String,
    /// The endpoints document that declares it (default: <data-dir>/endpoints.json,
    /// when there is one).
    #[arg(long = "endpoints")]
    pub endpoints_file: Option<PathBuf>,
    /// The body file; standard input when absent or `-`.
    file: Option<PathBuf>,
}

/// The endpoints document at `file`, or the built-in endpoints when there is none.
pub fn endpoints_at(file: &Path) -> Result<Endpoints> {
    match std::fs::read_to_string(file) {
        Ok(text) => Endpoints::parse(&text).map_err(|e| anyhow!("{}: {e}", file.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Endpoints::builtin()),
        Err(e) => Err(anyhow!("cannot read {}: {e}", file.display())),
    }
}

impl BodyArgs {
    /// The endpoint named, from the endpoints document (`--endpoints`, else
    /// `<data_dir>/endpoints.json`) or a preset of that name.
    pub fn endpoint(&self, data_dir: &Path) -> Result<Endpoint> {
        let file = self
            .endpoints_file
            .clone()
            .unwrap_or_else(|| data_dir.join("endpoints.json"));
        if self.endpoints_file.is_some() && !file.exists() {
            bail!("cannot read {}: no such file", file.display());
        }
        let endpoints = endpoints_at(&file)?;
        if let Some(endpoint) = endpoints.get(&self.endpoint) {
            return Ok(endpoint);
        }
        Source::named(&self.endpoint)
            .ok()
            .filter(|source| provider(*source).is_some())
            .and_then(Endpoint::of_source)
            .ok_or_else(|| {
                anyhow!(
                    "unknown endpoint {}: not in {} ({}) nor a preset ({})",
                    self.endpoint,
                    file.display(),
                    endpoints.names(),
                    preset_names().join(", ")
                )
            })
    }

    /// The body, from the file or standard input.
    pub fn read_body(&self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        match self.file.as_deref() {
            Some(path) if path.as_os_str() != "-" => {
                body = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
            }
            _ => {
                io::stdin()
                    .read_to_end(&mut body)
                    .context("cannot read standard input")?;
            }
        }
        Ok(body)
    }
}

/// The signature headers for `body`, and the body to send (the same, unless the
/// scheme carries its signature in the body); a signed delivery id and timestamp
/// default to a random id and now.
pub fn signed(
    endpoint: &Endpoint,
    secret: String,
    body: &[u8],
    id: Option<String>,
    timestamp: Option<i64>,
) -> Result<(okr_core::signature::SignatureHeaders, Vec<u8>)> {
    let id = id.unwrap_or_else(random_message_id);
    let timestamp = timestamp.unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
    Ok(sign_delivery(
        endpoint.provider(),
        &SigningSecret::new(secret),
        body,
        &id,
        timestamp,
    )?)
}

/// A fresh `msg_...` delivery id, as webhook libraries make them.
pub fn random_message_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("msg_{}", hex::encode(bytes))
}

/// `--header` values as a header map.
pub fn header_map(headers: Vec<(HeaderName, HeaderValue)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(name, value);
    }
    map
}

/// Parse `Name: value`.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue)> {
    let Some((name, value)) = text.split_once(':') else {
        bail!("expected `Name: value`");
    };
    let name = HeaderName::try_from(name.trim()).map_err(|_| anyhow!("invalid header name"))?;
    let value = HeaderValue::try_from(value.trim()).map_err(|_| anyhow!("invalid header value"))?;
    Ok((name, value))
}

/// Parse an RFC 3339 time.
pub fn parse_time(text: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| anyhow!("expected an RFC 3339 time"))
}
