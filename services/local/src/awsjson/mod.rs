//! The AWS JSON protocols on `POST /`, told apart by `X-Amz-Target`:
//! EventBridge's `AWSEvents.*` ([`eventbridge`]: PutEvents, so product
//! services publish with their own SDK) and SQS's `AmazonSQS.*` ([`sqs`]:
//! what the DLQ tools need). Requests are not signature-checked locally.

pub mod eventbridge;
pub mod move_task;
pub mod sqs;
mod sqs_reply;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::state::AppState;

/// `POST /`, for every AWS JSON operation the stack serves.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/", post(dispatch))
}

async fn dispatch(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(operation) = target.strip_prefix(eventbridge::TARGET_PREFIX) {
        return eventbridge::handle(&app, operation, body).await;
    }
    if let Some(operation) = target.strip_prefix(sqs::TARGET_PREFIX) {
        let host = host_of(&headers, &app.domain_name);
        return sqs::handle(
            &app.queues,
            &app.move_tasks,
            &host,
            operation,
            body,
            app.clock.now_ms(),
        )
        .await;
    }
    error_response(
        Protocol::Json11,
        "UnknownOperationException",
        &format!(
            "this endpoint serves {}PutEvents and {}*, not '{target}'",
            eventbridge::TARGET_PREFIX,
            sqs::TARGET_PREFIX
        ),
    )
}

/// The two AWS JSON protocol versions (EventBridge 1.1, SQS 1.0).
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    Json10,
    Json11,
}

impl Protocol {
    fn content_type(self) -> &'static str {
        match self {
            Self::Json10 => "application/x-amz-json-1.0",
            Self::Json11 => "application/x-amz-json-1.1",
        }
    }
}

/// A response with the protocol's content type.
pub fn json_response(protocol: Protocol, status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(protocol.content_type()),
    );
    response
}

/// A 400 with the error type the SDKs map to an exception.
pub fn error_response(protocol: Protocol, error_type: &str, message: &str) -> Response {
    json_response(
        protocol,
        StatusCode::BAD_REQUEST,
        json!({ "__type": error_type, "message": message }),
    )
}

/// The `Host` the client used, for URLs it can call back.
fn host_of(headers: &HeaderMap, fallback: &str) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or(fallback)
        .to_string()
}
