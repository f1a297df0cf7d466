//! The shared field cursor every action parses from (the shape of
//! mini-redis's `Parse`): the frame read once into its known fields, with
//! one typed accessor per field that names the field and the action in
//! its error. An action's `parse` reads only the fields it takes, in the
//! order its errors should be reported.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::data::{check_data, check_payload_size};
use super::{ErrorCode, MAX_PRESENCE_STATE_BYTES, MAX_REQUEST_ID_LEN, MAX_TOKEN_LEN, RequestError};
use crate::ids::RoomId;

/// Longest presence `cursor` accepted (the store's cursors are far shorter).
const MAX_CURSOR_LEN: usize = 128;

/// An action's parser: the request it reads from the frame's fields.
pub(super) trait Parse: Sized {
    fn parse(fields: &Fields<'_>) -> Result<Self, RequestError>;
}

/// Every field any action takes. Unknown fields are ignored; a duplicate
/// field makes the frame invalid JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest<'a> {
    #[serde(default)]
    action: Option<Value>,
    #[serde(default)]
    request_id: Option<Value>,
    #[serde(default)]
    room: Option<Value>,
    /// Present (any JSON, `null` included) or absent: `Option<&RawValue>`
    /// alone would read `"data": null` as absent.
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(default)]
    grant: Option<Value>,
    #[serde(default)]
    token: Option<Value>,
    #[serde(default)]
    since: Option<Value>,
    #[serde(default)]
    before: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
    #[serde(default)]
    limit: Option<Value>,
    #[serde(default)]
    seq: Option<Value>,
    #[serde(default)]
    presence: Option<Value>,
    #[serde(default, borrow, deserialize_with = "present")]
    state: Option<&'a RawValue>,
    #[serde(default)]
    cursor: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// One frame's fields, for the action it names.
pub(super) struct Fields<'a> {
    raw: RawRequest<'a>,
    request_id: Option<String>,
    /// The action being parsed, for error texts.
    action: &'static str,
    max_payload_bytes: usize,
}

impl<'a> Fields<'a> {
    /// Reads a frame that is a JSON object with a valid `requestId`.
    /// `expected` ends the error texts of frames that are not.
    pub fn read(
        body: &'a str,
        max_payload_bytes: usize,
        expected: &str,
    ) -> Result<Self, RequestError> {
        let bad = |message: String| RequestError::new(None, ErrorCode::BadRequest, message);
        if !body.trim_start().starts_with('{') {
            return Err(bad(format!("the frame is not a JSON object; {expected}")));
        }
        let raw: RawRequest = serde_json::from_str(body)
            .map_err(|e| bad(format!("the frame is not valid JSON ({e}); {expected}")))?;
        let request_id = match &raw.request_id {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() <= MAX_REQUEST_ID_LEN => Some(s.clone()),
            Some(Value::String(_)) => {
                return Err(bad(format!(
                    "requestId must be at most {MAX_REQUEST_ID_LEN} characters"
                )));
            }
            Some(_) => return Err(bad("requestId must be a string".into())),
        };
        Ok(Self {
            raw,
            request_id,
            action: "",
            max_payload_bytes,
        })
    }

    /// The `action` the frame names.
    pub fn action(&self) -> Result<&str, RequestError> {
        match &self.raw.action {
            Some(Value::String(action)) => Ok(action),
            Some(_) => Err(self.bad("action must be a string")),
            None => Err(self.bad("missing field 'action'")),
        }
    }

    /// Parses the rest of the frame as `action`.
    pub fn parse_as(&mut self, action: &'static str) {
        self.action = action;
    }

    pub fn request_id(&self) -> Option<String> {
        self.request_id.clone()
    }

    pub fn fail(&self, code: ErrorCode, message: impl Into<String>) -> RequestError {
        RequestError::new(self.request_id(), code, message)
    }

    pub fn bad(&self, message: impl Into<String>) -> RequestError {
        self.fail(ErrorCode::BadRequest, message)
    }

    fn missing(&self, field: &str) -> RequestError {
        self.bad(format!(
            "missing field '{field}' for action '{}'",
            self.action
        ))
    }

    pub fn room(&self) -> Result<RoomId, RequestError> {
        match &self.raw.room {
            Some(Value::String(room)) => {
                RoomId::new(room.as_str()).map_err(|e| self.bad(e.to_string()))
            }
            Some(_) => Err(self.bad("room must be a string")),
            None => Err(self.missing("room")),
        }
    }

    /// A room grant (a signed token), when given.
    pub fn grant(&self) -> Result<Option<String>, RequestError> {
        self.token_field("grant", &self.raw.grant)
    }

    /// The `token` of a `refresh`.
    pub fn token(&self) -> Result<String, RequestError> {
        self.token_field("token", &self.raw.token)?
            .ok_or_else(|| self.missing("token"))
    }

    fn token_field(
        &self,
        field: &str,
        value: &Option<Value>,
    ) -> Result<Option<String>, RequestError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(t)) if !t.is_empty() && t.len() <= MAX_TOKEN_LEN => {
                Ok(Some(t.clone()))
            }
            Some(_) => Err(self.bad(format!(
                "{field} must be a token (a non-empty string of at most {MAX_TOKEN_LEN} bytes)"
            ))),
        }
    }

    pub fn since(&self) -> Result<Option<u64>, RequestError> {
        self.seq_field("since", &self.raw.since)
    }

    pub fn before(&self) -> Result<Option<u64>, RequestError> {
        self.seq_field("before", &self.raw.before)
    }

    pub fn after(&self) -> Result<Option<u64>, RequestError> {
        self.seq_field("after", &self.raw.after)
    }

    /// The `seq` of a stored message: at least 1.
    pub fn message_seq(&self) -> Result<u64, RequestError> {
        match self.seq_field("seq", &self.raw.seq)? {
            Some(seq) if seq >= 1 => Ok(seq),
            Some(_) => Err(self.bad("seq must be at least 1")),
            None => Err(self.missing("seq")),
        }
    }

    /// A sequence number: a whole number, 0 included (`since: 0` replays
    /// from the start).
    fn seq_field(&self, field: &str, value: &Option<Value>) -> Result<Option<u64>, RequestError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(_) => Err(self.bad(format!(
                "{field} must be a seq (a whole number of at least 0)"
            ))),
        }
    }

    /// A page size: at least 1.
    pub fn limit(&self) -> Result<Option<usize>, RequestError> {
        match &self.raw.limit {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|l| l >= 1) => {
                Ok(n.as_u64().map(|l| usize::try_from(l).unwrap_or(usize::MAX)))
            }
            Some(_) => Err(self.bad("limit must be a whole number of at least 1")),
        }
    }

    /// The payload, within the configured limit and plain JSON.
    pub fn data(&self) -> Result<Box<RawValue>, RequestError> {
        let data = self.raw.data.ok_or_else(|| self.missing("data"))?;
        check_payload_size(data.get().len(), self.max_payload_bytes)
            .map_err(|e| self.fail(ErrorCode::PayloadTooLarge, e.to_string()))?;
        check_data(data).map_err(|e| self.bad(e.to_string()))?;
        Ok(data.to_owned())
    }

    /// `presence`: `true` enters the room's presence; absent, `null` or
    /// `false` does not.
    pub fn presence(&self) -> Result<bool, RequestError> {
        match &self.raw.presence {
            None | Some(Value::Null | Value::Bool(false)) => Ok(false),
            Some(Value::Bool(true)) => Ok(true),
            Some(_) => Err(self.bad("presence must be true or false")),
        }
    }

    pub fn has_state(&self) -> bool {
        self.raw.state.is_some()
    }

    /// A presence `state`, when given: at most [`MAX_PRESENCE_STATE_BYTES`].
    pub fn optional_state(&self) -> Result<Option<Box<RawValue>>, RequestError> {
        let Some(state) = self.raw.state else {
            return Ok(None);
        };
        check_payload_size(state.get().len(), MAX_PRESENCE_STATE_BYTES)
            .map_err(|e| self.fail(ErrorCode::PayloadTooLarge, format!("presence {e}")))?;
        check_data(state).map_err(|e| self.bad(e.to_string()))?;
        Ok(Some(state.to_owned()))
    }

    pub fn state(&self) -> Result<Box<RawValue>, RequestError> {
        self.optional_state()?.ok_or_else(|| self.missing("state"))
    }

    /// A presence page's `cursor`, as a previous reply gave it.
    pub fn cursor(&self) -> Result<Option<String>, RequestError> {
        match &self.raw.cursor {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(c)) if c.len() <= MAX_CURSOR_LEN => Ok(Some(c.clone())),
            Some(_) => Err(self.bad("cursor must be the string a presence reply gave")),
        }
    }
}
