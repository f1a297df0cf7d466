//! The room stream port: each room's sequence counter and the events
//! stored behind history and resume (items on the connection table on
//! AWS, in memory locally).

use async_trait::async_trait;
use serde_json::value::RawValue;

use super::StoreError;
use crate::event::Sender;
use crate::ids::{RoomId, TenantId};

/// What a stored event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A published message.
    Message,
    /// A new version of message `of`.
    Updated { of: u64 },
    /// The deletion of message `of`.
    Deleted { of: u64 },
}

/// One event of a room's stream as stored: a message (its current
/// version) or an edit.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    pub seq: u64,
    pub kind: EntryKind,
    /// The EventBridge event id it was published as.
    pub event_id: String,
    /// The dedupe key it was planned under, so a crashed planner's retry
    /// can find the number it took.
    pub dedupe_key: String,
    pub from: Option<Sender>,
    /// The payload; `None` for a deleted message and for a deletion.
    pub data: Option<Box<RawValue>>,
    /// When it was published, ms since the epoch.
    pub sent_at_ms: i64,
    /// When a message was last updated or deleted, ms since the epoch.
    pub updated_at_ms: Option<i64>,
    /// A message that was deleted (its data is gone).
    pub deleted: bool,
    /// Expiry, seconds since the epoch (DynamoDB TTL attribute).
    pub ttl: i64,
}

/// Which entries a read returns: those after or before a sequence number
/// (exclusive), always in ascending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRange {
    /// The first entries after this one.
    After(u64),
    /// The last entries before this one.
    Before(u64),
}

/// A change to a stored message.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Replaces its data.
    Update(Box<RawValue>),
    /// Drops its data and marks it deleted.
    Delete,
}

/// What [`RoomStreams::edit_entry`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOutcome {
    Applied,
    /// No live message with that number (never stored, expired, or an
    /// edit rather than a message).
    Missing,
    /// The message was deleted already.
    Deleted,
}

/// Per-room sequence numbers and stored events. Reads skip entries whose
/// TTL has passed and are strongly consistent: a `join` that stored its
/// membership and then reads the stream sees every event whose planner
/// stored it before resolving the room's members.
#[async_trait]
pub trait RoomStreams: Send + Sync {
    /// Takes the room's next sequence number: one atomic increment of its
    /// counter, so concurrent planners never share or skip one.
    async fn next_seq(&self, tenant: &TenantId, room: &RoomId) -> Result<u64, StoreError>;

    /// The last number taken (0 for a room that never stored an event).
    async fn head(&self, tenant: &TenantId, room: &RoomId) -> Result<u64, StoreError>;

    /// Stores an entry under its number. A second put of the same number
    /// (a retried planner) keeps the first.
    async fn put_entry(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        entry: &StreamEntry,
    ) -> Result<(), StoreError>;

    /// The live entry with this number, if any.
    async fn get_entry(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        seq: u64,
    ) -> Result<Option<StreamEntry>, StoreError>;

    /// At most `limit` live entries of `range`, in ascending order.
    async fn read(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        range: StreamRange,
        limit: usize,
    ) -> Result<Vec<StreamEntry>, StoreError>;

    /// Applies an edit to live message `seq` (conditionally: never to a
    /// deleted one), stamping `updated_at_ms`.
    async fn edit_entry(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        seq: u64,
        edit: &Edit,
        updated_at_ms: i64,
    ) -> Result<EditOutcome, StoreError>;

    /// The number of the entry stored under `dedupe_key` among the room's
    /// last `scan` entries: how the retry of a planner that died after
    /// storing an event finds the number it took.
    async fn find_by_key(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        dedupe_key: &str,
        scan: usize,
    ) -> Result<Option<u64>, StoreError>;
}
