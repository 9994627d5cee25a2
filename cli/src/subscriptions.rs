//! `okr-webhooks subscriptions`: list the services that take our events, add one (its
//! `whsec_` secret printed once), send one a signed sample, switch one on or off.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use http::HeaderMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use okr_consumers::subscriptions::{Health, clear_health, health};
use okr_core::endpoints::Endpoint;
use okr_core::subscriptions::{Auth, Subscription, SubscriptionSecret, payload, sign};
use okr_core::{Source, normalize};
use okr_local::Paths;
use okr_local::sqlite_store::SqliteIdempotencyStore;
use okr_local::subscriptions_file::SubscriptionsFile;
use okr_pipeline::outbound::subscriber::AGENT;

use crate::delivery::DEFAULT_DATA_DIR;

/// The sample `test` sends: the Peoplelogic objective completed of the seeds.
const SAMPLE: &[u8] = include_bytes!("../../events/bodies/peoplelogic/objective_completed.json");

#[derive(Debug, Args)]
pub struct SubscriptionsArgs {
    #[command(subcommand)]
    command: SubscriptionsCommand,
    /// The data directory: its subscriptions.json and subscription-secrets.json.
    #[arg(long, default_value = DEFAULT_DATA_DIR, global = true)]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum SubscriptionsCommand {
    /// Each subscription: its URL, filters, and whether it is on.
    List,
    /// Add a subscription and print its whsec_ signing secret (shown once).
    Add {
        /// Its name (a-z, 0-9, - and _).
        name: String,
        /// Where events are posted: https://, or http:// to 127.0.0.1.
        #[arg(long)]
        url: String,
        /// Event types it takes, glob patterns (objective.*,employee.created); all if none.
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// Endpoints whose events it takes (peoplelogic,peopleforce); all if none.
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
        /// Entity kinds it takes (objective,key_result,employee); all if none.
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
        /// HTTP Basic credentials the receiver asks for, USER:PASSWORD.
        #[arg(long, conflicts_with = "bearer")]
        basic: Option<String>,
        /// A bearer token the receiver asks for.
        #[arg(long)]
        bearer: Option<String>,
        /// At most this many posts a second, as N or N/s.
        #[arg(long)]
        rate: Option<String>,
        /// Send the whole event, with the provider's body (birth dates, personal emails):
        /// by default a receiver gets what the Slack queue gets.
        #[arg(long)]
        full_event: bool,
    },
    /// Send the subscription a signed sample event now and print its answer.
    Test {
        /// The subscription.
        name: String,
    },
    /// Switch a subscription on again, forgetting its failures.
    Enable {
        /// The subscription.
        name: String,
        /// A deployed stack's name instead: forget the subscription's failures and its
        /// switching off in the stack's table (the document is the stack's secret).
        #[arg(long)]
        stack: Option<String>,
    },
    /// Switch a subscription off: its events are skipped until it is enabled.
    Disable {
        /// The subscription.
        name: String,
    },
}

pub async fn run(args: SubscriptionsArgs) -> Result<ExitCode> {
    let paths = Paths::new(&args.data_dir);
    let file = SubscriptionsFile::new(&paths.subscriptions);
    let mut out = io::stdout().lock();
    match args.command {
        SubscriptionsCommand::List => list(&file, &paths, &mut out).await,
        SubscriptionsCommand::Add {
            name,
            url,
            types,
            endpoints,
            kinds,
            basic,
            bearer,
            rate,
            full_event,
        } => {
            let rate_per_second = rate.as_deref().map(parse_rate).transpose()?;
            let auth = match (&basic, &bearer) {
                (Some(pair), _) if !pair.contains(':') => {
                    bail!("--basic: expected USER:PASSWORD")
                }
                (Some(_), _) => Some(Auth::Basic),
                (_, Some(_)) => Some(Auth::Bearer),
                _ => None,
            };
            let subscription = Subscription {
                types,
                endpoints,
                kinds,
                auth,
                rate_per_second,
                full_event,
                ..Subscription::to(url)
            };
            let secret = SubscriptionSecret {
                signing: vec![okr_core::subscriptions::new_secret(rand::random())],
                basic,
                bearer,
            };
            // A subscription of an earlier one's name starts afresh (not switched off
            // by the other's 410).
            if file
                .load()
                .map_err(|e| anyhow!(e))?
                .subscriptions
                .contains_key(&name)
            {
                bail!("there is already a subscription named {name}");
            }
            let store = store(&paths)?;
            clear_health(&store, &name).await.map_err(|e| anyhow!(e))?;
            file.add(&name, &subscription, &secret)
                .map_err(|e| anyhow!(e))?;
            writeln!(
                out,
                "added subscription {name} in {}",
                file.path().display()
            )?;
            writeln!(
                out,
                "signing secret (shown once; give it to the receiving team):"
            )?;
            writeln!(out, "{}", secret.signing[0])?;
            Ok(ExitCode::SUCCESS)
        }
        SubscriptionsCommand::Test { name } => test(&file, &name, &mut out).await,
        SubscriptionsCommand::Enable {
            name,
            stack: Some(stack),
        } => {
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let table =
                crate::stack::output(&aws, &stack, crate::stack::IDEMPOTENCY_OUTPUT).await?;
            let store = okr_aws::dynamodb::DynamoDbIdempotencyStore::new(
                aws_sdk_dynamodb::Client::new(&aws),
                &table,
            );
            let was_off = health(&store, &name)
                .await
                .map_err(|e| anyhow!(e))?
                .disabled;
            clear_health(&store, &name).await.map_err(|e| anyhow!(e))?;
            match was_off {
                Some(off) => writeln!(out, "{name}: on (it was off: {})", off.why)?,
                None => writeln!(out, "{name}: not switched off by its failures")?,
            }
            writeln!(
                out,
                "a subscription switched off by hand is on again with \"enabled\": true in {stack}/subscriptions"
            )?;
            Ok(ExitCode::SUCCESS)
        }
        SubscriptionsCommand::Enable { name, stack: None } => {
            // Its failures forgotten first: the document says on only once they are.
            let store = store(&paths)?;
            file.load()
                .map_err(|e| anyhow!(e))?
                .subscriptions
                .get(&name)
                .ok_or_else(|| anyhow!("there is no subscription named {name}"))?;
            let was_off = health(&store, &name)
                .await
                .map_err(|e| anyhow!(e))?
                .disabled
                .is_some();
            clear_health(&store, &name).await.map_err(|e| anyhow!(e))?;
            let switched = file.set_enabled(&name, true).map_err(|e| anyhow!(e))?;
            match switched || was_off {
                true => writeln!(out, "{name}: on")?,
                false => writeln!(out, "{name}: on already")?,
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriptionsCommand::Disable { name } => {
            match file.set_enabled(&name, false).map_err(|e| anyhow!(e))? {
                true => writeln!(out, "{name}: off")?,
                false => writeln!(out, "{name}: off already")?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `url` without its query, which may carry a token.
fn without_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.query().is_some() => {
            parsed.set_query(None);
            format!("{parsed}?…")
        }
        _ => url.to_owned(),
    }
}

/// `N` or `N/s`, at least 1.
fn parse_rate(text: &str) -> Result<u32> {
    text.trim()
        .trim_end_matches("/s")
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| anyhow!("--rate {text}: expected a number of posts a second, such as 10/s"))
}

fn store(paths: &Paths) -> Result<SqliteIdempotencyStore> {
    if let Some(dir) = paths.idempotency.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    SqliteIdempotencyStore::open(&paths.idempotency)
        .with_context(|| format!("cannot open {}", paths.idempotency.display()))
}

async fn list(file: &SubscriptionsFile, paths: &Paths, out: &mut impl Write) -> Result<ExitCode> {
    let document = file.load().map_err(|e| anyhow!(e))?;
    if document.subscriptions.is_empty() {
        writeln!(
            out,
            "no subscriptions in {} (add one with `okr-webhooks subscriptions add`)",
            file.path().display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let store = store(paths)?;
    for (name, subscription) in &document.subscriptions {
        let state = health(&store, name)
            .await
            .unwrap_or_else(|_| Health::default());
        let status = match (&state.disabled, subscription.enabled, state.failing_since) {
            (Some(off), _, _) => format!("off ({})", off.why),
            (None, false, _) => "off".to_owned(),
            (None, true, Some(since)) => format!(
                "on, failing since {}",
                OffsetDateTime::from_unix_timestamp(since)
                    .ok()
                    .and_then(|at| at.format(&Rfc3339).ok())
                    .unwrap_or_default()
            ),
            (None, true, None) => "on".to_owned(),
        };
        let all = |list: &[String]| match list.is_empty() {
            true => "all".to_owned(),
            false => list.join(","),
        };
        let auth = match subscription.auth {
            Some(Auth::Basic) => " auth=basic",
            Some(Auth::Bearer) => " auth=bearer",
            None => "",
        };
        let rate = subscription
            .rate_per_second
            .map(|r| format!(" rate={r}/s"))
            .unwrap_or_default();
        let full = if subscription.full_event {
            " full-event"
        } else {
            ""
        };
        writeln!(
            out,
            "{name}  {}  {status}  types={} endpoints={} kinds={}{auth}{rate}{full}",
            without_query(&subscription.url),
            all(&subscription.types),
            all(&subscription.endpoints),
            all(&subscription.kinds),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Sign the sample as the consumer signs every post, send it, print the answer; exit 1
/// when the receiver did not take it.
async fn test(file: &SubscriptionsFile, name: &str, out: &mut impl Write) -> Result<ExitCode> {
    let document = file.load().map_err(|e| anyhow!(e))?;
    let subscription = document
        .subscriptions
        .get(name)
        .ok_or_else(|| anyhow!("there is no subscription named {name}"))?;
    let secrets = file.load_secrets().map_err(|e| anyhow!(e))?;
    let secret = secrets
        .get(name)
        .ok_or_else(|| anyhow!("{name} has no signing secret in its secrets document"))?;
    let authorization = secret
        .authorization(subscription.auth)
        .map_err(|reason| anyhow!("{name}: {reason}"))?;
    let now = OffsetDateTime::now_utc();
    let endpoint = Endpoint::of_source(Source::PEOPLELOGIC).context("no peoplelogic")?;
    let mut event = normalize(&endpoint, &HeaderMap::new(), SAMPLE, now)
        .map_err(|e| anyhow!("the sample does not normalize: {e}"))?;
    event.id = format!("test_{:016x}", rand::random::<u64>());
    let body = payload(subscription, &event)?;
    let signed = sign(&secret.signing, &event.id, now.unix_timestamp(), &body)
        .map_err(|reason| anyhow!("{name}: {reason}"))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut request = client
        .post(&subscription.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, AGENT)
        .body(body);
    for (header, value) in &signed {
        request = request.header(*header, value);
    }
    if let Some(authorization) = authorization {
        request = request.header(http::header::AUTHORIZATION, authorization);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            writeln!(
                out,
                "sent {} ({}): no answer: {}",
                event.id,
                event.event_type,
                error.without_url()
            )?;
            return Ok(ExitCode::from(1));
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    writeln!(
        out,
        "sent {} ({}): {status} {text}",
        event.id, event.event_type
    )?;
    Ok(match status.is_success() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}
