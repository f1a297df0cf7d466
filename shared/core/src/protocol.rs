//! The client protocol: JSON text frames between clients and the gateway.
//!
//! Client → server: `join` (with `since` to resume), `leave`, `publish`,
//! `signal`, `history`, `update`, `delete`, `ping`, `whoami` and `refresh`, each
//! with an optional `requestId` that every reply echoes.
//! Server → client: `ack`, `joined`, `history`, `pong`, `whoami`,
//! `refreshed` and `error` replies; `message`, `message.updated`,
//! `message.deleted`, `replay` and `signal` frames.
//!
//! Order: events stored in a room's stream carry a per-room `seq`,
//! strictly increasing with no gaps. Delivery is at-least-once and posts
//! run in parallel, so frames may arrive twice or out of order; a client
//! restores the order, drops duplicates and detects a gap from `seq`
//! alone (and fills a gap with `history`). Parsing never panics: every bad input becomes a
//! [`RequestError`] carrying one of the closed set of [`ErrorCode`]s.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::Right;
use crate::event::Sender;
use crate::ids::{IdError, RoomId};

/// The close code of a connection closed because its token expired
/// (locally; on AWS, API Gateway closes it after the `token_expired`
/// error frame).
pub const TOKEN_EXPIRED_CLOSE_CODE: u16 = 4001;

/// Longest `requestId` echoed back.
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// Deepest nesting of arrays and objects a `data` payload may have. Every
/// hop (detail, EventBridge envelope, SQS) wraps it in a few more levels,
/// and JSON parsers along the way stop at 128.
pub const MAX_DATA_DEPTH: usize = 64;

/// The closed set of error codes a client can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// A client request that parsed and validated.
#[derive(Debug, Clone)]
pub enum ClientRequest {
    Join {
        room: RoomId,
        /// A room grant (a signed token) that lets the connection in
        /// beyond its own token's capabilities.
        grant: Option<String>,
        /// The last `seq` the client has of this room: the stream is
        /// replayed from the next one.
        since: Option<u64>,
        /// Enter the room's presence, with this state (at most
        /// [`MAX_PRESENCE_STATE_BYTES`]).
        presence: Option<Option<Box<RawValue>>>,
    },
    /// Sets the caller's presence state in a room it is present in.
    PresenceUpdate {
        room: RoomId,
        state: Box<RawValue>,
    },
    /// A page of the room's present users.
    Presence {
        room: RoomId,
        cursor: Option<String>,
        limit: Option<usize>,
    },
    Leave {
        room: RoomId,
    },
    Publish {
        room: RoomId,
        data: Box<RawValue>,
    },
    /// An ephemeral signal to the room's other members (typing).
    Signal {
        room: RoomId,
        data: Box<RawValue>,
    },
    /// A page of the room's stream, before or after a `seq`.
    History {
        room: RoomId,
        range: HistoryRange,
        limit: Option<usize>,
    },
    /// A new version of one of the caller's own stored messages.
    Update {
        room: RoomId,
        seq: u64,
        data: Box<RawValue>,
    },
    /// Deletes one of the caller's own stored messages.
    Delete {
        room: RoomId,
        seq: u64,
    },
    Ping,
    /// Asks for the caller's own connection id, tenant and user (for
    /// `exclude` and connection targets).
    WhoAmI,
    /// A new token for the same tenant and user, before the current one
    /// expires.
    Refresh {
        token: String,
    },
}

/// Which page of a room's stream `history` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRange {
    /// The newest events (no `before` or `after`).
    Latest,
    /// The events just before this `seq`.
    Before(u64),
    /// The events just after this `seq`.
    After(u64),
}

/// Largest presence `state`, serialized: it travels in every presence
/// notice and page.
pub const MAX_PRESENCE_STATE_BYTES: usize = 1024;

/// Longest token accepted in `refresh` or as a `grant` (far above any
/// real JWT; bounds what one frame makes the verifier parse).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A request with the `requestId` to echo.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub request_id: Option<String>,
    pub request: ClientRequest,
}

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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest<'a> {
    #[serde(default)]
    action: Option<serde_json::Value>,
    #[serde(default)]
    request_id: Option<serde_json::Value>,
    #[serde(default)]
    room: Option<serde_json::Value>,
    /// Present (any JSON, `null` included) or absent: `Option<&RawValue>`
    /// alone would read `"data": null` as absent.
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(default)]
    grant: Option<serde_json::Value>,
    #[serde(default)]
    token: Option<serde_json::Value>,
    #[serde(default)]
    since: Option<serde_json::Value>,
    #[serde(default)]
    before: Option<serde_json::Value>,
    #[serde(default)]
    after: Option<serde_json::Value>,
    #[serde(default)]
    limit: Option<serde_json::Value>,
    #[serde(default)]
    seq: Option<serde_json::Value>,
    #[serde(default)]
    presence: Option<serde_json::Value>,
    #[serde(default, borrow, deserialize_with = "present")]
    state: Option<&'a RawValue>,
    #[serde(default)]
    cursor: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parses one client text frame. `max_payload_bytes` bounds `data`
/// (default [`crate::limits::MAX_PAYLOAD_BYTES`]).
pub fn parse_request(body: &str, max_payload_bytes: usize) -> Result<Envelope, RequestError> {
    const EXPECTED: &str = r#"send a JSON object such as {"action":"ping"} (actions: join, leave, publish, signal, history, update, delete, presence, presence.update, ping, whoami, refresh)"#;
    let bad = |message: String| RequestError::new(None, ErrorCode::BadRequest, message);
    if !body.trim_start().starts_with('{') {
        return Err(bad(format!("the frame is not a JSON object; {EXPECTED}")));
    }
    let raw: RawRequest = serde_json::from_str(body)
        .map_err(|e| bad(format!("the frame is not valid JSON ({e}); {EXPECTED}")))?;
    let request_id = match raw.request_id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.chars().count() <= MAX_REQUEST_ID_LEN => Some(s),
        Some(serde_json::Value::String(_)) => {
            return Err(RequestError::new(
                None,
                ErrorCode::BadRequest,
                format!("requestId must be at most {MAX_REQUEST_ID_LEN} characters"),
            ));
        }
        Some(_) => {
            return Err(RequestError::new(
                None,
                ErrorCode::BadRequest,
                "requestId must be a string",
            ));
        }
    };
    let fail = |code, message: String| RequestError::new(request_id.clone(), code, message);
    let action = match &raw.action {
        Some(serde_json::Value::String(a)) => a.as_str(),
        Some(_) => {
            return Err(fail(
                ErrorCode::BadRequest,
                "action must be a string".into(),
            ));
        }
        None => return Err(fail(ErrorCode::BadRequest, "missing field 'action'".into())),
    };
    let room = || -> Result<RoomId, RequestError> {
        match &raw.room {
            Some(serde_json::Value::String(r)) => RoomId::new(r.as_str())
                .map_err(|e: IdError| fail(ErrorCode::BadRequest, e.to_string())),
            Some(_) => Err(fail(ErrorCode::BadRequest, "room must be a string".into())),
            None => Err(fail(
                ErrorCode::BadRequest,
                format!("missing field 'room' for action '{action}'"),
            )),
        }
    };
    let token = |field: &str,
                 value: &Option<serde_json::Value>|
     -> Result<Option<String>, RequestError> {
        match value {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(t)) if !t.is_empty() && t.len() <= MAX_TOKEN_LEN => {
                Ok(Some(t.clone()))
            }
            Some(_) => Err(fail(
                ErrorCode::BadRequest,
                format!(
                    "{field} must be a token (a non-empty string of at most {MAX_TOKEN_LEN} bytes)"
                ),
            )),
        }
    };
    // A sequence number: a whole number, 0 included (`since: 0` replays
    // from the start).
    let seq_field =
        |field: &str, value: &Option<serde_json::Value>| -> Result<Option<u64>, RequestError> {
            match value {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
                Some(_) => Err(fail(
                    ErrorCode::BadRequest,
                    format!("{field} must be a seq (a whole number of at least 0)"),
                )),
            }
        };
    let data = |action: &str| -> Result<Box<RawValue>, RequestError> {
        let data = raw.data.ok_or_else(|| {
            fail(
                ErrorCode::BadRequest,
                format!("missing field 'data' for action '{action}'"),
            )
        })?;
        check_payload_size(data.get().len(), max_payload_bytes)
            .map_err(|message| fail(ErrorCode::PayloadTooLarge, message))?;
        check_data(data).map_err(|message| fail(ErrorCode::BadRequest, message))?;
        Ok(data.to_owned())
    };
    let state = |required: bool| -> Result<Option<Box<RawValue>>, RequestError> {
        match raw.state {
            None if required => Err(fail(
                ErrorCode::BadRequest,
                format!("missing field 'state' for action '{action}'"),
            )),
            None => Ok(None),
            Some(state) => {
                check_payload_size(state.get().len(), MAX_PRESENCE_STATE_BYTES)
                    .map_err(|m| fail(ErrorCode::PayloadTooLarge, format!("presence {m}")))?;
                check_data(state).map_err(|message| fail(ErrorCode::BadRequest, message))?;
                Ok(Some(state.to_owned()))
            }
        }
    };
    let limit = || -> Result<Option<usize>, RequestError> {
        match &raw.limit {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) if n.as_u64().is_some_and(|l| l >= 1) => {
                Ok(n.as_u64().map(|l| usize::try_from(l).unwrap_or(usize::MAX)))
            }
            Some(_) => Err(fail(
                ErrorCode::BadRequest,
                "limit must be a whole number of at least 1".into(),
            )),
        }
    };
    let message_seq = |action: &str| -> Result<u64, RequestError> {
        match seq_field("seq", &raw.seq)? {
            Some(seq) if seq >= 1 => Ok(seq),
            Some(_) => Err(fail(ErrorCode::BadRequest, "seq must be at least 1".into())),
            None => Err(fail(
                ErrorCode::BadRequest,
                format!("missing field 'seq' for action '{action}'"),
            )),
        }
    };
    let request = match action {
        "join" => ClientRequest::Join {
            room: room()?,
            grant: token("grant", &raw.grant)?,
            since: seq_field("since", &raw.since)?,
            presence: match &raw.presence {
                None | Some(serde_json::Value::Null | serde_json::Value::Bool(false)) => {
                    if raw.state.is_some() {
                        return Err(fail(
                            ErrorCode::BadRequest,
                            "state needs \"presence\": true".into(),
                        ));
                    }
                    None
                }
                Some(serde_json::Value::Bool(true)) => Some(state(false)?),
                Some(_) => {
                    return Err(fail(
                        ErrorCode::BadRequest,
                        "presence must be true or false".into(),
                    ));
                }
            },
        },
        "presence.update" => ClientRequest::PresenceUpdate {
            room: room()?,
            state: state(true)?.unwrap_or_else(|| RawValue::NULL.to_owned()),
        },
        "presence" => ClientRequest::Presence {
            room: room()?,
            cursor: match &raw.cursor {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(c)) if c.len() <= 128 => Some(c.clone()),
                Some(_) => {
                    return Err(fail(
                        ErrorCode::BadRequest,
                        "cursor must be the string a presence reply gave".into(),
                    ));
                }
            },
            limit: limit()?,
        },
        "history" => {
            let range = match (
                seq_field("before", &raw.before)?,
                seq_field("after", &raw.after)?,
            ) {
                (Some(_), Some(_)) => {
                    return Err(fail(
                        ErrorCode::BadRequest,
                        "give before or after, not both".into(),
                    ));
                }
                (Some(before), None) => HistoryRange::Before(before),
                (None, Some(after)) => HistoryRange::After(after),
                (None, None) => HistoryRange::Latest,
            };
            let limit = limit()?;
            ClientRequest::History {
                room: room()?,
                range,
                limit,
            }
        }
        "update" => ClientRequest::Update {
            room: room()?,
            seq: message_seq("update")?,
            data: data("update")?,
        },
        "delete" => ClientRequest::Delete {
            room: room()?,
            seq: message_seq("delete")?,
        },
        "refresh" => ClientRequest::Refresh {
            token: token("token", &raw.token)?.ok_or_else(|| {
                fail(
                    ErrorCode::BadRequest,
                    "missing field 'token' for action 'refresh'".into(),
                )
            })?,
        },
        "leave" => ClientRequest::Leave { room: room()? },
        "ping" => ClientRequest::Ping,
        "whoami" => ClientRequest::WhoAmI,
        "publish" => ClientRequest::Publish {
            room: room()?,
            data: data("publish")?,
        },
        "signal" => ClientRequest::Signal {
            room: room()?,
            data: data("signal")?,
        },
        other => {
            return Err(fail(
                ErrorCode::UnknownAction,
                format!(
                    "unknown action '{other}'; expected join, leave, publish, signal, history, update, delete, presence, presence.update, ping, whoami or refresh"
                ),
            ));
        }
    };
    Ok(Envelope {
        request_id,
        request,
    })
}

/// Checks that `data` is JSON every hop can carry: finite numbers, strings
/// without lone surrogates, and at most [`MAX_DATA_DEPTH`] levels of
/// nesting. Parsing it fully costs once per publish, never per delivery.
pub fn check_data(data: &RawValue) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(data.get()).map_err(|e| {
        format!("data must be plain JSON (finite numbers, valid strings, at most {MAX_DATA_DEPTH} levels deep): {e}")
    })?;
    let depth = depth_of(&value);
    if depth > MAX_DATA_DEPTH {
        return Err(format!(
            "data is nested {depth} levels deep; the limit is {MAX_DATA_DEPTH}"
        ));
    }
    Ok(())
}

/// Nesting depth of a JSON value (a scalar is 0), without recursion.
fn depth_of(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match v {
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            serde_json::Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// Checks a serialized `data` payload against the limit.
pub fn check_payload_size(len: usize, max: usize) -> Result<(), String> {
    if len > max {
        Err(format!("data is {len} bytes; the limit is {max} bytes"))
    } else {
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_is_data_too() {
        let envelope =
            parse_request(r#"{"action":"publish","room":"lobby","data":null}"#, 1024).unwrap();
        match envelope.request {
            ClientRequest::Publish { data, .. } => assert_eq!(data.get(), "null"),
            other => panic!("{other:?}"),
        }
        assert!(parse_request(r#"{"action":"publish","room":"lobby"}"#, 1024).is_err());
    }
    use crate::limits::MAX_PAYLOAD_BYTES;

    fn parse(body: &str) -> Result<Envelope, RequestError> {
        parse_request(body, MAX_PAYLOAD_BYTES)
    }

    #[test]
    fn parses_every_action() {
        let e = parse(r#"{"action":"join","room":"lobby","requestId":"r1"}"#).unwrap();
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        assert!(
            matches!(e.request, ClientRequest::Join { ref room, grant: None, since: None, presence: None } if room.as_str() == "lobby")
        );
        let e = parse(r#"{"action":"join","room":"lobby","grant":"g.h.s"}"#).unwrap();
        assert!(
            matches!(e.request, ClientRequest::Join { grant: Some(ref g), .. } if g == "g.h.s")
        );
        let e = parse(r#"{"action":"refresh","token":"a.b.c"}"#).unwrap();
        assert!(matches!(e.request, ClientRequest::Refresh { ref token } if token == "a.b.c"));
        assert!(parse(r#"{"action":"refresh"}"#).is_err());
        assert!(parse(r#"{"action":"refresh","token":7}"#).is_err());
        assert!(parse(r#"{"action":"join","room":"lobby","grant":""}"#).is_err());
        let e = parse(r#"{"action":"leave","room":"lobby"}"#).unwrap();
        assert!(matches!(e.request, ClientRequest::Leave { .. }));
        assert_eq!(e.request_id, None);
        let e = parse(r#"{"action":"ping","requestId":"r4"}"#).unwrap();
        assert!(matches!(e.request, ClientRequest::Ping));
        let e =
            parse(r#"{"action":"publish","room":"lobby","data":{"text":"hi"},"requestId":"r3"}"#)
                .unwrap();
        match e.request {
            ClientRequest::Publish { room, data } => {
                assert_eq!(room.as_str(), "lobby");
                assert_eq!(data.get(), r#"{"text":"hi"}"#);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn each_bad_input_gets_its_code_and_keeps_the_request_id() {
        let cases: &[(&str, ErrorCode, Option<&str>)] = &[
            ("not json", ErrorCode::BadRequest, None),
            ("[1,2]", ErrorCode::BadRequest, None),
            (r#"{"requestId":"a"}"#, ErrorCode::BadRequest, Some("a")),
            (
                r#"{"action":7,"requestId":"b"}"#,
                ErrorCode::BadRequest,
                Some("b"),
            ),
            (
                r#"{"action":"dance","requestId":"c"}"#,
                ErrorCode::UnknownAction,
                Some("c"),
            ),
            (
                r#"{"action":"join","requestId":"d"}"#,
                ErrorCode::BadRequest,
                Some("d"),
            ),
            (
                r#"{"action":"join","room":"a#b","requestId":"e"}"#,
                ErrorCode::BadRequest,
                Some("e"),
            ),
            (r#"{"action":"join","room":5}"#, ErrorCode::BadRequest, None),
            (
                r#"{"action":"publish","room":"x","requestId":"f"}"#,
                ErrorCode::BadRequest,
                Some("f"),
            ),
            (
                r#"{"action":"ping","requestId":5}"#,
                ErrorCode::BadRequest,
                None,
            ),
        ];
        for (body, code, rid) in cases {
            let err = parse(body).expect_err(body);
            assert_eq!(err.code, *code, "{body}");
            assert_eq!(err.request_id.as_deref(), *rid, "{body}");
        }
    }

    #[test]
    fn oversized_payload_is_payload_too_large() {
        let big = format!(
            r#"{{"action":"publish","room":"x","data":"{}","requestId":"g"}}"#,
            "a".repeat(200)
        );
        let err = parse_request(&big, 100).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
        assert_eq!(err.request_id.as_deref(), Some("g"));
        assert!(parse_request(&big, 300).is_ok());
    }

    #[test]
    fn frames_serialize_as_documented() {
        assert_eq!(
            ServerFrame::Ack {
                request_id: Some("r1")
            }
            .to_json(),
            r#"{"type":"ack","requestId":"r1"}"#
        );
        assert_eq!(
            ServerFrame::Pong { request_id: None }.to_json(),
            r#"{"type":"pong"}"#
        );
        let err = RequestError::new(
            Some("r3".into()),
            ErrorCode::NotMember,
            "join room 'lobby' before publishing to it",
        );
        assert_eq!(
            err.to_frame(),
            r#"{"type":"error","requestId":"r3","code":"not_member","message":"join room 'lobby' before publishing to it"}"#
        );
        let data = RawValue::from_string(r#"{"text":"hi"}"#.into()).unwrap();
        let frame = ServerFrame::Message {
            id: "e1",
            room: Some("lobby"),
            seq: None,
            from: None,
            data: Some(&data),
            sent_at: "2026-11-22T09:00:00.000Z",
            updated_at: None,
            deleted: false,
        }
        .to_json();
        assert_eq!(
            frame,
            r#"{"type":"message","id":"e1","room":"lobby","data":{"text":"hi"},"sentAt":"2026-11-22T09:00:00.000Z"}"#
        );
        let back: ReceivedFrame = serde_json::from_str(&frame).unwrap();
        assert!(matches!(back, ReceivedFrame::Message { ref id, .. } if id == "e1"));
    }

    #[test]
    fn error_codes_are_snake_case() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
    }
}
