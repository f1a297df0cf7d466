//! SQS's answers in its JSON protocol (awsJson1_0), shared by the
//! operations in `sqs` and the redrive tasks in `move_task`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{Protocol, error_response, json_response};

pub(super) fn ok(body: Value) -> Response {
    json_response(Protocol::Json10, StatusCode::OK, body)
}

pub(super) fn error(code: &str, message: &str) -> Response {
    error_response(
        Protocol::Json10,
        &format!("com.amazonaws.sqs#{code}"),
        message,
    )
}
