//! EventBridge's `PutEvents` request (AWS JSON 1.1).

use fanout_core::limits::EVENTBRIDGE_MAX_ENTRIES;
use serde::Deserialize;

use crate::Refusal;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventsRequest {
    #[serde(default)]
    pub entries: Vec<RequestEntry>,
}

/// One entry as sent; what EventBridge checks per entry (required fields,
/// a JSON-object Detail, the bus) is the caller's to check.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestEntry {
    pub source: Option<String>,
    pub detail_type: Option<String>,
    pub detail: Option<String>,
    pub event_bus_name: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
}

/// Parses and checks a PutEvents body; the refusal when EventBridge would
/// refuse the whole request.
pub fn parse_put_events(body: &[u8]) -> Result<PutEventsRequest, Refusal> {
    let request: PutEventsRequest = serde_json::from_slice(body)
        .map_err(|e| Refusal::new("SerializationException", e.to_string()))?;
    if request.entries.is_empty() || request.entries.len() > EVENTBRIDGE_MAX_ENTRIES {
        return Err(Refusal::new(
            "ValidationException",
            format!(
                "Entries must hold 1 to {EVENTBRIDGE_MAX_ENTRIES} items, got {}",
                request.entries.len()
            ),
        ));
    }
    Ok(request)
}
