//! Why a frame was refused: the `error` frame a client is answered with.

use crate::auth::Right;
use crate::ids::RoomId;

use super::{ErrorCode, ServerFrame};

/// Why a frame was refused, with the `requestId` to echo when there was one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct RequestError {
    pub request_id: Option<String>,
    pub code: ErrorCode,
    pub message: String,
    /// The room a `forbidden` refusal is about.
    pub room: Option<RoomId>,
    /// The right that was missing.
    pub right: Option<Right>,
    /// For `rate_limited`: when to retry.
    pub retry_after_ms: Option<i64>,
}

impl RequestError {
    pub fn new(request_id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            request_id,
            code,
            message: message.into(),
            room: None,
            right: None,
            retry_after_ms: None,
        }
    }

    /// A `forbidden` refusal for a missing right on a room.
    pub fn missing_right(request_id: Option<String>, room: &RoomId, right: Right) -> Self {
        Self {
            room: Some(room.clone()),
            right: Some(right),
            ..Self::new(
                request_id,
                ErrorCode::Forbidden,
                format!("this connection lacks the '{right}' right on room '{room}'"),
            )
        }
    }

    /// The last frame of a connection whose token expired.
    pub fn token_expired(request_id: Option<String>) -> Self {
        Self::new(
            request_id,
            ErrorCode::TokenExpired,
            "the connection's token expired; connect again with a new token",
        )
    }

    /// A `rate_limited` refusal with when to retry.
    pub fn rate_limited(
        request_id: Option<String>,
        message: impl Into<String>,
        retry_after_ms: i64,
    ) -> Self {
        Self {
            retry_after_ms: Some(retry_after_ms.max(1)),
            ..Self::new(request_id, ErrorCode::RateLimited, message)
        }
    }

    pub fn to_frame(&self) -> String {
        ServerFrame::Error {
            request_id: self.request_id.as_deref(),
            code: self.code,
            message: &self.message,
            room: self.room.as_ref().map(RoomId::as_str),
            right: self.right,
            retry_after_ms: self.retry_after_ms,
        }
        .to_json()
    }
}
