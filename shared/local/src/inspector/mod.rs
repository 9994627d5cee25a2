//! The delivery inspector in `serve`, under the dashboard's access rules:
//!
//! - `GET /deliveries`: the page (its script at `/deliveries.js`), live.
//! - `GET /api/deliveries`: the requests to `/webhooks/*` the delivery log holds, newest
//!   first, filtered by `endpoint`, `outcome`, `type`, `since` (RFC 3339), `event` (an
//!   event id) and `limit` (1 to 1000, 100 by default).
//! - `GET /api/events/<event id>`: the event's journey: the deliveries that carried it
//!   and one step per thing that happened to it (`consumer`, `outcome`, `time`,
//!   `attempt`, `detail`), oldest first.
//! - `POST /api/replays`: send archived events again to a consumer (see [`replays`]),
//!   from this host's pages only.

mod replays;

pub use replays::Replays;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::dashboard::{Access, check_access, error, invalid_query};
use okr_consumers::deliveries::{DeliveryStore, Filter};

/// The most a page lists.
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    endpoint: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    event: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    limit: Option<usize>,
    /// The dashboard's token, when not sent as a bearer token.
    #[allow(dead_code)]
    token: Option<String>,
}

const OUTCOMES: [&str; 5] = [
    "accepted",
    "duplicate",
    "handshake",
    "refused",
    "unavailable",
];

impl Query {
    /// The filter it asks for, or what is wrong with it.
    fn filter(self) -> Result<Filter, &'static str> {
        let since = match self.since.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                OffsetDateTime::parse(text, &Rfc3339)
                    .map_err(|_| "since: an RFC 3339 time, such as 2026-12-06T09:00:00Z")?,
            ),
        };
        if let Some(outcome) = &self.outcome
            && !OUTCOMES.contains(&outcome.as_str())
        {
            return Err("outcome: one of accepted, duplicate, handshake, refused, unavailable");
        }
        if self.limit.is_some_and(|l| l == 0 || l > MAX_LIMIT) {
            return Err("limit: a number from 1 to 1000");
        }
        Ok(Filter {
            endpoint: self.endpoint.filter(|e| !e.is_empty()),
            outcome: self.outcome,
            since,
            event_id: self.event.filter(|e| !e.is_empty()),
            event_type: self.event_type.filter(|t| !t.is_empty()),
            limit: self.limit,
        })
    }
}

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("deliveries.js");

/// The page's and the API's routes over `log`, sending again through `replays`, under
/// `access`.
pub fn router(log: Arc<dyn DeliveryStore>, replays: Replays, access: Access) -> Router {
    let actions = Router::new()
        .route("/api/replays", post(replays::replay))
        .layer(middleware::from_fn(replays::same_origin))
        .with_state(Arc::new(replays));
    let guarded = Router::new()
        .route("/deliveries", get(page))
        .route("/api/deliveries", get(deliveries))
        .route("/api/events/{event_id}", get(journey))
        .with_state(log)
        .merge(actions)
        .layer(middleware::from_fn_with_state(access, check_access));
    Router::new()
        .route("/deliveries.js", get(script))
        .merge(guarded)
}

async fn page() -> Response {
    crate::dashboard::typed("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    crate::dashboard::typed("text/javascript; charset=utf-8", SCRIPT)
}

/// The journey of one event: its deliveries and its steps.
async fn journey(
    State(log): State<Arc<dyn DeliveryStore>>,
    Path(event_id): Path<String>,
) -> Response {
    let filter = Filter {
        event_id: Some(event_id.clone()),
        ..Filter::default()
    };
    let read = async {
        Ok::<_, okr_consumers::deliveries::DeliveryLogError>((
            log.list(&filter).await?,
            log.journey(&event_id).await?,
        ))
    };
    match read.await {
        Ok((deliveries, steps)) if deliveries.is_empty() && steps.is_empty() => error(
            StatusCode::NOT_FOUND,
            "unknown_event",
            "no delivery or step of this event is kept (unknown, or older than the log keeps)",
        ),
        Ok((mut deliveries, steps)) => {
            deliveries.reverse();
            ok(serde_json::json!({"event_id": event_id, "deliveries": deliveries, "steps": steps}))
        }
        Err(failure) => unreadable(&failure),
    }
}

fn ok(body: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn unreadable(failure: &okr_consumers::deliveries::DeliveryLogError) -> Response {
    tracing::error!(error = %okr_core::error_chain(failure), "could not read the delivery log");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the delivery log could not be read; try again",
    )
}

async fn deliveries(
    State(log): State<Arc<dyn DeliveryStore>>,
    query: Result<UrlQuery<Query>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(UrlQuery(query)) = query else {
        return invalid_query(
            "unknown parameter or value: see endpoint, outcome, type, since, event, limit",
        );
    };
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(problem) => return invalid_query(problem),
    };
    match log.list(&filter).await {
        Ok(items) => ok(serde_json::json!({"items": items})),
        Err(failure) => unreadable(&failure),
    }
}
