//! `okr-webhooks`: sign, verify and normalize webhook deliveries from the command line.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use http::{HeaderMap, HeaderName, HeaderValue};
use okr_webhooks::local::Outbound;
use okr_webhooks::queue::sqlite::SqliteQueue;
use okr_webhooks::routing::Consumer;
use okr_webhooks::secrets::SigningSecrets;
use okr_webhooks::signature::likely_causes;
use okr_webhooks::{SigningSecret, Source, normalize, sign, verify};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Receive webhooks from OKR and HR tools: offline tools for signatures and events.
#[derive(Debug, Parser)]
#[command(name = "okr-webhooks", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the signature header line(s) SOURCE would send for the body.
    Sign {
        #[command(flatten)]
        delivery: BodyArgs,
        /// The signing secret, as the provider shows it.
        #[arg(long, env = "OKR_WEBHOOKS_SECRET", hide_env_values = true)]
        secret: String,
        /// Standard Webhooks: the webhook-id (default: a random msg_... id).
        #[arg(long)]
        id: Option<String>,
        /// Standard Webhooks: the webhook-timestamp in Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
    },
    /// Check a delivery's signature: prints `valid` (exit 0) or the reason (exit 1).
    Verify {
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
        /// The time to check a Standard Webhooks timestamp against, in Unix seconds (default: now).
        #[arg(long)]
        at: Option<i64>,
    },
    /// Print the normalized event (schema v1) for a delivery's body.
    Normalize {
        #[command(flatten)]
        delivery: BodyArgs,
        /// A request header as `Name: value` (Standard Webhooks' webhook-id gives the event id).
        #[arg(long = "header", short = 'H', value_parser = parse_header)]
        headers: Vec<(HeaderName, HeaderValue)>,
        /// The receive time, RFC 3339 (default: now).
        #[arg(long, value_parser = parse_time)]
        received_at: Option<OffsetDateTime>,
    },
    /// Run the whole pipeline on this machine: ingest, durable queues, Slack, warehouse, alerts.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: std::net::SocketAddr,
        /// Secrets, queues, idempotency records and the warehouse live here.
        #[arg(long, default_value = ".okr-webhooks")]
        data_dir: PathBuf,
        /// The Slack notifier's incoming webhook (default: print the messages).
        #[arg(long, env = "OKR_SLACK_WEBHOOK_URL", hide_env_values = true)]
        slack_webhook_url: Option<String>,
        /// The alerts channel's incoming webhook (default: print the alerts).
        #[arg(long, env = "OKR_ALERTS_SLACK_WEBHOOK_URL", hide_env_values = true)]
        alerts_slack_webhook_url: Option<String>,
        /// A PagerDuty Events API v2 routing key (default: print the events).
        #[arg(long, env = "OKR_PAGERDUTY_ROUTING_KEY", hide_env_values = true)]
        pagerduty_routing_key: Option<String>,
        /// The PagerDuty Events API URL.
        #[arg(long, env = "PAGERDUTY_EVENTS_URL")]
        pagerduty_events_url: Option<String>,
        /// The first retry back-off of a failed message, in milliseconds (doubles each time).
        #[arg(long, default_value_t = 1000, hide = true)]
        retry_base_ms: u64,
    },
    /// Sign FILE with the data directory's secret for SOURCE and POST it to `serve`.
    Send {
        #[command(flatten)]
        delivery: BodyArgs,
        /// Where to post (default: http://127.0.0.1:3000/webhooks/SOURCE).
        #[arg(long)]
        url: Option<String>,
        /// The data directory whose secrets.json signs the delivery.
        #[arg(long, default_value = ".okr-webhooks")]
        data_dir: PathBuf,
    },
    /// The dead-letter queues: list, show or redrive them. Those of `serve` by default;
    /// with --queue-url, one on SQS.
    Dlq {
        /// list: counts and ids; show: the events; redrive: move them back to their queue.
        action: DlqAction,
        /// One local queue (default: all three).
        #[arg(long, conflicts_with = "queue_url")]
        queue: Option<QueueName>,
        /// The data directory of `serve`.
        #[arg(long, default_value = ".okr-webhooks", conflicts_with = "queue_url")]
        data_dir: PathBuf,
        /// An SQS dead-letter queue's URL (the stack's *DeadLetterQueueUrl outputs),
        /// reached with the usual AWS credentials, region and AWS_ENDPOINT_URL.
        #[arg(long)]
        queue_url: Option<String>,
    },
    /// Print an API Gateway HTTP API (payload 2.0) request event for the body, signed
    /// when --secret is given: input for `cargo lambda invoke ingest --data-file`.
    ApigwRequest {
        #[command(flatten)]
        delivery: BodyArgs,
        /// Sign with this secret (omit for an unsigned request).
        #[arg(long, env = "OKR_WEBHOOKS_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Standard Webhooks: the webhook-id (default: a random msg_... id).
        #[arg(long)]
        id: Option<String>,
        /// Standard Webhooks: the webhook-timestamp in Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// The HTTP method.
        #[arg(long, default_value = "POST")]
        method: http::Method,
        /// The path's source segment, when it should differ from --source.
        #[arg(long)]
        path_source: Option<String>,
        /// Send the body base64-encoded (`isBase64Encoded: true`).
        #[arg(long)]
        base64: bool,
        /// The raw query string.
        #[arg(long, default_value = "")]
        query: String,
        /// An extra request header as `Name: value`; repeat for several.
        #[arg(long = "header", short = 'H', value_parser = parse_header)]
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DlqAction {
    List,
    Show,
    Redrive,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum QueueName {
    Slack,
    Warehouse,
    Alerts,
}

impl QueueName {
    fn consumers(queue: Option<QueueName>) -> Vec<Consumer> {
        match queue {
            Some(QueueName::Slack) => vec![Consumer::Slack],
            Some(QueueName::Warehouse) => vec![Consumer::Warehouse],
            Some(QueueName::Alerts) => vec![Consumer::Alerts],
            None => Consumer::ALL.to_vec(),
        }
    }
}

#[derive(Debug, Args)]
struct BodyArgs {
    /// The provider: peoplelogic, peopleforce, perscom or standard.
    #[arg(long, short = 's')]
    source: Source,
    /// The body file; standard input when absent or `-`.
    file: Option<PathBuf>,
}

impl BodyArgs {
    fn read_body(&self) -> Result<Vec<u8>> {
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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let _ = writeln!(io::stderr(), "{}", one_line(&error.render().to_string()));
            return ExitCode::from(2);
        }
    };
    match run(cli.command) {
        Ok(code) => code,
        // `okr-webhooks normalize ... | head`: the reader left; nothing to report.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, never a backtrace; a closed stderr is not worth a panic.
            let _ = writeln!(io::stderr(), "error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve {
            addr,
            data_dir,
            slack_webhook_url,
            alerts_slack_webhook_url,
            pagerduty_routing_key,
            pagerduty_events_url,
            retry_base_ms,
        } => {
            let outbound = Outbound {
                slack_webhook_url,
                alerts_slack_webhook_url,
                pagerduty_routing_key,
                pagerduty_events_url,
                retry_base: Some(std::time::Duration::from_millis(retry_base_ms)),
            };
            return runtime()?.block_on(serve(addr, data_dir, outbound));
        }
        Command::Send {
            delivery,
            url,
            data_dir,
        } => return runtime()?.block_on(send(delivery, url, data_dir)),
        Command::Dlq {
            action,
            queue_url: Some(url),
            ..
        } => return runtime()?.block_on(sqs_dlq(action, url)),
        Command::Dlq {
            action,
            queue,
            data_dir,
            queue_url: None,
        } => return runtime()?.block_on(dlq(action, queue, data_dir)),
        _ => {}
    }
    let mut out = io::stdout().lock();
    match command {
        Command::Serve { .. } | Command::Send { .. } | Command::Dlq { .. } => Ok(ExitCode::SUCCESS),
        Command::Sign {
            delivery,
            secret,
            id,
            timestamp,
        } => {
            let body = delivery.read_body()?;
            let headers = signed(delivery.source, secret, &body, id, timestamp)?;
            for (name, value) in headers {
                writeln!(out, "{name}: {value}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            delivery,
            secrets,
            headers,
            at,
        } => {
            let body = delivery.read_body()?;
            let secrets: Vec<SigningSecret> = secrets.into_iter().map(SigningSecret::new).collect();
            let headers = header_map(headers);
            let now = match at {
                Some(at) => OffsetDateTime::from_unix_timestamp(at)
                    .map_err(|_| anyhow!("--at {at} is not a representable Unix time"))?,
                None => OffsetDateTime::now_utc(),
            };
            match verify(delivery.source, &secrets, &headers, &body, now) {
                Ok(()) => {
                    writeln!(out, "valid")?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    writeln!(out, "invalid: {error}")?;
                    let causes =
                        likely_causes(delivery.source, &secrets, &headers, &body, now, &error);
                    if !causes.is_empty() {
                        writeln!(out, "likely causes:")?;
                    }
                    for cause in causes {
                        let mark = if cause.confirmed { "confirmed: " } else { "" };
                        writeln!(out, "  - {mark}{}", cause.text)?;
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::ApigwRequest {
            delivery,
            secret,
            id,
            timestamp,
            method,
            path_source,
            base64,
            query,
            headers,
        } => {
            let body = delivery.read_body()?;
            let mut all_headers = vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                (
                    "user-agent".to_owned(),
                    format!("{}-webhooks", delivery.source),
                ),
            ];
            if let Some(secret) = secret {
                let headers = signed(delivery.source, secret, &body, id, timestamp)?;
                all_headers.extend(
                    headers
                        .into_iter()
                        .map(|(name, value)| (name.to_ascii_lowercase(), value)),
                );
            }
            for (name, value) in headers {
                all_headers.push((name.as_str().to_owned(), value.to_str()?.to_owned()));
            }
            let source = path_source.unwrap_or_else(|| delivery.source.to_string());
            let event = apigw_request(&method, &source, &query, &all_headers, &body, base64)?;
            serde_json::to_writer_pretty(&mut out, &event)?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Normalize {
            delivery,
            headers,
            received_at,
        } => {
            let body = delivery.read_body()?;
            let received_at = received_at.unwrap_or_else(OffsetDateTime::now_utc);
            let event = normalize(delivery.source, &header_map(headers), &body, received_at)?;
            serde_json::to_writer_pretty(&mut out, &event)?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn serve(
    addr: std::net::SocketAddr,
    data_dir: PathBuf,
    outbound: Outbound,
) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(okr_webhooks::telemetry::filter(
            Some("info"),
            std::env::var("RUST_LOG").ok().as_deref(),
        ))
        .init();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let shutdown = async {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match terminate.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! { _ = interrupt => {}, _ = term => {} }
        }
        #[cfg(not(unix))]
        let _ = interrupt.await;
        let _ = writeln!(
            io::stderr(),
            "stopping: finishing the requests and batches in flight"
        );
    };
    let announce = |line: String| {
        let _ = writeln!(io::stderr(), "{line}");
    };
    announce(format!(
        "listening on http://{addr} (POST /webhooks/{{source}}, GET /healthz)"
    ));
    okr_webhooks::local::serve(&data_dir, listener, outbound, shutdown, announce).await?;
    Ok(ExitCode::SUCCESS)
}

async fn send(delivery: BodyArgs, url: Option<String>, data_dir: PathBuf) -> Result<ExitCode> {
    let body = delivery.read_body()?;
    let path = okr_webhooks::local::Paths::new(&data_dir).secrets;
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (start `okr-webhooks serve` once to create it)",
            path.display()
        )
    })?;
    let secrets = SigningSecrets::parse(&text)?;
    let secret = secrets
        .for_source(delivery.source)
        .first()
        .ok_or_else(|| anyhow!("{} has no {} secret", path.display(), delivery.source))?;
    let headers = signed(
        delivery.source,
        secret.expose().to_owned(),
        &body,
        None,
        None,
    )?;
    let url = url.unwrap_or_else(|| format!("http://127.0.0.1:3000/webhooks/{}", delivery.source));
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
    let answer: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
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

async fn dlq(action: DlqAction, queue: Option<QueueName>, data_dir: PathBuf) -> Result<ExitCode> {
    let path = okr_webhooks::local::Paths::new(&data_dir).queues;
    if !path.exists() {
        bail!(
            "no queues at {} (run `okr-webhooks serve` first)",
            path.display()
        );
    }
    let queues = SqliteQueue::open(&path)?;
    let mut out = io::stdout().lock();
    for consumer in QueueName::consumers(queue) {
        match action {
            DlqAction::List => {
                let dead = queues.dead_letters(consumer).await?;
                writeln!(out, "{consumer}: {} dead letter(s)", dead.len())?;
                for letter in dead {
                    writeln!(
                        out,
                        "  {} {} {} received {} times",
                        letter.message_id, letter.event_id, letter.event_type, letter.receive_count
                    )?;
                }
            }
            DlqAction::Show => {
                for letter in queues.dead_letters(consumer).await? {
                    writeln!(out, "{}", letter.body)?;
                }
            }
            DlqAction::Redrive => {
                let moved = queues.redrive(consumer).await?;
                writeln!(
                    out,
                    "{consumer}: moved {moved} message(s) back to the queue"
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `dlq --queue-url`: the same actions on an SQS dead-letter queue.
async fn sqs_dlq(action: DlqAction, url: String) -> Result<ExitCode> {
    use aws_config::{BehaviorVersion, Region};
    use okr_webhooks::queue::sqs_dlq::{LIST_LIMIT, SqsDeadLetterQueue, queue_name};

    // The queue's own region (https://sqs.REGION.amazonaws.com/...), else the configured one.
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region_in(&url) {
        loader = loader.region(Region::new(region));
    }
    let config = loader.load().await;
    let queue = SqsDeadLetterQueue::new(aws_sdk_sqs::Client::new(&config), &url);
    let name = queue.name().to_owned();
    let mut out = io::stdout().lock();
    match action {
        DlqAction::List => {
            queue.sources().await?;
            let depth = queue.depth().await?;
            let letters = queue.list(depth).await?;
            writeln!(out, "{name}: {depth} dead letter(s)")?;
            for letter in &letters {
                writeln!(
                    out,
                    "  {} {} {} received {} times",
                    letter.message_id, letter.event_id, letter.event_type, letter.receive_count
                )?;
            }
            if letters.len() == LIST_LIMIT {
                writeln!(out, "  (the first {LIST_LIMIT} shown)")?;
            }
        }
        DlqAction::Show => {
            queue.sources().await?;
            for letter in queue.list(queue.depth().await?).await? {
                writeln!(out, "{}", letter.body)?;
            }
        }
        DlqAction::Redrive => {
            let done = queue
                .redrive(std::time::Duration::from_secs(1), |moved| {
                    let _ = writeln!(io::stderr(), "{name}: moving, {moved} so far");
                })
                .await?;
            let to: Vec<&str> = done.to.iter().map(|url| queue_name(url)).collect();
            writeln!(
                out,
                "{name}: moved {} message(s) back to {}",
                done.moved,
                to.join(", ")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The region in an SQS queue URL `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`.
fn region_in(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let mut labels = host.split('.');
    (labels.next()? == "sqs")
        .then(|| labels.next().map(str::to_owned))
        .flatten()
}

/// The signature headers for `body`; Standard Webhooks' id and timestamp default to a
/// random id and now.
fn signed(
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

/// An API Gateway HTTP API payload 2.0 request event, shaped like the ones AWS sends.
fn apigw_request(
    method: &http::Method,
    source: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    base64: bool,
) -> Result<serde_json::Value> {
    use base64::Engine;
    let body = match base64 {
        true => base64::engine::general_purpose::STANDARD.encode(body),
        false => {
            String::from_utf8(body.to_vec()).context("a body that is not UTF-8 needs --base64")?
        }
    };
    let path = format!("/webhooks/{source}");
    let now = OffsetDateTime::now_utc();
    let mut event = serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/{source}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect::<serde_json::Map<String, serde_json::Value>>(),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "okrwebhooks",
            "domainName": "okrwebhooks.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "okrwebhooks",
            "http": {
                "method": method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": format!("{source}-webhooks"),
            },
            "requestId": format!("req-{}", &random_message_id()[4..16]),
            "routeKey": "POST /webhooks/{source}",
            "stage": "$default",
            "time": now.format(&time::format_description::well_known::Rfc2822)?,
            "timeEpoch": now.unix_timestamp() * 1000,
        },
        "pathParameters": {"source": source},
        "isBase64Encoded": base64,
    });
    if !body.is_empty() {
        event["body"] = body.into();
    }
    Ok(event)
}

/// A clap error's message without its usage block, on one line.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let kind = error
        .downcast_ref::<io::Error>()
        .map(io::Error::kind)
        .or_else(|| {
            error
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
        });
    kind == Some(io::ErrorKind::BrokenPipe)
}

fn header_map(headers: Vec<(HeaderName, HeaderValue)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(name, value);
    }
    map
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue)> {
    let Some((name, value)) = text.split_once(':') else {
        bail!("expected `Name: value`");
    };
    let name = HeaderName::try_from(name.trim()).map_err(|_| anyhow!("invalid header name"))?;
    let value = HeaderValue::try_from(value.trim()).map_err(|_| anyhow!("invalid header value"))?;
    Ok((name, value))
}

fn parse_time(text: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| anyhow!("expected an RFC 3339 time"))
}

/// A fresh Standard Webhooks message id, like the official libraries make.
fn random_message_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("msg_{}", hex::encode(bytes))
}
