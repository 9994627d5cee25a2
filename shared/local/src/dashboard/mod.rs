//! The live progress dashboard and the progress API, over a read model store: served
//! by `serve` beside the webhook routes, and by the `dashboard` command for an AWS
//! deployment's DynamoDB table.
//!
//! - `GET /dashboard`: the page (its script at `/dashboard.js`; nothing from any other
//!   host, which its Content-Security-Policy also forbids). `GET /` redirects there.
//! - `GET /api/progress`: a page of records as JSON, or `?format=csv` (see
//!   [`okr_consumers::progress::query::Query`] for the filters).
//! - `GET /api/progress/stream`: Server-Sent Events, one `entity` event per record written.
//!
//! Access: [`Access::Open`] on loopback; otherwise a token, as `Authorization: Bearer`
//! or `?token=`, compared in constant time.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query as UrlQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;

use okr_consumers::directory::{Directory, DirectoryStore};
use okr_consumers::progress::ProgressStore;
use okr_consumers::progress::feed::Feed;
use okr_consumers::progress::query::{Query, to_csv};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("dashboard.js");
/// Nothing but this host: no CDN, font or image from anywhere else.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Who may read the dashboard and the API.
#[derive(Clone)]
pub enum Access {
    /// Anyone who can reach it: bound to loopback.
    Open,
    /// Holders of this token.
    Token(Arc<str>),
    /// Nobody: bound beyond loopback without a token configured.
    Closed,
}

impl Access {
    /// The access for a server bound to `addr` with `token` configured.
    pub fn for_addr(addr: std::net::SocketAddr, token: Option<&str>) -> Access {
        match token.filter(|t| !t.is_empty()) {
            Some(token) => Access::Token(token.into()),
            None if addr.ip().is_loopback() => Access::Open,
            None => Access::Closed,
        }
    }
}

#[derive(Clone)]
struct Dashboard {
    store: Arc<dyn ProgressStore>,
    directory: Option<Arc<dyn DirectoryStore>>,
    feed: Feed,
}

/// The dashboard's and the API's routes over `store`, live from `feed`.
pub fn router(
    store: Arc<dyn ProgressStore>,
    directory: Option<Arc<dyn DirectoryStore>>,
    feed: Feed,
    access: Access,
) -> Router {
    let guarded = Router::new()
        .route("/dashboard", get(page))
        .route("/api/progress", get(progress))
        .route("/api/progress/stream", get(stream))
        .layer(middleware::from_fn_with_state(access, check_access))
        .with_state(Dashboard {
            store,
            directory,
            feed,
        });
    Router::new()
        .route("/", get(to_dashboard))
        .route("/dashboard.js", get(script))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .merge(guarded)
}

pub(crate) async fn check_access(
    State(access): State<Access>,
    request: Request,
    next: Next,
) -> Response {
    let expected = match &access {
        // Open to this machine only: a page elsewhere whose name it rebinds to 127.0.0.1
        // (DNS rebinding) sends its own name as the Host, and is refused.
        Access::Open if is_local_host(request.headers()) => return next.run(request).await,
        Access::Open => {
            return error(
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                "open on loopback: ask for it as 127.0.0.1, localhost or [::1]",
            );
        }
        Access::Token(token) => token,
        Access::Closed => {
            return error(
                StatusCode::UNAUTHORIZED,
                "dashboard_token_required",
                "serve is bound beyond loopback: start it with --dashboard-token (or OKR_DASHBOARD_TOKEN) to open the dashboard and the API",
            );
        }
    };
    let given = bearer(request.headers()).or_else(|| query_token(request.uri()));
    let matches =
        given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())));
    if !matches {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the dashboard token as `Authorization: Bearer <token>` or `?token=<token>`",
        );
    }
    next.run(request).await
}

/// Whether the request names this machine: `Host` is `127.x.x.x`, `localhost` or
/// `[::1]`, with any port.
fn is_local_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().map(|ip| format!("[{ip}]")),
        None => host.split(':').next().map(str::to_owned),
    };
    match name.as_deref() {
        Some("localhost" | "[::1]") => true,
        Some(name) => name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

fn query_token(uri: &axum::http::Uri) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TokenOnly {
        token: Option<String>,
    }
    let UrlQuery(parsed) = UrlQuery::<TokenOnly>::try_from_uri(uri).ok()?;
    parsed.token
}

async fn to_dashboard(request: Request) -> Response {
    let target = match request.uri().query() {
        Some(query) => format!("/dashboard?{query}"),
        None => "/dashboard".to_owned(),
    };
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, target)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::SEE_OTHER.into_response())
}

async fn page() -> Response {
    typed("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    typed("text/javascript; charset=utf-8", SCRIPT)
}

pub(crate) fn typed(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn progress(
    State(dashboard): State<Dashboard>,
    query: Result<UrlQuery<Query>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(UrlQuery(query)) = query else {
        return invalid_query(
            "unknown parameter or value: see source, status, rule, kind (objective, key_result), q, department, team_lead, sort (key, behind, updated, title), include_deleted, offset, limit, format (json, csv)",
        );
    };
    let records = match dashboard.store.all().await {
        Ok(records) => records,
        Err(failure) => {
            tracing::error!(error = %okr_core::error_chain(&failure), "could not read the read model");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the read model could not be read; try again",
            );
        }
    };
    if let Some(problem) = query.problem() {
        return invalid_query(problem);
    }
    let people = match &dashboard.directory {
        Some(directory) => match okr_consumers::directory::load(directory.as_ref()).await {
            Ok(people) => people,
            Err(failure) => {
                tracing::error!(error = %okr_core::error_chain(&failure), "could not read the directory");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the directory could not be read; try again",
                );
            }
        },
        None => Directory::default(),
    };
    let page = query.page(records, &people);
    match query.format.as_deref().unwrap_or("json") {
        "json" => match serde_json::to_string(&page) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        "csv" => match to_csv(&page) {
            Ok(body) => (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"progress.csv\"",
                    ),
                ],
                body,
            )
                .into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        _ => error(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "format is json or csv",
        ),
    }
}

async fn stream(
    State(dashboard): State<Dashboard>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let listening = (dashboard.feed.subscribe(), dashboard.feed.stopping());
    let events = futures::stream::unfold(listening, |(mut receiver, mut stop)| async move {
        let received = tokio::select! {
            received = receiver.recv() => received,
            // The server is stopping: end the stream, so its connection closes.
            _ = stop.wait_for(|stopping| *stopping) => return None,
        };
        let event = match received {
            Ok(json) => SseEvent::default().event("entity").data(&*json),
            // The page fell behind: it reloads what stands now.
            Err(RecvError::Lagged(_)) => SseEvent::default().event("reload").data("{}"),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (receiver, stop)))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// A 400 for a query that does not read: `message` says what it takes.
pub(crate) fn invalid_query(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_query", message)
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Serve the dashboard and the API alone over `store` on `listener` (loopback: open to
/// this machine) until `shutdown` resolves, looking for changes every `every`: the
/// `dashboard` command, over a deployed stack's table.
pub async fn serve_alone(
    store: Arc<dyn ProgressStore>,
    directory: Option<Arc<dyn DirectoryStore>>,
    listener: tokio::net::TcpListener,
    every: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (closing, stopping) = tokio::sync::watch::channel(false);
    let feed =
        okr_consumers::progress::feed::spawn(store.clone(), directory.clone(), every, stopping);
    axum::serve(listener, router(store, directory, feed, Access::Open))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // The pages' streams end, so their connections close.
            let _ = closing.send(true);
        })
        .await
}
