//! The dedupe port: idempotency markers the planner claims before planning
//! an event (conditional writes on the connection table on AWS).

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

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

    /// Marks `key` done, with the stream number its event got; it stays
    /// until `expires_at_secs` (its TTL).
    async fn complete_event(
        &self,
        key: &str,
        owner: &str,
        expires_at_secs: i64,
        seq: Option<u64>,
    ) -> Result<(), StoreError>;

    /// Gives up `owner`'s unfinished claim, so a retry need not wait for
    /// the lease to pass. When the event was numbered (`seq`), the marker
    /// stays until `expires_at_secs` holding the number for the retry;
    /// otherwise it is deleted.
    async fn release_event(
        &self,
        key: &str,
        owner: &str,
        seq: Option<u64>,
        expires_at_secs: i64,
    ) -> Result<(), StoreError>;
}

/// How long a claim outlives its lease: a planner that dies holding one
/// leaves it readable until SQS delivers the event again (visibility
/// timeout × receive count, minutes), so the retry knows to look for the
/// number it may have taken.
pub const CLAIM_KEPT_AFTER_LEASE_SECS: i64 = 86_400;

/// The result of [`EventDedupe::claim_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventClaim {
    /// Plan it, knowing what an earlier attempt left.
    Claimed { prior: PriorAttempt },
    /// Already planned: drop it.
    AlreadyDone { owner: String },
    /// Another delivery of it is being planned right now: try later.
    InProgress { owner: String },
}

/// What an earlier attempt at planning the same key left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriorAttempt {
    /// None: this is the first (or the key's window had passed).
    None,
    /// It failed and released the key after numbering the event: reuse
    /// the number.
    Numbered(u64),
    /// Its planner died holding the claim: it may have numbered and
    /// stored the event before dying.
    Crashed,
}
