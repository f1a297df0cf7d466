//! The ports: small traits the handlers talk to. Each has an embedded
//! adapter (in [`crate::embedded`], or the local gateway's registry for the
//! poster) and an AWS adapter. Handlers take only the ports they need.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::ids::{ConnectionId, RoomId, TenantId, UserId};

// ---------------------------------------------------------------------------
// Connection store
// ---------------------------------------------------------------------------

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

/// Dedupe markers: the planner claims an event's idempotency key before
/// planning it, and marks it done after its jobs are sent, so a redelivered
/// or republished event is planned once.
#[async_trait]
pub trait EventDedupe: Send + Sync {
    /// Claims `key` for `owner` (the event id) with a conditional write.
    /// A claim whose lease has passed can be taken over; a done marker
    /// cannot, until its TTL passes.
    async fn claim_event(
        &self,
        key: &str,
        owner: &str,
        now_ms: i64,
        lease: Duration,
    ) -> Result<EventClaim, StoreError>;

    /// Marks `key` done; it stays until `expires_at_secs` (its TTL).
    async fn complete_event(
        &self,
        key: &str,
        owner: &str,
        expires_at_secs: i64,
    ) -> Result<(), StoreError>;

    /// Drops `owner`'s unfinished claim, so a retry need not wait for the
    /// lease to pass.
    async fn release_event(&self, key: &str, owner: &str) -> Result<(), StoreError>;
}

/// The result of [`EventDedupe::claim_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventClaim {
    /// Plan it.
    Claimed,
    /// Already planned: drop it.
    AlreadyDone { owner: String },
    /// Another delivery of it is being planned right now: try later.
    InProgress { owner: String },
}

/// The shard a connection's membership lives in. Stable across processes
/// (FNV-1a), because the AWS store writes it into partition keys.
pub fn shard_of(id: &ConnectionId, shards: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id.as_str().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % shards.max(1)
}

// ---------------------------------------------------------------------------
// Event bus
// ---------------------------------------------------------------------------

/// One PutEvents entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    pub source: String,
    pub detail_type: String,
    /// JSON object text.
    pub detail: String,
    pub resources: Vec<String>,
}

impl BusEntry {
    pub fn new(
        source: impl Into<String>,
        detail_type: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            source: source.into(),
            detail_type: detail_type.into(),
            detail: detail.into(),
            resources: Vec::new(),
        }
    }

    /// EventBridge's entry size: 14 bytes for Time plus the UTF-8 bytes of
    /// Source, DetailType, Detail and each Resources entry.
    pub fn size(&self) -> usize {
        14 + self.source.len()
            + self.detail_type.len()
            + self.detail.len()
            + self.resources.iter().map(String::len).sum::<usize>()
    }
}

/// The per-entry outcome of PutEvents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    Accepted { event_id: String },
    Failed { code: String, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event bus throttled the request: {0}")]
    Throttled(String),
    #[error("event bus refused the request: {0}")]
    Invalid(String),
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    #[error("{failed} of {total} entries failed after retries; first error: {code}: {message}")]
    EntriesFailed {
        failed: usize,
        total: usize,
        code: String,
        message: String,
    },
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Puts at most [`crate::limits::EVENTBRIDGE_MAX_ENTRIES`] entries; one
    /// outcome per entry, in order.
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryOutcome>, BusError>;
}

/// Refuses a PutEvents call with an entry over EventBridge's size limit,
/// naming the entry, before anything is sent (every bus adapter does this,
/// so no adapter sends half a batch of a request AWS would refuse).
pub fn check_entry_sizes(entries: &[BusEntry], max: usize) -> Result<(), BusError> {
    match entries.iter().position(|e| e.size() > max) {
        Some(i) => Err(BusError::Invalid(format!(
            "entry {i} ({} / {}) is {} bytes; EventBridge takes at most {max} per entry",
            entries[i].source,
            entries[i].detail_type,
            entries[i].size()
        ))),
        None => Ok(()),
    }
}

/// Attempts per entry before [`publish`] gives up on it.
pub const PUBLISH_ATTEMPTS: u32 = 3;

/// Publishes any number of entries in calls of at most ten, resending only
/// the failed entries. Returns the event ids in input order.
pub async fn publish(bus: &dyn EventBus, entries: &[BusEntry]) -> Result<Vec<String>, BusError> {
    let mut ids = vec![String::new(); entries.len()];
    let mut pending: Vec<usize> = (0..entries.len()).collect();
    let mut last_failure = (String::new(), String::new());
    for attempt in 0..PUBLISH_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        let mut still_failing = Vec::new();
        for chunk in pending.chunks(crate::limits::EVENTBRIDGE_MAX_ENTRIES) {
            let batch: Vec<BusEntry> = chunk.iter().map(|&i| entries[i].clone()).collect();
            let outcomes = bus.put_events(&batch).await?;
            for (&i, outcome) in chunk.iter().zip(outcomes) {
                match outcome {
                    EntryOutcome::Accepted { event_id } => ids[i] = event_id,
                    EntryOutcome::Failed { code, message } => {
                        last_failure = (code, message);
                        still_failing.push(i);
                    }
                }
            }
        }
        pending = still_failing;
    }
    if pending.is_empty() {
        Ok(ids)
    } else {
        Err(BusError::EntriesFailed {
            failed: pending.len(),
            total: entries.len(),
            code: last_failure.0,
            message: last_failure.1,
        })
    }
}

// ---------------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------------

/// Message attributes (SQS string attributes), e.g. the error EventBridge
/// records on a dead-lettered event.
pub type Attributes = BTreeMap<String, String>;

/// A message to send; `id` is unique within one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub id: String,
    pub body: String,
    pub delay: Duration,
    pub attributes: Attributes,
}

impl OutgoingMessage {
    /// A message with no delay and no attributes.
    pub fn new(id: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            body: body.into(),
            delay: Duration::ZERO,
            attributes: Attributes::new(),
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// When it was first sent, ms since the epoch.
    pub sent_at_ms: i64,
    pub attributes: Attributes,
}

/// A batch entry the queue refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    pub code: String,
    pub message: String,
    /// Whether resending can succeed (SQS's `SenderFault` is false).
    pub retryable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {queue} unavailable: {message}")]
    Unavailable { queue: String, message: String },
    #[error("message {id} is {size} bytes; the queue takes at most {max}")]
    TooLarge { id: String, size: usize, max: usize },
    #[error("batch refused by queue {queue}: {message}")]
    Invalid { queue: String, message: String },
    #[error(
        "{failed} of {total} messages could not be sent to {queue}; first error: {code}: {message}"
    )]
    EntriesFailed {
        queue: String,
        failed: usize,
        total: usize,
        code: String,
        message: String,
    },
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// The queue's name, for logs and errors.
    fn name(&self) -> &str;

    /// The queue's ARN (event sources carry it).
    fn arn(&self) -> String;

    /// Sends at most ten messages; returns the entries that failed.
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, QueueError>;

    /// Receives up to `max` messages, waiting up to `wait` for the first,
    /// hiding each for `visibility`.
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Deletes received messages by receipt handle.
    async fn delete(&self, receipt_handles: &[String]) -> Result<(), QueueError>;

    /// Makes a received message visible again after `timeout`.
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError>;

    /// How many messages the queue holds (SQS's approximate counts).
    async fn depth(&self) -> Result<QueueDepth, QueueError>;
}

/// A queue's messages by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Ready to be received.
    pub visible: u64,
    /// Received and not yet deleted (hidden by a visibility timeout).
    pub in_flight: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
}

impl QueueDepth {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// Attempts per message before [`send_all`] gives up on it.
pub const SEND_ATTEMPTS: u32 = 3;

/// Sends any number of messages in batches of at most ten entries and
/// [`crate::limits::SQS_MAX_BATCH_BYTES`], resending only failed entries.
pub async fn send_all(queue: &dyn Queue, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
    let mut pending: Vec<&OutgoingMessage> = messages.iter().collect();
    let mut last = (String::new(), String::new());
    for attempt in 0..SEND_ATTEMPTS {
        if pending.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        let mut failed_ids = std::collections::HashSet::new();
        for batch in crate::plan::send_batches(&pending) {
            let owned: Vec<OutgoingMessage> = batch.iter().map(|m| (*m).clone()).collect();
            for failure in queue.send_batch(&owned).await? {
                if !failure.retryable {
                    return Err(QueueError::Invalid {
                        queue: queue.name().to_string(),
                        message: format!("{}: {}", failure.code, failure.message),
                    });
                }
                last = (failure.code, failure.message);
                failed_ids.insert(failure.id);
            }
        }
        pending.retain(|m| failed_ids.contains(&m.id));
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(QueueError::EntriesFailed {
            queue: queue.name().to_string(),
            failed: pending.len(),
            total: messages.len(),
            code: last.0,
            message: last.1,
        })
    }
}

// ---------------------------------------------------------------------------
// Connection poster (API Gateway Management API)
// ---------------------------------------------------------------------------

/// Why a post (or get/delete) to a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// 410: the connection is gone; delete its records.
    #[error("connection is gone (410)")]
    Gone,
    /// 429 / LimitExceededException: throttled or the client's buffer is full.
    #[error("throttled (429): {0}")]
    Throttled(String),
    /// 413: the frame is larger than API Gateway posts.
    #[error("payload too large (413)")]
    PayloadTooLarge,
    /// 403: IAM or endpoint misconfiguration.
    #[error("forbidden (403), check the endpoint and execute-api:ManageConnections: {0}")]
    Forbidden(String),
    /// Any other HTTP status.
    #[error("HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// No response: timeout, connection refused, reset.
    #[error("transport error: {0}")]
    Transport(String),
}

/// What GetConnection returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub connected_at_ms: i64,
    pub last_active_at_ms: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
}

#[async_trait]
pub trait ConnectionPoster: Send + Sync {
    /// Sends one frame. `frame` is shared, never copied per connection.
    async fn post(&self, id: &ConnectionId, frame: &Bytes) -> Result<(), PostError>;

    async fn get(&self, id: &ConnectionId) -> Result<ConnectionInfo, PostError>;

    /// Closes the connection.
    async fn delete(&self, id: &ConnectionId) -> Result<(), PostError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_in_range() {
        let id = ConnectionId::new("L0SM9cOFvHcCIhw=").unwrap();
        assert_eq!(shard_of(&id, 4), shard_of(&id, 4));
        let mut seen = [0u32; 8];
        for i in 0..8_000 {
            let id = ConnectionId::new(format!("c{i}")).unwrap();
            seen[shard_of(&id, 8) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "uneven spread {seen:?}");
        assert_eq!(shard_of(&id, 0), 0);
    }

    #[test]
    fn entry_size_follows_eventbridge() {
        let mut e = BusEntry::new("a", "bb", "{}");
        e.resources.push("r".into());
        assert_eq!(e.size(), 14 + 1 + 2 + 2 + 1);
    }
}
