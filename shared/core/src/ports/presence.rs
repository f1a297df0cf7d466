//! The presence port: who is in a room, by user (a user with three tabs is
//! one member with three connections), with a small client state and a
//! per-member version (items on the connection table on AWS, in memory
//! locally).

use async_trait::async_trait;
use serde_json::value::RawValue;

use super::{Page, StoreError};
use crate::ids::{ConnectionId, RoomId, TenantId, UserId};

/// One present user of a room.
#[derive(Debug, Clone)]
pub struct PresenceMember {
    pub user: UserId,
    /// Its connections present in the room.
    pub connections: usize,
    pub state: Option<Box<RawValue>>,
    /// Moves on with every change of this member, so clients order
    /// changes per member whatever order they arrive in.
    pub version: u64,
}

/// The version a member's presence starts from when it has none: the
/// clock in microsecond-sized steps, so a user who left and comes back
/// starts above the `left` clients applied (unless it changed more than a
/// thousand times per millisecond it was present).
pub fn first_presence_version(now_ms: i64) -> u64 {
    u64::try_from(now_ms).unwrap_or(0).saturating_mul(1_000)
}

/// What a presence change did to the room's member list.
#[derive(Debug, Clone)]
pub enum PresenceChange {
    /// The user's first connection entered: it is a new member.
    Joined(PresenceMember),
    /// Another connection of a present user entered or left, or its state
    /// was set to what it was: nothing to tell the room.
    Unchanged,
    /// The state changed.
    Updated(PresenceMember),
    /// The user's last connection left.
    Left { user: UserId, version: u64 },
}

/// Where a room's member count stands after a change.
#[derive(Debug, Clone)]
pub struct PresenceOutcome {
    pub change: PresenceChange,
    /// Present users in the room after it.
    pub members: u64,
}

impl PresenceOutcome {
    /// Nothing changed; the room has `members` present users.
    pub fn unchanged(members: u64) -> Self {
        Self {
            change: PresenceChange::Unchanged,
            members,
        }
    }
}

#[async_trait]
pub trait PresenceStore: Send + Sync {
    /// Adds a connection to its user's presence in the room (atomically:
    /// concurrent tabs of one user make one `Joined`), setting the state
    /// when given. The member lives until `ttl` unless entered again.
    async fn enter(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        user: &UserId,
        connection: &ConnectionId,
        state: Option<&RawValue>,
        ttl: i64,
    ) -> Result<PresenceOutcome, StoreError>;

    /// Removes a connection from its user's presence in the room: `Left`
    /// when it was the last, `Unchanged` when it was not present (so the
    /// clean `$disconnect` and a later sweep of the same connection
    /// announce the departure once).
    async fn exit(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        user: &UserId,
        connection: &ConnectionId,
    ) -> Result<PresenceOutcome, StoreError>;

    /// Sets the state of a present user (through one of its present
    /// connections; `Unchanged` otherwise).
    async fn set_state(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        user: &UserId,
        connection: &ConnectionId,
        state: &RawValue,
    ) -> Result<PresenceOutcome, StoreError>;

    /// How many users are present in the room.
    async fn presence_count(&self, tenant: &TenantId, room: &RoomId) -> Result<u64, StoreError>;

    /// One page of a room's present users, ordered by user id.
    async fn presence_page(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<PresenceMember>, StoreError>;

    /// Claims the right to send the room's next `presence.count`: true at
    /// most once per `interval_ms` per room, across concurrent functions.
    async fn claim_count_notice(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<bool, StoreError>;
}
