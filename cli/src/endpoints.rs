//! `okr-webhooks endpoints`: list the endpoints of a data directory, add one bound to a
//! preset or a scheme, try one with a body, and re-arm one whose secret a handshake
//! hands over.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use http::HeaderMap;
use serde_json::Value;
use time::OffsetDateTime;

use okr_core::endpoints::Endpoint;
use okr_core::signature::sign_delivery;
use okr_core::signing::{SigningSecret, SigningSecrets};
use okr_core::{Source, VerifyError, normalize, verify};
use okr_local::Paths;
use okr_local::secrets_file::{EndpointsFile, FileSecretStore};

use crate::delivery::{DEFAULT_DATA_DIR, endpoints_at, header_map};

#[derive(Debug, Args)]
pub struct EndpointsArgs {
    #[command(subcommand)]
    command: EndpointsCommand,
    /// The data directory: its endpoints.json and secrets.json.
    #[arg(long, default_value = DEFAULT_DATA_DIR, global = true)]
    data_dir: PathBuf,
    /// Where `serve` listens, for the payload URLs printed.
    #[arg(long, default_value = "http://127.0.0.1:3000", global = true)]
    base_url: String,
}

#[derive(Debug, Subcommand)]
enum EndpointsCommand {
    /// Each endpoint: its payload URL, preset or scheme, and whether it has a secret.
    List,
    /// Add an endpoint bound to a preset (--preset) or a scheme (--scheme-file), write
    /// it to endpoints.json and print its payload URL and where its secret goes.
    Add {
        /// The endpoint's name: its URL is /webhooks/NAME.
        name: String,
        /// A preset: a built-in source or a tool written as data (docs/providers.md).
        #[arg(
            long,
            conflicts_with = "scheme_file",
            required_unless_present = "scheme_file"
        )]
        preset: Option<String>,
        /// A JSON file holding a scheme object (docs/writing-a-scheme.md).
        #[arg(long)]
        scheme_file: Option<PathBuf>,
        /// A JSON file holding a mapping object (with --scheme-file, or a data preset).
        #[arg(long)]
        mapping_file: Option<PathBuf>,
    },
    /// Sign FILE with the endpoint's scheme (its secret from secrets.json, or a
    /// throwaway one), verify it, and print the normalized event.
    Test {
        /// The endpoint.
        name: String,
        /// The body.
        file: PathBuf,
    },
    /// Forget the endpoint's secret, so that the next handshake (Asana's X-Hook-Secret)
    /// is accepted and kept.
    Rearm {
        /// The endpoint.
        name: String,
    },
}

pub fn run(args: EndpointsArgs) -> Result<ExitCode> {
    let paths = Paths::new(&args.data_dir);
    let base = args.base_url.trim_end_matches('/');
    let mut out = io::stdout().lock();
    match args.command {
        EndpointsCommand::List => {
            let endpoints = endpoints_at(&paths.endpoints)?;
            let secrets = read_secrets(&paths.secrets)?;
            for endpoint in endpoints.iter() {
                let name = endpoint.name();
                let count = secrets.as_ref().map_or(0, |s| s.for_endpoint(name).len());
                let secret = match (count, endpoint.provider().handshake_header()) {
                    (0, Some(header)) => format!("awaiting its handshake ({header})"),
                    (0, None) => "no secret (accepts nothing)".to_owned(),
                    (1, _) => "1 secret".to_owned(),
                    (n, _) => format!("{n} secrets (rotation)"),
                };
                writeln!(
                    out,
                    "{name}\t{base}/webhooks/{name}\t{}\t{secret}",
                    endpoint.binding()
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        EndpointsCommand::Add {
            name,
            preset,
            scheme_file,
            mapping_file,
        } => {
            let mut entry = serde_json::Map::new();
            if let Some(preset) = preset {
                entry.insert("preset".into(), Value::String(preset));
            }
            if let Some(file) = scheme_file {
                entry.insert("scheme".into(), read_json(&file)?);
            }
            if let Some(file) = mapping_file {
                entry.insert("mapping".into(), read_json(&file)?);
            }
            let endpoints = EndpointsFile::new(&paths.endpoints)
                .add(&name, Value::Object(entry))
                .map_err(|reason| anyhow!("{reason}"))?;
            let endpoint = endpoints
                .get(&name)
                .ok_or_else(|| anyhow!("{name} was not added"))?;
            let (_, added) = FileSecretStore::open_or_create(&paths.secrets, &endpoints)
                .with_context(|| format!("cannot write {}", paths.secrets.display()))?;
            let provider = endpoint.provider();
            let (place, secret) = provider.setup();
            writeln!(
                out,
                "added {name} ({}) to {}",
                endpoint.binding(),
                paths.endpoints.display()
            )?;
            writeln!(
                out,
                "payload URL: {base}/webhooks/{name}, pasted into {place}"
            )?;
            match (
                provider.handshake_header(),
                added.contains(&endpoint.name()),
            ) {
                (Some(header), _) => writeln!(
                    out,
                    "secret: {header} hands it over on the first request; it is kept in {}",
                    paths.secrets.display()
                )?,
                (None, true) => writeln!(
                    out,
                    "secret: {secret} goes in {} as \"{name}\" (a random one is there now: \
                     replace it, or give that one to the tool if it lets you set its own)",
                    paths.secrets.display()
                )?,
                (None, false) => writeln!(
                    out,
                    "secret: {} already has one for \"{name}\"",
                    paths.secrets.display()
                )?,
            }
            writeln!(out, "serve picks the new endpoint up within 5 seconds")?;
            Ok(ExitCode::SUCCESS)
        }
        EndpointsCommand::Test { name, file } => {
            let endpoints = endpoints_at(&paths.endpoints)?;
            let endpoint = endpoints
                .get(&name)
                .or_else(|| Source::named(&name).ok().and_then(Endpoint::of_source))
                .ok_or_else(|| {
                    anyhow!(
                        "unknown endpoint {name}: not in {} ({})",
                        paths.endpoints.display(),
                        endpoints.names()
                    )
                })?;
            let body =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let secret = read_secrets(&paths.secrets)?
                .and_then(|s| s.for_endpoint(endpoint.name()).first().cloned())
                .unwrap_or_else(|| {
                    SigningSecret::new(endpoint.provider().new_secret(rand::random()))
                });
            let now = OffsetDateTime::now_utc();
            let (headers, body) = sign_delivery(
                endpoint.provider(),
                &secret,
                &body,
                &crate::delivery::random_message_id(),
                now.unix_timestamp(),
            )?;
            let map: HeaderMap = header_map(
                headers
                    .iter()
                    .map(|(name, value)| {
                        Ok((
                            http::HeaderName::from_bytes(name.as_bytes())?,
                            http::HeaderValue::from_str(value)?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?,
            );
            for (name, value) in &headers {
                writeln!(out, "{name}: {}", shorten(value))?;
            }
            let check = |at| {
                verify(
                    endpoint.provider(),
                    std::slice::from_ref(&secret),
                    &map,
                    &body,
                    at,
                )
            };
            match check(now) {
                Ok(()) => writeln!(out, "verified")?,
                // A timestamp the body carries (Linear's) is the sample's own: check at it.
                Err(VerifyError::TimestampOutOfTolerance { skew, .. })
                    if now
                        .checked_add(time::Duration::seconds(skew))
                        .is_some_and(|at| check(at).is_ok()) =>
                {
                    writeln!(
                        out,
                        "verified (at the body's own timestamp, {} s from now: a live delivery must be fresh)",
                        skew
                    )?
                }
                Err(error) => bail!("the signed body does not verify: {error}"),
            }
            let event = normalize(&endpoint, &map, &body, now)?;
            serde_json::to_writer_pretty(&mut out, &event)?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        EndpointsCommand::Rearm { name } => {
            let endpoints = endpoints_at(&paths.endpoints)?;
            let endpoint = endpoints
                .get(&name)
                .ok_or_else(|| anyhow!("unknown endpoint {name} ({})", endpoints.names()))?;
            if endpoint.provider().handshake_header().is_none() {
                bail!(
                    "{name} has no handshake: its secret is set in {}",
                    paths.secrets.display()
                );
            }
            let had = FileSecretStore::forget(&paths.secrets, endpoint.name())
                .with_context(|| format!("cannot write {}", paths.secrets.display()))?;
            match had {
                true => writeln!(
                    out,
                    "{name}: its secret is forgotten; the next handshake is kept"
                )?,
                false => writeln!(out, "{name}: it had no secret; the next handshake is kept")?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_json(file: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

fn read_secrets(path: &Path) -> Result<Option<SigningSecrets>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            SigningSecrets::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?,
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// A signature cut to a few characters: enough to compare, not to reuse.
fn shorten(value: &str) -> String {
    match value.char_indices().nth(16) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value.to_owned(),
    }
}
