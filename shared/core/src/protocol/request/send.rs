//! Sending to a room: `publish`, `signal`, and edits of the caller's own
//! stored messages (`update`, `delete`).

use serde_json::value::RawValue;

use crate::ids::RoomId;
use crate::protocol::RequestError;
use crate::protocol::fields::{Fields, Parse};

#[derive(Debug, Clone)]
pub struct Publish {
    pub room: RoomId,
    pub data: Box<RawValue>,
}

impl Parse for Publish {
    fn parse(f: &Fields<'_>) -> Result<Self, RequestError> {
        Ok(Self {
            room: f.room()?,
            data: f.data()?,
        })
    }
}

/// An ephemeral signal to the room's other members (typing).
#[derive(Debug, Clone)]
pub struct Signal {
    pub room: RoomId,
    pub data: Box<RawValue>,
}

impl Parse for Signal {
    fn parse(f: &Fields<'_>) -> Result<Self, RequestError> {
        Ok(Self {
            room: f.room()?,
            data: f.data()?,
        })
    }
}

/// A new version of one of the caller's own stored messages.
#[derive(Debug, Clone)]
pub struct Update {
    pub room: RoomId,
    pub seq: u64,
    pub data: Box<RawValue>,
}

impl Parse for Update {
    fn parse(f: &Fields<'_>) -> Result<Self, RequestError> {
        Ok(Self {
            room: f.room()?,
            seq: f.message_seq()?,
            data: f.data()?,
        })
    }
}

/// Deletes one of the caller's own stored messages.
#[derive(Debug, Clone)]
pub struct Delete {
    pub room: RoomId,
    pub seq: u64,
}

impl Parse for Delete {
    fn parse(f: &Fields<'_>) -> Result<Self, RequestError> {
        Ok(Self {
            room: f.room()?,
            seq: f.message_seq()?,
        })
    }
}
