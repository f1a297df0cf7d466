//! The sweeper: the one place a connection's departure is carried out,
//! whoever removed its item — `$disconnect` (the clean path), the
//! broadcaster after a 410, or DynamoDB's TTL after missed heartbeats
//! (`$disconnect` is best-effort on API Gateway, so this is how a
//! connection that vanished without saying goodbye still leaves). It runs
//! on the table's change records (DynamoDB Streams, `OLD_IMAGE`; locally
//! the embedded store's change log) and, for every removed connection
//! item: ends its presence in each room it was in (announcing
//! `presence.left` where it was its user's last connection), deletes its
//! memberships, and emits `fanout.connection.closed`. A connection removed
//! by TTL may still have a socket open (a client that stopped
//! heartbeating); it is closed through @connections so the client
//! reconnects and resumes instead of listening to nothing.
//!
//! Idempotent: presence exit is a no-op for a connection no longer
//! present, deletes of deleted items are no-ops, so a retried batch (the
//! mapping retries from the first failed record) changes nothing twice;
//! only `connection.closed` can repeat, as with any at-least-once event.
//!
//! Store cost per removed connection with R rooms: 1 Query (its rooms),
//! R conditional UpdateItems (presence; no-ops where it was not present),
//! ⌈(2R + 1) / 25⌉ BatchWriteItem, 1 PutEvents (plus one per presence
//! notice), and 1 @connections DELETE for TTL removals only.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;

use crate::changes::{connection_from_image, is_connection_removal, removed_by_ttl};
use crate::event::{CONNECTION_CLOSED, GATEWAY_SOURCE, LifecycleEvent};
use std::sync::Arc;

use crate::handlers::{GatewayDeps, emit_lifecycle, presence};
use crate::ports::{ConnectionPoster, ConnectionRecord, PostError, StoreError};

pub const FUNCTION: &str = "sweeper";

/// Removed connections swept at once within one batch.
const SWEEPS_IN_FLIGHT: usize = 16;

/// What the sweeper needs: the gateway's deps, and @connections to close
/// the connections TTL removed (their sockets may still be open).
#[derive(Clone)]
pub struct SweeperDeps {
    pub gateway: GatewayDeps,
    pub poster: Arc<dyn ConnectionPoster>,
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub swept: usize,
    /// Records that were not connection removals (a mapping without the
    /// filter, or a test).
    pub skipped: usize,
    /// Removal records whose image could not be read: logged and dropped,
    /// since retrying cannot repair them.
    pub unreadable: usize,
    pub failed: usize,
}

/// Sweeps every removed connection of the batch. A record whose sweep
/// failed is reported by sequence number (the first one: the mapping
/// retries from there, bisecting as configured).
pub async fn handle(event: &Event, deps: &SweeperDeps) -> DynamoDbEventResponse {
    let (response, report) = sweep_batch(&event.records, deps).await;
    tracing::info!(
        swept = report.swept,
        skipped = report.skipped,
        unreadable = report.unreadable,
        failed = report.failed,
        "sweep done"
    );
    response
}

/// [`handle`] with its report, for callers that count.
pub async fn sweep_batch(
    records: &[EventRecord],
    deps: &SweeperDeps,
) -> (DynamoDbEventResponse, SweepReport) {
    let sweeps: Vec<_> = records.iter().map(|r| sweep(r, deps)).collect();
    let outcomes: Vec<Outcome> = futures::stream::iter(sweeps)
        .buffered(SWEEPS_IN_FLIGHT)
        .collect()
        .await;
    let mut report = SweepReport::default();
    let mut first_failure = None;
    for (record, outcome) in records.iter().zip(outcomes) {
        match outcome {
            Outcome::Swept => report.swept += 1,
            Outcome::Skipped => report.skipped += 1,
            Outcome::Unreadable => report.unreadable += 1,
            Outcome::Failed => {
                report.failed += 1;
                first_failure.get_or_insert_with(|| record.change.sequence_number.clone());
            }
        }
    }
    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence_number) = first_failure {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = sequence_number;
        response.batch_item_failures.push(failure);
    }
    (response, report)
}

enum Outcome {
    Swept,
    Skipped,
    Unreadable,
    Failed,
}

async fn sweep(record: &EventRecord, deps: &SweeperDeps) -> Outcome {
    if !is_connection_removal(record) {
        return Outcome::Skipped;
    }
    let removed = match connection_from_image(&record.change.old_image) {
        Ok(removed) => removed,
        Err(error) => {
            tracing::error!(%error, sequence_number = ?record.change.sequence_number,
                "a removed connection item without a readable image (is the stream's view OLD_IMAGE?)");
            return Outcome::Unreadable;
        }
    };
    match sweep_connection(&removed, removed_by_ttl(record), deps).await {
        Ok(()) => Outcome::Swept,
        Err(error) => {
            tracing::warn!(%error, connection_id = %removed.id, "sweep failed; it is retried");
            Outcome::Failed
        }
    }
}

async fn sweep_connection(
    removed: &ConnectionRecord,
    by_ttl: bool,
    deps: &SweeperDeps,
) -> Result<(), StoreError> {
    let (id, tenant, user) = (&removed.id, &removed.tenant, &removed.user);
    let gateway = &deps.gateway;
    let rooms = gateway.store.connection_rooms(id).await?;
    // Presence before the memberships go: a retry after a failure below
    // still knows the rooms.
    for room in &rooms {
        let outcome = gateway.presence.exit(tenant, room, user, id).await?;
        presence::announce(GATEWAY_SOURCE, tenant, room, outcome, gateway).await;
    }
    gateway.store.purge_connection(id, tenant, &rooms).await?;
    if by_ttl {
        match deps.poster.delete(id).await {
            Ok(()) | Err(PostError::Gone) => {}
            Err(error) => {
                tracing::warn!(%error, connection_id = %id, "could not close an expired connection")
            }
        }
    }
    tracing::info!(connection_id = %id, rooms = rooms.len(), by_ttl, "connection swept");
    emit_lifecycle(
        gateway.bus.as_ref(),
        CONNECTION_CLOSED,
        LifecycleEvent {
            tenant: tenant.clone(),
            user: user.clone(),
            connection_id: id.clone(),
            room: None,
            rooms,
            part: None,
            parts: None,
        },
    )
    .await;
    Ok(())
}
