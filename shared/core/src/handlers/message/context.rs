//! One admitted frame: who sent it, their connection's record, the
//! `requestId` to echo and the time it was admitted, with the replies
//! and refusals every action builds from them.

use std::fmt::Display;

use crate::event::{LifecycleEvent, Sender};
use crate::handlers::Caller;
use crate::ids::RoomId;
use crate::ports::ConnectionRecord;
use crate::protocol::{ErrorCode, RequestError, ServerFrame};

use super::MessageDeps;

/// What a frame is answered with.
pub(super) enum Reply {
    Frame(String),
    /// The connection was closed; there is nobody to answer.
    Closed,
}

pub(super) struct Frame<'a> {
    pub caller: Caller,
    /// As the admission read it: expiry, capabilities, heartbeat.
    pub record: ConnectionRecord,
    pub request_id: Option<String>,
    /// When the frame was admitted, by the deps' clock.
    pub now_ms: i64,
    pub deps: &'a MessageDeps,
}

impl Frame<'_> {
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    pub fn reply(&self, frame: ServerFrame<'_>) -> Reply {
        Reply::Frame(frame.to_json())
    }

    pub fn ack(&self) -> Reply {
        self.reply(ServerFrame::Ack {
            request_id: self.request_id(),
        })
    }

    pub fn fail(&self, code: ErrorCode, message: impl Into<String>) -> RequestError {
        RequestError::new(self.request_id.clone(), code, message)
    }

    /// A refusal about `room` (the error frame names it).
    pub fn fail_in(
        &self,
        room: &RoomId,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> RequestError {
        RequestError {
            room: Some(room.clone()),
            ..self.fail(code, message)
        }
    }

    /// A dependency failed: logged with its cause, answered `internal`.
    pub fn internal(&self, what: &str, error: &dyn Display) -> RequestError {
        internal(self.request_id.clone(), &self.caller, what, error)
    }

    pub fn over_rate(&self, limit: String, wait_ms: i64) -> RequestError {
        over_rate(self.request_id.clone(), limit, wait_ms)
    }

    /// The connection is gone from the store (or past its life).
    pub fn not_registered(&self) -> RequestError {
        not_registered(self.request_id.clone())
    }

    /// The sender the server sets on what this connection sends.
    pub fn sender(&self) -> Sender {
        Sender::Client {
            user: self.caller.user.clone(),
            connection: self.caller.id.clone(),
        }
    }

    /// A `room.joined` or `room.left` event for this connection.
    pub fn lifecycle(&self, room: RoomId) -> LifecycleEvent {
        LifecycleEvent {
            tenant: self.caller.tenant.clone(),
            user: self.caller.user.clone(),
            connection_id: self.caller.id.clone(),
            room: Some(room),
            rooms: Vec::new(),
            part: None,
            parts: None,
        }
    }
}

pub(super) fn internal(
    request_id: Option<String>,
    caller: &Caller,
    what: &str,
    error: &dyn Display,
) -> RequestError {
    tracing::error!(%error, connection_id = %caller.id, "{what}");
    RequestError::new(
        request_id,
        ErrorCode::Internal,
        format!("{what}; try again"),
    )
}

pub(super) fn over_rate(request_id: Option<String>, limit: String, wait_ms: i64) -> RequestError {
    RequestError::rate_limited(
        request_id,
        format!("{limit}; retry after {wait_ms} ms"),
        wait_ms,
    )
}

pub(super) fn not_registered(request_id: Option<String>) -> RequestError {
    RequestError::new(
        request_id,
        ErrorCode::Forbidden,
        "connection is not registered; reconnect",
    )
}
