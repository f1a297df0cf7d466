//! Reading a room: a page of its stream (`history`) or of its present
//! users (`presence`).

use crate::ids::RoomId;
use crate::protocol::RequestError;
use crate::protocol::fields::{Fields, Parse};

/// A page of the room's stream, before or after a `seq`.
#[derive(Debug, Clone)]
pub struct History {
    pub room: RoomId,
    pub range: HistoryRange,
    pub limit: Option<usize>,
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

impl Parse for History {
    fn parse(f: &Fields<'_>) -> Result<Self, RequestError> {
        let range = match (f.before()?, f.after()?) {
            (Some(_), Some(_)) => return Err(f.bad("give before or after, not both")),
            (Some(before), None) => HistoryRange::Before(before),
            (None, Some(after)) => HistoryRange::After(after),
            (None, None) => HistoryRange::Latest,
        };
        let limit = f.limit()?;
        Ok(Self {
            room: f.room()?,
            range,
            limit,
        })
    }
}

/// A page of the room's present users.
#[derive(Debug, Clone)]
pub struct Presence {
    pub room: RoomId,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

impl Parse for Presence {
    fn parse(f: &Fields<'_>) -> Result<Self, RequestError> {
        Ok(Self {
            room: f.room()?,
            cursor: f.cursor()?,
            limit: f.limit()?,
        })
    }
}
