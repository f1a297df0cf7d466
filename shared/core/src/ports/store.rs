//! The connection store port: connections, sharded memberships, reverse
//! memberships and the user index (DynamoDB on AWS, in memory locally).

use async_trait::async_trait;

use crate::ids::{ConnectionId, RoomId, TenantId, UserId};

/// A registered connection (the `CONN#<id>` / `META` item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub id: ConnectionId,
    pub tenant: TenantId,
    pub user: UserId,
    /// When API Gateway accepted the connection, ms since the epoch.
    pub connected_at_ms: i64,
    /// Last heartbeat (`ping`), ms since the epoch.
    pub last_seen_ms: i64,
    /// Expiry, seconds since the epoch (DynamoDB TTL attribute).
    pub ttl: i64,
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

/// What deleting a connection removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedConnection {
    pub record: ConnectionRecord,
    pub rooms: Vec<RoomId>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("connection store unavailable: {0}")]
    Unavailable(String),
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

    /// Records a heartbeat. Returns false when the connection is unknown.
    async fn touch_connection(&self, id: &ConnectionId, now_ms: i64) -> Result<bool, StoreError>;

    /// Deletes a connection with every membership and index entry.
    /// Returns what was removed, or `None` when it was already gone.
    async fn delete_connection(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<RemovedConnection>, StoreError>;

    /// Deletes many connections at once, as the broadcaster does after a
    /// batch of 410s: implementations batch their writes rather than make
    /// one round trip per connection. Returns what was removed; ids that
    /// were already gone are skipped.
    async fn delete_connections(
        &self,
        ids: &[ConnectionId],
    ) -> Result<Vec<RemovedConnection>, StoreError>;

    /// Adds a membership (and its reverse item). Idempotent.
    async fn join_room(&self, record: &ConnectionRecord, room: &RoomId) -> Result<(), StoreError>;

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

    async fn is_member(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        room: &RoomId,
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
