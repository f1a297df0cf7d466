//! EventBridge's `PutEvents` (AWS JSON 1.1, `X-Amz-Target:
//! AWSEvents.PutEvents`), so product services publish to the local stack
//! with their own AWS SDK by setting its endpoint URL. Buses `fanout` and
//! `default` (by name or ARN) both route through the stack's rules. Entries
//! with a reserved `fanout.*` source are refused, as the publisher IAM
//! policy refuses them on AWS: only the gateway speaks as `fanout.*`.

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use fanout_awsjson::put_events::parse_put_events;
use fanout_core::event::is_reserved_source;
use fanout_core::ports::{BusEntry, BusError, EntryOutcome};
use serde_json::{Value, json};

use super::{Protocol, error_response, json_response};
use crate::state::AppState;

/// `X-Amz-Target` of every EventBridge operation.
pub const TARGET_PREFIX: &str = "AWSEvents.";
/// Bus names the local endpoint accepts.
pub const BUS_NAMES: &[&str] = &["fanout", "default"];

fn aws_json(status: StatusCode, body: Value) -> Response {
    json_response(Protocol::Json11, status, body)
}

fn client_error(error_type: &str, message: &str) -> Response {
    error_response(Protocol::Json11, error_type, message)
}

/// EventBridge takes a Detail that is a JSON object, nothing else.
fn is_json_object(detail: &str) -> bool {
    detail.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(detail).is_ok()
}

/// Accepts a bus name or ARN naming one of [`BUS_NAMES`].
fn known_bus(name: Option<&str>) -> bool {
    let name = name.unwrap_or("default");
    let short = name.rsplit_once("event-bus/").map_or(name, |(_, n)| n);
    BUS_NAMES.contains(&short)
}

/// One EventBridge operation; only `PutEvents` is served.
pub async fn handle(app: &AppState, operation: &str, body: Bytes) -> Response {
    match operation {
        "PutEvents" => put_events(app, body).await,
        other => client_error(
            "UnknownOperationException",
            &format!("the local stack's EventBridge endpoint serves PutEvents, not {other}"),
        ),
    }
}

async fn put_events(app: &AppState, body: Bytes) -> Response {
    let request = match parse_put_events(&body) {
        Ok(request) => request,
        Err(refusal) => return client_error(refusal.code, &refusal.message),
    };

    let mut results: Vec<Value> = vec![Value::Null; request.entries.len()];
    let mut accepted_at = Vec::new();
    let mut entries = Vec::new();
    for (i, entry) in request.entries.into_iter().enumerate() {
        if !known_bus(entry.event_bus_name.as_deref()) {
            results[i] = json!({"ErrorCode": "ResourceNotFoundException",
                "ErrorMessage": format!("Event bus {} does not exist.", entry.event_bus_name.unwrap_or_default())});
            continue;
        }
        let (Some(source), Some(detail_type), Some(detail)) =
            (entry.source, entry.detail_type, entry.detail)
        else {
            results[i] = json!({"ErrorCode": "InvalidArgument",
                "ErrorMessage": "Parameters Source, DetailType and Detail are required."});
            continue;
        };
        if !is_json_object(&detail) {
            results[i] = json!({"ErrorCode": "MalformedDetail",
                "ErrorMessage": "Detail is malformed: it must be a JSON object."});
            continue;
        }
        if is_reserved_source(&source) {
            results[i] = json!({"ErrorCode": "NotAuthorizedForSourceException",
                "ErrorMessage": format!("Source {source} is reserved for the fanout gateway; publish as <tenant> or <tenant>.<service>.")});
            continue;
        }
        accepted_at.push(i);
        entries.push(BusEntry {
            source,
            detail_type,
            detail,
            resources: entry.resources,
        });
    }
    if !entries.is_empty() {
        let outcomes = match app.deps.gateway.bus.put_events(&entries).await {
            Ok(o) => o,
            // A request AWS would refuse (an entry over 256 KB) is the
            // caller's to fix: 400, which SDKs do not retry.
            Err(BusError::Invalid(message)) => {
                return client_error("ValidationException", &message.to_string());
            }
            Err(BusError::Throttled(message)) => {
                return client_error("ThrottlingException", &message.to_string());
            }
            Err(e) => {
                return aws_json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"__type": "InternalException", "message": e.to_string()}),
                );
            }
        };
        for (i, outcome) in accepted_at.into_iter().zip(outcomes) {
            results[i] = match outcome {
                EntryOutcome::Accepted { event_id } => json!({ "EventId": event_id }),
                EntryOutcome::Failed { code, message } => {
                    json!({ "ErrorCode": code, "ErrorMessage": message })
                }
            };
        }
    }
    let failed = results
        .iter()
        .filter(|r| r.get("ErrorCode").is_some())
        .count();
    aws_json(
        StatusCode::OK,
        json!({ "FailedEntryCount": failed, "Entries": results }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_and_arns_of_known_buses() {
        assert!(known_bus(None));
        assert!(known_bus(Some("fanout")));
        assert!(known_bus(Some("default")));
        assert!(known_bus(Some(
            "arn:aws:events:us-east-1:000000000000:event-bus/fanout"
        )));
        assert!(!known_bus(Some("other")));
        assert!(!known_bus(Some(
            "arn:aws:events:us-east-1:000000000000:event-bus/other"
        )));
    }
}
