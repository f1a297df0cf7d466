//! The API Gateway Management API on `/{stage}/@connections/{id}`:
//! POST sends data to a connection, GET describes it, DELETE closes it.
//! Status codes and error shapes follow API Gateway (rest-json with
//! `x-amzn-ErrorType`), so any AWS SDK's ApiGatewayManagementApi client
//! works against it with the endpoint URL `http://127.0.0.1:<port>/<stage>`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fanout_core::clock::rfc3339_ms;
use fanout_core::ids::ConnectionId;
use fanout_core::ports::PostError;
use serde_json::json;

use crate::state::AppState;

fn error(status: StatusCode, error_type: &str, message: &dyn std::fmt::Display) -> Response {
    let body = json!({ "message": message.to_string() });
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(error_type) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

fn from_post_error(e: PostError) -> Response {
    match e {
        PostError::Gone => error(StatusCode::GONE, "GoneException", &"The connection is gone"),
        PostError::Throttled(m) => {
            error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException", &m)
        }
        PostError::PayloadTooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &"Payload too large",
        ),
        PostError::Forbidden(m) => error(StatusCode::FORBIDDEN, "ForbiddenException", &m),
        PostError::Http { status, message } => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "InternalServerError",
            &message,
        ),
        PostError::Transport(m) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", &m)
        }
    }
}

/// Resolves the stage and id, answering as API Gateway does when either is
/// wrong: an unknown stage is 403, an id that cannot exist is 410.
fn target(app: &AppState, stage: &str, id: &str) -> Result<ConnectionId, PostError> {
    if stage != app.config.stage {
        return Err(PostError::Forbidden("Forbidden".into()));
    }
    ConnectionId::new(id).map_err(|_| PostError::Gone)
}

/// One call: who made it (the SigV4 `Authorization`) and on what.
struct CallOn<'a> {
    app: &'a AppState,
    method: &'a str,
    stage: &'a str,
    id: &'a str,
    authorization: Option<&'a str>,
}

/// Runs one operation on a resolved connection and maps its error the way
/// API Gateway does; records a function's call in the call log.
async fn on_connection<F, Fut>(call: CallOn<'_>, op: F) -> Response
where
    F: FnOnce(ConnectionId) -> Fut,
    Fut: std::future::Future<Output = Result<Response, PostError>>,
{
    let response = match target(call.app, call.stage, call.id) {
        Ok(id) => op(id).await.unwrap_or_else(from_post_error),
        Err(e) => from_post_error(e),
    };
    if let Some(log) = &call.app.call_log {
        let status = response.status().as_u16();
        log.record_connections_call(call.authorization, call.method, call.stage, call.id, status);
    }
    response
}

impl<'a> CallOn<'a> {
    fn new(
        app: &'a AppState,
        method: &'a str,
        stage: &'a str,
        id: &'a str,
        headers: &'a HeaderMap,
    ) -> Self {
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
        Self {
            app,
            method,
            stage,
            id,
            authorization,
        }
    }
}

/// `POST|GET|DELETE /{stage}/@connections/{id}`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(
        "/{stage}/@connections/{id}",
        axum::routing::post(post).get(get).delete(delete),
    )
}

async fn post(
    State(app): State<Arc<AppState>>,
    Path((stage, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let poster = app.poster.clone();
    let call = CallOn::new(&app, "POST", &stage, &id, &headers);
    on_connection(call, |id| async move {
        poster.post(&id, &body).await?;
        Ok(StatusCode::OK.into_response())
    })
    .await
}

async fn get(
    State(app): State<Arc<AppState>>,
    Path((stage, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let poster = app.poster.clone();
    let call = CallOn::new(&app, "GET", &stage, &id, &headers);
    on_connection(call, |id| async move {
        let info = poster.get(&id).await?;
        Ok(axum::Json(json!({
            "connectedAt": rfc3339_ms(info.connected_at_ms),
            "lastActiveAt": rfc3339_ms(info.last_active_at_ms),
            "identity": { "sourceIp": info.source_ip, "userAgent": info.user_agent },
        }))
        .into_response())
    })
    .await
}

async fn delete(
    State(app): State<Arc<AppState>>,
    Path((stage, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let poster = app.poster.clone();
    let call = CallOn::new(&app, "DELETE", &stage, &id, &headers);
    on_connection(call, |id| async move {
        poster.delete(&id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}
