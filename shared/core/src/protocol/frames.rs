//! What the server sends: replies, delivered events and presence notices.
//! Serialized once per reply or per broadcast, from borrowed parts.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::auth::Right;
use crate::event::Sender;

use super::ErrorCode;

/// A frame the server sends. Serialized once per reply or per broadcast.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame<'a> {
    #[serde(rename_all = "camelCase")]
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
    #[serde(rename_all = "camelCase")]
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
        code: ErrorCode,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        right: Option<Right>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<i64>,
    },
    /// The answer to `refresh`: the connection's new token expiry.
    #[serde(rename_all = "camelCase")]
    Refreshed {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
        /// Seconds since the epoch.
        expires_at: i64,
    },
    /// The answer to `whoami`.
    #[serde(rename_all = "camelCase")]
    Whoami {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
        connection_id: &'a str,
        tenant: &'a str,
        user: &'a str,
        /// When the connection's token expires, seconds since the epoch.
        expires_at: i64,
    },
    /// A delivered event. `seq` is set when it is stored in its room's
    /// stream; `updatedAt` and `deleted` only appear in history and
    /// replays, on a message edited since.
    #[serde(rename_all = "camelCase")]
    Message {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// Who sent it, set by the server: a client (`user`,
        /// `connection`) or a service (`service`: its event `Source`).
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a Sender>,
        /// Absent on a deleted message.
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a RawValue>,
        sent_at: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        updated_at: Option<&'a str>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        deleted: bool,
    },
    /// An ephemeral signal (typing): never stored, no `seq`, never sent
    /// back to the connection that sent it.
    #[serde(rename_all = "camelCase")]
    Signal {
        id: &'a str,
        room: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a Sender>,
        data: &'a RawValue,
        sent_at: &'a str,
    },
    /// A stored message's new version (`ref` is its `seq`).
    #[serde(rename = "message.updated", rename_all = "camelCase")]
    MessageUpdated {
        id: &'a str,
        room: &'a str,
        seq: u64,
        #[serde(rename = "ref")]
        of: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a Sender>,
        data: &'a RawValue,
        sent_at: &'a str,
    },
    /// A stored message's deletion (`ref` is its `seq`).
    #[serde(rename = "message.deleted", rename_all = "camelCase")]
    MessageDeleted {
        id: &'a str,
        room: &'a str,
        seq: u64,
        #[serde(rename = "ref")]
        of: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a Sender>,
        sent_at: &'a str,
    },
    /// The answer to `join`: the room's last `seq` when the membership
    /// was stored; with `since`, whether everything after it was replayed
    /// (`recovered`) and, when not, the oldest `seq` still stored after
    /// `since` (`oldest`, absent when nothing is).
    #[serde(rename_all = "camelCase")]
    Joined {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
        room: &'a str,
        seq: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        oldest: Option<u64>,
    },
    /// The answer to `history`: stored events in `seq` order, each a
    /// `message`, `message.updated` or `message.deleted` frame; `more`
    /// says whether the stream holds more in the direction asked.
    #[serde(rename_all = "camelCase")]
    History {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
        room: &'a str,
        messages: Vec<&'a RawValue>,
        more: bool,
    },
    /// The answer to `presence`: a page of the room's present users and
    /// how many there are; `next` is the cursor of the following page.
    #[serde(rename_all = "camelCase")]
    Presence {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
        room: &'a str,
        count: u64,
        members: Vec<PresentUser<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<&'a str>,
    },
    /// Stored events a `join` with `since` replays, in `seq` order, as
    /// in `history`; posted before the `joined` reply.
    #[serde(rename_all = "camelCase")]
    Replay {
        room: &'a str,
        messages: Vec<&'a RawValue>,
    },
}

/// One present user in a `presence` reply.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresentUser<'a> {
    pub user: &'a str,
    pub connections: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'a RawValue>,
    pub version: u64,
}

/// A presence notice as members receive it: `presence.joined`,
/// `presence.left`, `presence.updated` or `presence.count`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceFrame<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub room: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<u64>,
    pub sent_at: &'a str,
}

impl ServerFrame<'_> {
    pub fn to_json(&self) -> String {
        // Serializing these enums cannot fail: every field is a string,
        // an enum or already-valid JSON.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"frame serialization failed"}"#.into()
        })
    }
}
