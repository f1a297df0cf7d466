//! What a client decodes: the server's frames as owned values, for clients
//! written in Rust (tests, the load test) and for the TypeScript SDK's
//! types, which are generated from these (see `wire_types`).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::auth::Right;
use crate::event::Sender;

use super::ErrorCode;

/// What a client receives, for clients written in Rust (tests, load test);
/// the TypeScript SDK's `ServerFrame`. Every optional field is absent, never
/// `null`, when the server has nothing to say. It serializes too (absent
/// fields as `null`), so tests can check that it holds every field the
/// server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "lowercase")]
#[ts(rename = "ServerFrame", optional_fields)]
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
        #[ts(as = "Option<f64>")]
        retry_after_ms: Option<i64>,
    },
    #[serde(rename_all = "camelCase")]
    Refreshed {
        request_id: Option<String>,
        #[ts(type = "number")]
        expires_at: i64,
    },
    #[serde(rename_all = "camelCase")]
    Whoami {
        request_id: Option<String>,
        connection_id: String,
        tenant: String,
        user: String,
        #[ts(type = "number")]
        expires_at: i64,
    },
    #[serde(rename_all = "camelCase")]
    Message {
        id: String,
        room: Option<String>,
        #[serde(default)]
        #[ts(as = "Option<f64>")]
        seq: Option<u64>,
        #[serde(default)]
        from: Option<Sender>,
        #[serde(default)]
        #[ts(type = "unknown")]
        data: serde_json::Value,
        sent_at: String,
        #[serde(default)]
        updated_at: Option<String>,
        // Set on a message deleted since (in history and replays).
        #[serde(default)]
        deleted: Option<bool>,
    },
    #[serde(rename_all = "camelCase")]
    Signal {
        id: String,
        room: String,
        #[serde(default)]
        from: Option<Sender>,
        #[ts(type = "unknown")]
        data: serde_json::Value,
        sent_at: String,
    },
    #[serde(rename = "message.updated", rename_all = "camelCase")]
    MessageUpdated {
        id: String,
        room: String,
        #[ts(type = "number")]
        seq: u64,
        #[serde(rename = "ref")]
        #[ts(type = "number")]
        of: u64,
        #[serde(default)]
        from: Option<Sender>,
        #[ts(type = "unknown")]
        data: serde_json::Value,
        sent_at: String,
    },
    #[serde(rename = "message.deleted", rename_all = "camelCase")]
    MessageDeleted {
        id: String,
        room: String,
        #[ts(type = "number")]
        seq: u64,
        #[serde(rename = "ref")]
        #[ts(type = "number")]
        of: u64,
        #[serde(default)]
        from: Option<Sender>,
        sent_at: String,
    },
    #[serde(rename_all = "camelCase")]
    Joined {
        request_id: Option<String>,
        room: String,
        #[ts(type = "number")]
        seq: u64,
        #[serde(default)]
        recovered: Option<bool>,
        #[serde(default)]
        #[ts(as = "Option<f64>")]
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
        #[ts(type = "number")]
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

/// One present user in a `presence` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "PresenceMember", optional_fields)]
pub struct ReceivedPresentUser {
    pub user: String,
    #[ts(type = "number")]
    pub connections: usize,
    #[serde(default)]
    #[ts(optional, type = "unknown")]
    pub state: Option<serde_json::Value>,
    #[ts(type = "number")]
    pub version: u64,
}

/// A change in a room's presence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "PresenceNoticeFields", optional_fields)]
pub struct ReceivedPresenceNotice {
    pub room: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    #[ts(optional, type = "unknown")]
    pub state: Option<serde_json::Value>,
    #[serde(default)]
    #[ts(as = "Option<f64>")]
    pub version: Option<u64>,
    #[serde(default)]
    #[ts(as = "Option<f64>")]
    pub connections: Option<usize>,
    #[serde(default)]
    #[ts(as = "Option<f64>")]
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
