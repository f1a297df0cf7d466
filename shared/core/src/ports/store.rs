//! The connection store port: connections, sharded memberships, reverse
//! memberships and the user index (DynamoDB on AWS, in memory locally).

use super::Cause;
use async_trait::async_trait;

use crate::auth::{Capabilities, Rights};
use crate::ids::{ConnectionId, RoomId, TenantId, UserId};
use crate::rate::Rate;

/// A registered connection (the `CONN#<id>` / `META` item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub id: ConnectionId,
    pub tenant: TenantId,
    pub user: UserId,
    /// When API Gateway accepted the connection, ms since the epoch.
    pub connected_at_ms: i64,
    /// Last admitted client frame (any action, `ping` included), ms since
    /// the epoch.
    pub last_seen_ms: i64,
    /// Expiry of the connection and all its items, seconds since the
    /// epoch: the earlier of its longest life and its token's expiry, so
    /// reads stop finding it when either passes. The connection item keeps
    /// it as `expiresAt`; its memberships as their `ttl`.
    pub ttl: i64,
    /// When the connection counts as vanished unless a client frame comes
    /// first: the last admitted frame plus `--heartbeat-expiry`, seconds
    /// since the epoch. It is the connection item's DynamoDB TTL attribute,
    /// so a connection that stops heartbeating is deleted by TTL and swept.
    pub idle_until: i64,
    /// When its token expires (`exp`), seconds since the epoch; moved on
    /// by `refresh`.
    pub token_expires_at: i64,
    /// The token's room capabilities; `None` when it had none (the default
    /// policy applies).
    pub capabilities: Option<Capabilities>,
}

impl ConnectionRecord {
    /// Whether reads still find it: neither its life nor its heartbeat
    /// has run out.
    pub fn is_live(&self, now_secs: i64) -> bool {
        self.ttl > now_secs && self.idle_until > now_secs
    }
}

/// A client frame's admission: the connection's record (read whatever its
/// TTL says, so an expired token can be told apart from an unknown
/// connection) and, when the frame is over the connection's rate, how long
/// to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameAdmission {
    pub record: ConnectionRecord,
    pub retry_after_ms: Option<i64>,
}

/// A set of connections that a broadcast can target and that is stored
/// sharded: one room's members, or every connection of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemberSet {
    Room { tenant: TenantId, room: RoomId },
    Tenant(TenantId),
}

/// One page of a paged query; `next` is the cursor for the following page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("connection store unavailable: {0}")]
    Unavailable(#[source] Cause),
    #[error("invalid pagination cursor")]
    BadCursor,
    #[error("corrupt item in the connection store: {0}")]
    Corrupt(String),
}

/// Connections, sharded memberships, reverse memberships and the user index.
/// Every read filters out items whose TTL has passed.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Shards a member set is spread over.
    fn shards(&self) -> u32;

    /// Registers a connection (and indexes it by user and tenant).
    async fn put_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError>;

    /// The live record of a connection, if any.
    async fn get_connection(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Deletes a connection's item (and with it its user-index entry).
    /// Its memberships and presence are the sweeper's: the removal is a
    /// change record the sweeper reacts to, whoever removed the item
    /// (`$disconnect`, a 410, TTL). Returns false when it was already gone.
    async fn delete_connection(&self, id: &ConnectionId) -> Result<bool, StoreError>;

    /// Deletes many connection items at once, as the broadcaster does after
    /// a batch of 410s (batched writes, no reads); the sweeper does the
    /// rest for each.
    async fn delete_connections(&self, ids: &[ConnectionId]) -> Result<(), StoreError>;

    /// Every room a connection has a membership item in, expired ones
    /// included: what the sweeper clears after its item is removed.
    async fn connection_rooms(&self, id: &ConnectionId) -> Result<Vec<RoomId>, StoreError>;

    /// Deletes what a removed connection leaves: its memberships of
    /// `rooms` (both items of each) and its tenant-wide set entry.
    /// Deleting what is already gone is not an error, so a retried sweep
    /// is harmless.
    async fn purge_connection(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        rooms: &[RoomId],
    ) -> Result<(), StoreError>;

    /// Adds a membership (and its reverse item) with the rights a grant
    /// added (none when joined on the token's own rights). Joining again
    /// replaces them.
    async fn join_room(
        &self,
        record: &ConnectionRecord,
        room: &RoomId,
        granted: Rights,
    ) -> Result<(), StoreError>;

    /// Removes a membership. Returns false when it did not exist.
    async fn leave_room(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        room: &RoomId,
    ) -> Result<bool, StoreError>;

    /// How many live rooms a connection has joined (its reverse
    /// memberships), for the rooms-per-connection cap.
    async fn room_count(&self, id: &ConnectionId) -> Result<usize, StoreError>;

    /// The rights a grant added to a live membership; `None` when the
    /// connection is not a member.
    async fn membership(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        room: &RoomId,
    ) -> Result<Option<Rights>, StoreError>;

    async fn is_member(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        room: &RoomId,
    ) -> Result<bool, StoreError> {
        Ok(self.membership(id, tenant, room).await?.is_some())
    }

    /// Counts one client frame against the connection's rate (GCRA on the
    /// connection item, atomically, so concurrent invocations share it),
    /// records an admitted frame as the connection's heartbeat
    /// (`last_seen_ms`, and `idle_until` moved to the given time, in the
    /// same write), and returns the record. `None` when the connection is
    /// unknown. With no rate, only the heartbeat.
    async fn admit_frame(
        &self,
        id: &ConnectionId,
        now_ms: i64,
        rate: Option<Rate>,
        idle_until: i64,
    ) -> Result<Option<FrameAdmission>, StoreError>;

    /// Counts one publish against the tenant's rate. `Some(ms)`: over it,
    /// retry after that long.
    async fn admit_publish(
        &self,
        tenant: &TenantId,
        now_ms: i64,
        rate: Rate,
    ) -> Result<Option<i64>, StoreError>;

    /// Counts one signal against the connection's signal rate (a gate of
    /// its own, tighter than the frame rate). `Some(ms)`: over it, retry
    /// after that long.
    async fn admit_signal(
        &self,
        id: &ConnectionId,
        now_ms: i64,
        rate: Rate,
    ) -> Result<Option<i64>, StoreError>;

    /// Moves a connection's token expiry on (`refresh`): its record gets
    /// the new expiry, capabilities and `ttl`, and every item of the
    /// connection the new `ttl`. Returns false when it is unknown.
    async fn refresh_connection(
        &self,
        id: &ConnectionId,
        token_expires_at: i64,
        capabilities: Option<&Capabilities>,
        ttl: i64,
    ) -> Result<bool, StoreError>;

    /// One page of a member set's shard.
    async fn members_page(
        &self,
        set: &MemberSet,
        shard: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ConnectionId>, StoreError>;

    /// One page of a user's connections.
    async fn user_connections_page(
        &self,
        tenant: &TenantId,
        user: &UserId,
        cursor: Option<&str>,
    ) -> Result<Page<ConnectionId>, StoreError>;
}
