//! `GET /_fanout/history?tenant=…&room=…[&before=N|&after=N][&limit=N]`: a
//! page of a room's stream for services and operators (`fanout history`
//! reads it), answered with the same `history` frame a client gets. On
//! AWS a service reads the table instead (`fanout history --table`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fanout_core::ids::{RoomId, TenantId};
use fanout_core::protocol::HistoryRange;
use fanout_core::stream;
use serde::Deserialize;

use crate::state::AppState;

pub use fanout_core::local_api::HISTORY_PATH;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(HISTORY_PATH, axum::routing::get(history))
}

#[derive(Deserialize)]
struct Params {
    tenant: String,
    room: String,
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<usize>,
}

pub(crate) fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

/// The store could not answer: logged, and 503 with the reason.
pub(crate) fn unavailable(what: &str, error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "could not read {what}");
    (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response()
}

async fn history(
    State(app): State<Arc<AppState>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => {
            return bad_request(format!(
                "{e}; expected ?tenant=…&room=…[&before=N|&after=N][&limit=N]"
            ));
        }
    };
    let (tenant, room) = match (TenantId::new(params.tenant), RoomId::new(params.room)) {
        (Ok(t), Ok(r)) => (t, r),
        (Err(e), _) => return bad_request(format!("tenant: {e}")),
        (_, Err(e)) => return bad_request(format!("room: {e}")),
    };
    let range = match (params.before, params.after) {
        (Some(_), Some(_)) => return bad_request("give before or after, not both".into()),
        (Some(b), None) => HistoryRange::Before(b),
        (None, Some(a)) => HistoryRange::After(a),
        (None, None) => HistoryRange::Latest,
    };
    let deps = &app.deps;
    let page = match stream::history(
        deps.streams.as_ref(),
        &deps.stream,
        &tenant,
        &room,
        range,
        params.limit,
    )
    .await
    {
        Ok(page) => page,
        Err(error) => return unavailable("a room's history", error),
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        stream::history_frame(None, &room, &page),
    )
        .into_response()
}
