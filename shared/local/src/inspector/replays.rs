//! `POST /api/replays`: the page's retry of one event to one consumer, and its re-send
//! of everything a filter matches, both as a replay of the warehouse (the archive) into
//! `serve`'s queues: gap-filling, so the consumers' own idempotency decides (Slack skips
//! what it posted; the alerts judge the update against each key result's state), and a
//! retry clicked twice posts once. `dry_run` counts first. A replay from the page reaches
//! back 14 days at most, inside the 15 days Slack remembers its posts for (older
//! events: `okr-webhooks replay`), runs to its end even if the page is closed, and
//! leaves no checkpoint behind.
//!
//! Cross-site requests are refused: a page on another site can make a browser send a
//! form or a plain `fetch` to loopback, but not one with a JSON body (that needs a CORS
//! preflight, which `serve` never answers), nor hide its `Origin`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::dashboard::error;
use okr_consumers::replay::archive::LocalArchive;
use okr_consumers::replay::checkpoint::CheckpointFile;
use okr_consumers::replay::select::{Selection, parse_time};
use okr_consumers::replay::{Plan, ReplayError, Summary, Target, replay as run_replay};
use okr_core::routing::{Consumer, NotifyRules};
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::queue::EventQueue;

/// What the page's replays read and write: `serve`'s own.
pub struct Replays {
    data_dir: PathBuf,
    archive: PathBuf,
    queue: Arc<dyn EventQueue>,
    done: Arc<dyn IdempotencyStore>,
    rules: NotifyRules,
    /// One replay at a time: a second click waits for the first.
    running: tokio::sync::Mutex<()>,
}

impl Replays {
    /// Replays of the warehouse at `archive` into `queue`, with their checkpoints in
    /// `data_dir`, counting Slack's posts from `done`, routing by `rules`.
    pub fn new(
        data_dir: PathBuf,
        archive: PathBuf,
        queue: Arc<dyn EventQueue>,
        done: Arc<dyn IdempotencyStore>,
        rules: NotifyRules,
    ) -> Self {
        Replays {
            data_dir,
            archive,
            queue,
            done,
            rules,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Run `plan` (or count it), one at a time, and remove its checkpoint once done.
    async fn run(&self, plan: &Plan, dry_run: bool) -> Result<Summary, ReplayError> {
        let _one_at_a_time = self.running.lock().await;
        let archive = LocalArchive::new(&self.archive);
        let checkpoint = CheckpointFile::new(&self.data_dir, &plan.name);
        let target = match dry_run {
            true => Target::DryRun(Some(self.done.as_ref())),
            false => Target::Queues {
                queue: self.queue.as_ref(),
                checkpoint: &checkpoint,
            },
        };
        let ran = run_replay(plan, &self.rules, &archive, target, None, &mut |_| {}).await;
        if ran.is_ok() {
            // Nothing to resume: the page's replays are one request each.
            let _ = std::fs::remove_file(checkpoint.path());
        }
        ran
    }
}

/// How far back the page may send again: inside Slack's 15 days of posts remembered.
const REACH: time::Duration = time::Duration::days(14);

/// What to send again, and where.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayRequest {
    /// `slack`, `alerts` or `progress`.
    to: String,
    /// These events only (one, for a retry).
    #[serde(default)]
    ids: Vec<String>,
    /// This endpoint's events only.
    endpoint: Option<String>,
    /// This type's only (a glob such as `key_result.*`).
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Received from this time on (RFC 3339, or a date).
    since: Option<String>,
    /// Received before this time.
    until: Option<String>,
    /// Count, send nothing.
    #[serde(default)]
    dry_run: bool,
}

impl ReplayRequest {
    /// The consumer and the selection it asks for at `now`, or what is wrong with it.
    fn plan(&self, now: time::OffsetDateTime) -> Result<(Consumer, Selection), &'static str> {
        let to = match self.to.as_str() {
            "slack" => Consumer::Slack,
            "alerts" => Consumer::Alerts,
            "progress" => Consumer::Progress,
            _ => {
                return Err(
                    "to: slack, alerts or progress (the warehouse is the archive a replay reads)",
                );
            }
        };
        let time = |text: &Option<String>, end: bool| match text.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => parse_time(text, end).map(Some),
        };
        let since = time(&self.since, false)
            .map_err(|_| "since: an RFC 3339 time or a date, such as 2026-12-06")?;
        if since.is_some_and(|since| since < now - REACH) {
            return Err(
                "since: within the last 14 days (Slack remembers its posts for 15); older events: okr-webhooks replay",
            );
        }
        let since = Some(since.unwrap_or(now - REACH));
        let until = time(&self.until, true)
            .map_err(|_| "until: an RFC 3339 time or a date, such as 2026-12-06")?;
        if self.ids.len() > 1000 || self.ids.iter().any(|id| id.is_empty() || id.len() > 100) {
            return Err("ids: at most 1000 event ids");
        }
        let nonempty = |v: &Option<String>| v.iter().filter(|s| !s.is_empty()).cloned().collect();
        Ok((
            to,
            Selection {
                since,
                until,
                endpoints: nonempty(&self.endpoint),
                types: nonempty(&self.event_type),
                ids: self.ids.clone(),
                ..Selection::default()
            },
        ))
    }
}

/// A new replay's name: `page-`, the time and a random part.
fn name() -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    format!("page-{stamp}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

pub(super) async fn replay(State(replays): State<Arc<Replays>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<ReplayRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_replay",
            "a JSON object: to, and any of ids, endpoint, type, since, until, dry_run",
        );
    };
    let (to, selection) = match request.plan(time::OffsetDateTime::now_utc()) {
        Ok(plan) => plan,
        Err(problem) => return error(StatusCode::BAD_REQUEST, "invalid_replay", problem),
    };
    let plan = Plan {
        subscription: None,
        name: name(),
        selection,
        targets: vec![to],
        all_types: false,
        force: false,
        rate: None,
        archive: replays.archive.display().to_string(),
        queue_urls: Vec::new(),
    };
    // In a task of its own: a page closed halfway does not stop the sends halfway.
    let dry_run = request.dry_run;
    let task = {
        let plan = plan.clone();
        tokio::spawn(async move { replays.run(&plan, dry_run).await })
    };
    let Ok(ran) = task.await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "replay_failed",
            "the replay stopped; try again",
        );
    };
    match ran {
        Ok(summary) => {
            if !request.dry_run {
                tracing::info!(replay = %plan.name, to = %to, sent = summary.sent, "replay from the deliveries page");
            }
            let body = serde_json::json!({
                "name": plan.name,
                "to": to.as_str(),
                "dry_run": request.dry_run,
                "selected": summary.selected,
                "sent": summary.sent,
                "already_posted": summary.already_posted,
                "not_routed": summary.not_routed,
            });
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        Err(ReplayError::Archive(failure)) => {
            tracing::warn!(error = %okr_core::error_chain(&failure), "the page's replay could not read the warehouse");
            error(
                StatusCode::CONFLICT,
                "no_archive",
                "the warehouse holds no events yet (or cannot be read): nothing to send again",
            )
        }
        Err(failure) => {
            tracing::error!(error = %okr_core::error_chain(&failure), "the page's replay failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "replay_failed",
                "the queues or the checkpoint could not be written; try again",
            )
        }
    }
}

/// Refuse what a page on another site could have sent: a body that is not JSON, a
/// request from another origin.
pub(super) async fn same_origin(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_required",
            "send a JSON body with content-type application/json",
        );
    }
    if !from_this_origin(headers) {
        return error(
            StatusCode::FORBIDDEN,
            "cross_site",
            "only the pages of this server may send events again",
        );
    }
    next.run(request).await
}

/// Whether the browser says the request comes from this server's own pages (or from
/// no page at all, as from curl).
fn from_this_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site"))
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }
        (Some(_), None) => false,
    }
}
