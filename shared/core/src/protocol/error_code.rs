//! The closed set of error codes a client can receive.

use serde::{Deserialize, Serialize};

/// The closed set of error codes a client can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON, lacks a field, or a field is invalid.
    BadRequest,
    /// `action` names no known action.
    UnknownAction,
    /// `data` is larger than the configured payload limit.
    PayloadTooLarge,
    /// Not allowed: a missing right on a room (the frame names both), a
    /// refused grant or refresh token, or a connection that is no longer
    /// registered.
    Forbidden,
    /// The connection's token expired: it receives nothing more and is
    /// closed; connect again with a new token.
    TokenExpired,
    /// Publishing to a room the connection has not joined.
    NotMember,
    /// `update` or `delete` of a message that is not in the room's
    /// stream (never stored, expired, or deleted).
    NotFound,
    /// A per-connection limit is reached (e.g. rooms per connection).
    LimitExceeded,
    /// Too many frames from this connection, publishes from this tenant,
    /// or the event bus throttled; `retryAfterMs` says when to retry.
    RateLimited,
    /// A dependency failed; the request may be retried.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownAction,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Forbidden,
        ErrorCode::TokenExpired,
        ErrorCode::NotMember,
        ErrorCode::NotFound,
        ErrorCode::LimitExceeded,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownAction => "unknown_action",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::NotMember => "not_member",
            ErrorCode::NotFound => "not_found",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
        }
    }
}
