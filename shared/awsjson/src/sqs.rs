//! The SQS operations' requests (AWS JSON 1.0): one shape for all of
//! them, every number checked against SQS's ranges.

use std::collections::HashMap;
use std::time::Duration;

use fanout_core::limits::{SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY, check_sqs_receive};
use serde::Deserialize;

use crate::Refusal;

/// The error type SQS answers an out-of-range or unreadable request with.
const INVALID: &str = "InvalidParameterValue";

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Request {
    pub queue_url: Option<String>,
    pub queue_name: Option<String>,
    pub queue_name_prefix: Option<String>,
    pub max_number_of_messages: Option<u64>,
    pub wait_time_seconds: Option<u64>,
    pub visibility_timeout: Option<u64>,
    pub receipt_handle: Option<String>,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Entry {
    pub id: String,
    pub message_body: String,
    pub delay_seconds: u64,
    pub receipt_handle: String,
    pub message_attributes: HashMap<String, AttributeValue>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct AttributeValue {
    pub string_value: Option<String>,
}

/// Parses an SQS request body and checks its numbers against SQS's ranges.
/// Pure, so it is fuzzed.
pub fn parse_request(body: &[u8]) -> Result<Request, Refusal> {
    let request: Request = if body.is_empty() {
        Request::default()
    } else {
        serde_json::from_slice(body).map_err(|e| Refusal::new(INVALID, e.to_string()))?
    };
    request
        .check_ranges()
        .map_err(|message| Refusal::new(INVALID, message))?;
    Ok(request)
}

impl Request {
    /// Every client-given number within SQS's range, checked before any
    /// queue is touched, so a refused call never loses a message.
    fn check_ranges(&self) -> Result<(), String> {
        let out_of = |name: &str, value: u64, low: u64, high: u64| {
            format!(
                "Value {value} for parameter {name} is invalid. Reason: Must be between {low} and {high}."
            )
        };
        let max_receive = SQS_MAX_BATCH_ENTRIES as u64;
        if let Some(n) = self.max_number_of_messages
            && !(1..=max_receive).contains(&n)
        {
            return Err(out_of("MaxNumberOfMessages", n, 1, max_receive));
        }
        let wait = self.wait_time_seconds.unwrap_or(0);
        let visibility = self.visibility_timeout.unwrap_or(0);
        check_sqs_receive(Duration::from_secs(wait), Duration::from_secs(visibility))?;
        let max_delay = SQS_MAX_DELAY.as_secs();
        if let Some(e) = self.entries.iter().find(|e| e.delay_seconds > max_delay) {
            return Err(out_of("DelaySeconds", e.delay_seconds, 0, max_delay));
        }
        Ok(())
    }
}
