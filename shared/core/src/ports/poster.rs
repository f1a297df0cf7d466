//! The connection poster port (the API Gateway Management API on AWS, the
//! local gateway's registry locally).

use super::Cause;
use async_trait::async_trait;
use bytes::Bytes;

use crate::ids::ConnectionId;

/// Why a post (or get/delete) to a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// 410: the connection is gone; delete its records.
    #[error("connection is gone (410)")]
    Gone,
    /// 429 / LimitExceededException: throttled or the client's buffer is full.
    #[error("throttled (429): {0}")]
    Throttled(#[source] Cause),
    /// 413: the frame is larger than API Gateway posts.
    #[error("payload too large (413)")]
    PayloadTooLarge,
    /// 403: IAM or endpoint misconfiguration.
    #[error("forbidden (403), check the endpoint and execute-api:ManageConnections: {0}")]
    Forbidden(#[source] Cause),
    /// Any other HTTP status.
    #[error("HTTP {status}: {message}")]
    Http {
        status: u16,
        #[source]
        message: Cause,
    },
    /// No response: timeout, connection refused, reset.
    #[error("transport error: {0}")]
    Transport(#[source] Cause),
}

/// What GetConnection returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub connected_at_ms: i64,
    pub last_active_at_ms: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
}

#[async_trait]
pub trait ConnectionPoster: Send + Sync {
    /// Sends one frame. `frame` is shared, never copied per connection.
    async fn post(&self, id: &ConnectionId, frame: &Bytes) -> Result<(), PostError>;

    async fn get(&self, id: &ConnectionId) -> Result<ConnectionInfo, PostError>;

    /// Closes the connection.
    async fn delete(&self, id: &ConnectionId) -> Result<(), PostError>;
}
