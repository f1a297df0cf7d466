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
