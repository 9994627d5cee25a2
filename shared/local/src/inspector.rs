//! The delivery inspector's API in `serve`: `GET /api/deliveries` lists the requests to
//! `/webhooks/*` the delivery log holds, newest first, filtered by `endpoint`,
//! `outcome`, `since` (RFC 3339), `event` (an event id) and `limit` (1 to 1000, 100 by
//! default), under the dashboard's access rules.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query as UrlQuery, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::dashboard::{Access, check_access, error, invalid_query};
use okr_consumers::deliveries::{DeliveryLog, Filter};

/// The most a page lists.
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    endpoint: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    event: Option<String>,
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
            limit: self.limit,
        })
    }
}

/// The API's routes over `log`, under `access`.
pub fn router(log: Arc<dyn DeliveryLog>, access: Access) -> Router {
    Router::new()
        .route("/api/deliveries", get(deliveries))
        .layer(middleware::from_fn_with_state(access, check_access))
        .with_state(log)
}

async fn deliveries(
    State(log): State<Arc<dyn DeliveryLog>>,
    query: Result<UrlQuery<Query>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(UrlQuery(query)) = query else {
        return invalid_query(
            "unknown parameter or value: see endpoint, outcome, since, event, limit",
        );
    };
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(problem) => return invalid_query(problem),
    };
    match log.list(&filter).await {
        Ok(items) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"items": items}).to_string(),
        )
            .into_response(),
        Err(failure) => {
            tracing::error!(error = %okr_core::error_chain(&failure), "could not read the delivery log");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the delivery log could not be read; try again",
            )
        }
    }
}
