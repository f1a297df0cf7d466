//! What a client decodes: the server's frames as owned values, for clients
//! written in Rust (tests, the load test) and for the TypeScript SDK's
//! types, which are generated from these (see `wire_types`).

use serde::Deserialize;

use crate::auth::Right;
use crate::event::Sender;

use super::ErrorCode;

/// What a client receives, for clients written in Rust (tests, load test).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ReceivedFrame {
    #[serde(rename_all = "camelCase")]
    Ack { request_id: Option<String> },
    #[serde(rename_all = "camelCase")]
    Pong { request_id: Option<String> },
    #[serde(rename_all = "camelCase")]
    Error {
        request_id: Option<String>,
        code: ErrorCode,
        message: String,
        #[serde(default)]
        room: Option<String>,
        #[serde(default)]
        right: Option<Right>,
        #[serde(default)]
        retry_after_ms: Option<i64>,
    },
    #[serde(rename_all = "camelCase")]
    Refreshed {
        request_id: Option<String>,
        expires_at: i64,
    },
    #[serde(rename_all = "camelCase")]
    Whoami {
        request_id: Option<String>,
        connection_id: String,
        tenant: String,
        user: String,
        expires_at: i64,
    },
    #[serde(rename_all = "camelCase")]
    Message {
        id: String,
        room: Option<String>,
        #[serde(default)]
        seq: Option<u64>,
        #[serde(default)]
        from: Option<Sender>,
        #[serde(default)]
        data: serde_json::Value,
        sent_at: String,
        #[serde(default)]
        updated_at: Option<String>,
        #[serde(default)]
        deleted: bool,
    },
    #[serde(rename_all = "camelCase")]
    Signal {
        id: String,
        room: String,
        #[serde(default)]
        from: Option<Sender>,
        data: serde_json::Value,
        sent_at: String,
    },
    #[serde(rename = "message.updated", rename_all = "camelCase")]
    MessageUpdated {
        id: String,
        room: String,
        seq: u64,
        #[serde(rename = "ref")]
        of: u64,
        #[serde(default)]
        from: Option<Sender>,
        data: serde_json::Value,
        sent_at: String,
    },
    #[serde(rename = "message.deleted", rename_all = "camelCase")]
    MessageDeleted {
        id: String,
        room: String,
        seq: u64,
        #[serde(rename = "ref")]
        of: u64,
        #[serde(default)]
        from: Option<Sender>,
        sent_at: String,
    },
    #[serde(rename_all = "camelCase")]
    Joined {
        request_id: Option<String>,
        room: String,
        seq: u64,
        #[serde(default)]
        recovered: Option<bool>,
        #[serde(default)]
        oldest: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    History {
        request_id: Option<String>,
        room: String,
        messages: Vec<ReceivedFrame>,
        more: bool,
    },
    #[serde(rename_all = "camelCase")]
    Replay {
        room: String,
        messages: Vec<ReceivedFrame>,
    },
    #[serde(rename_all = "camelCase")]
    Presence {
        request_id: Option<String>,
        room: String,
        count: u64,
        members: Vec<ReceivedPresentUser>,
        #[serde(default)]
        next: Option<String>,
    },
    #[serde(rename = "presence.joined")]
    PresenceJoined(ReceivedPresenceNotice),
    #[serde(rename = "presence.left")]
    PresenceLeft(ReceivedPresenceNotice),
    #[serde(rename = "presence.updated")]
    PresenceUpdated(ReceivedPresenceNotice),
    #[serde(rename = "presence.count")]
    PresenceCount(ReceivedPresenceNotice),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedPresentUser {
    pub user: String,
    pub connections: usize,
    #[serde(default)]
    pub state: Option<serde_json::Value>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedPresenceNotice {
    pub room: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub state: Option<serde_json::Value>,
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub connections: Option<usize>,
    #[serde(default)]
    pub members: Option<u64>,
    pub sent_at: String,
}

impl ReceivedFrame {
    /// The room-stream `seq` of a message, update or deletion.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ReceivedFrame::Message { seq, .. } => *seq,
            ReceivedFrame::MessageUpdated { seq, .. }
            | ReceivedFrame::MessageDeleted { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}
