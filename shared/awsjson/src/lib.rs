//! The AWS JSON-protocol requests the local stack serves, parsed and
//! checked against AWS's limits with no I/O: EventBridge's `PutEvents`
//! ([`put_events`]) and the SQS operations ([`sqs`]). The local stack
//! answers from them; the fuzz targets feed them arbitrary bodies.

pub mod put_events;
pub mod sqs;

/// A request AWS would refuse as a whole: its error type (the
/// `__type`/`x-amzn-errortype` the SDKs read) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
