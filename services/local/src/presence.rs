//! `GET /_fanout/presence?tenant=…[&room=…][&cursor=…][&limit=N]`: who is
//! online, for services and operators (`fanout presence` reads it). With
//! a room, the same `presence` page a client gets; without, every user of
//! the tenant with a live connection and how many it has. On AWS a
//! service reads the table instead (`fanout presence --table`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use fanout_core::handlers::presence::{PAGE_SIZE, online_users, page_frame};
use fanout_core::ids::{RoomId, TenantId};
use fanout_core::ports::StoreError;
use serde::Deserialize;
use serde_json::json;

use crate::history::{bad_request, unavailable};
use crate::state::AppState;

pub use fanout_core::local_api::PRESENCE_PATH;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(PRESENCE_PATH, axum::routing::get(presence))
}

#[derive(Deserialize)]
struct Params {
    tenant: String,
    room: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn presence(
    State(app): State<Arc<AppState>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => return bad_request(format!("{e}; expected ?tenant=…[&room=…]")),
    };
    let tenant = match TenantId::new(params.tenant) {
        Ok(t) => t,
        Err(e) => return bad_request(format!("tenant: {e}")),
    };
    let deps = &app.deps.gateway;
    let body = match params.room {
        None => match online_users(deps.store.as_ref(), &tenant).await {
            Ok(online) => json!({
                "tenant": tenant.as_str(),
                "count": online.len(),
                "online": online
                    .iter()
                    .map(|(user, connections)| json!({"user": user.as_str(), "connections": connections}))
                    .collect::<Vec<_>>(),
            })
            .to_string(),
            Err(e) => return unavailable("presence", e),
        },
        Some(room) => {
            let room = match RoomId::new(room) {
                Ok(r) => r,
                Err(e) => return bad_request(format!("room: {e}")),
            };
            let limit = params.limit.unwrap_or(PAGE_SIZE).clamp(1, PAGE_SIZE);
            let page = match deps
                .presence
                .presence_page(&tenant, &room, params.cursor.as_deref(), limit)
                .await
            {
                Ok(page) => page,
                Err(StoreError::BadCursor) => {
                    return bad_request("cursor: give the `next` of a previous page".into());
                }
                Err(e) => return unavailable("presence", e),
            };
            let count = match deps.presence.presence_count(&tenant, &room).await {
                Ok(count) => count,
                Err(e) => return unavailable("presence", e),
            };
            page_frame(None, &room, &page, count)
        }
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
