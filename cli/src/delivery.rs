//! What the delivery commands share: the body argument, request headers, and signing.

use std::io::{self, Read};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use http::{HeaderMap, HeaderName, HeaderValue};
use okr_core::{SigningSecret, Source, sign};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A delivery's source and body.
#[derive(Debug, Args)]
pub struct BodyArgs {
    /// The provider, by its name in `/webhooks/<name>` (docs/providers.md).
    #[arg(long, short = 's')]
    pub source: Source,
    /// The body file; standard input when absent or `-`.
    file: Option<PathBuf>,
}

impl BodyArgs {
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

/// The signature headers for `body`; a signed delivery id and timestamp default to a
/// random id and now.
pub fn signed(
    source: Source,
    secret: String,
    body: &[u8],
    id: Option<String>,
    timestamp: Option<i64>,
) -> Result<Vec<(&'static str, String)>> {
    let id = id.unwrap_or_else(random_message_id);
    let timestamp = timestamp.unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
    Ok(sign(
        source,
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
