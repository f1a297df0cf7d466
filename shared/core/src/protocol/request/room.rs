//! Membership of a room: `join`, `leave`, and the caller's presence state
//! in it (`presence.update`).

use serde_json::value::RawValue;

use crate::ids::RoomId;
use crate::protocol::RequestError;
use crate::protocol::fields::{Fields, Parse};

/// Joins a room; with `since`, resumes it from a `seq`.
#[derive(Debug, Clone)]
pub struct Join {
    pub room: RoomId,
    /// A room grant (a signed token) that lets the connection in
    /// beyond its own token's capabilities.
    pub grant: Option<String>,
    /// The last `seq` the client has of this room: the stream is
    /// replayed from the next one.
    pub since: Option<u64>,
    /// Enter the room's presence, with this state (at most
    /// [`MAX_PRESENCE_STATE_BYTES`](crate::protocol::MAX_PRESENCE_STATE_BYTES)).
    pub presence: Option<Option<Box<RawValue>>>,
}

impl Parse for Join {
    fn parse(f: &Fields<'_>) -> Result<Self, RequestError> {
        let room = f.room()?;
        let grant = f.grant()?;
        let since = f.since()?;
        let presence = if f.presence()? {
            Some(f.optional_state()?)
        } else if f.has_state() {
            return Err(f.bad("state needs \"presence\": true"));
        } else {
            None
        };
        Ok(Self {
            room,
            grant,
            since,
            presence,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Leave {
    pub room: RoomId,
}

impl Parse for Leave {
    fn parse(f: &Fields<'_>) -> Result<Self, RequestError> {
        Ok(Self { room: f.room()? })
    }
}

/// Sets the caller's presence state in a room it is present in.
#[derive(Debug, Clone)]
pub struct PresenceUpdate {
    pub room: RoomId,
    pub state: Box<RawValue>,
}

impl Parse for PresenceUpdate {
    fn parse(f: &Fields<'_>) -> Result<Self, RequestError> {
        Ok(Self {
            room: f.room()?,
            state: f.state()?,
        })
    }
}
