//! The planner (plan queue consumer): turns each `fanout.broadcast` event
//! into delivery jobs. It resolves the target to connection ids (paging
//! every shard to the end, in parallel), serializes the frame once, cuts
//! the ids into jobs that fit one SQS message, and sends them in batches.

use std::collections::HashSet;
use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::{join_all, try_join_all};
use serde_json::value::RawValue;

use crate::clock::{Clock, rfc3339_ms};
use crate::event::{BROADCAST, BroadcastEvent, EventEnvelope, Target};
use crate::ids::{ConnectionId, TenantId, UserId};
use crate::limits::{DEFAULT_MAX_CONNECTIONS_PER_JOB, MAX_MESSAGE_BYTES, SQS_MAX_MESSAGE_BYTES};
use crate::plan::{PlanError, cut_jobs};
use crate::ports::{
    ConnectionStore, MemberSet, OutgoingMessage, Queue, QueueError, StoreError, send_all,
};
use crate::protocol::ServerFrame;

#[derive(Clone)]
pub struct PlannerDeps {
    pub store: Arc<dyn ConnectionStore>,
    pub deliver_queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub settings: PlannerSettings,
}

#[derive(Debug, Clone)]
pub struct PlannerSettings {
    /// Largest delivery-job message (SQS budget).
    pub job_budget_bytes: usize,
    /// Most connection ids in one job, so a room spreads over workers.
    pub max_connections_per_job: usize,
    /// Largest frame API Gateway will post.
    pub max_frame_bytes: usize,
}

impl Default for PlannerSettings {
    fn default() -> Self {
        Self {
            job_budget_bytes: SQS_MAX_MESSAGE_BYTES,
            max_connections_per_job: DEFAULT_MAX_CONNECTIONS_PER_JOB,
            max_frame_bytes: MAX_MESSAGE_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanEventError {
    #[error("not an EventBridge event: {0}")]
    BadEnvelope(serde_json::Error),
    #[error("invalid fanout.broadcast detail: {0}")]
    BadDetail(serde_json::Error),
    #[error("the message frame is {size} bytes; API Gateway posts at most {max}")]
    FrameTooLarge { size: usize, max: usize },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What planning one event produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSummary {
    pub event_id: String,
    pub connections: usize,
    pub jobs: usize,
}

/// Plans every record; a record that fails is reported in
/// `batchItemFailures` so SQS redelivers it (and, past maxReceiveCount,
/// dead-letters it) while the others are deleted.
pub async fn handle(event: SqsEvent, deps: &PlannerDeps) -> SqsBatchResponse {
    let results = join_all(event.records.iter().map(|r| plan_record(r, deps))).await;
    let mut response = SqsBatchResponse::default();
    for (record, result) in event.records.iter().zip(results) {
        let message_id = record.message_id.clone().unwrap_or_default();
        match result {
            Ok(Some(summary)) => tracing::info!(
                event_id = %summary.event_id, connections = summary.connections, jobs = summary.jobs,
                "planned broadcast"),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, message_id = %message_id, "could not plan event; it will be retried");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}

async fn plan_record(
    record: &SqsMessage,
    deps: &PlannerDeps,
) -> Result<Option<PlanSummary>, PlanEventError> {
    let body = record.body.as_deref().unwrap_or("");
    let envelope: EventEnvelope =
        serde_json::from_str(body).map_err(PlanEventError::BadEnvelope)?;
    if envelope.detail_type != BROADCAST {
        tracing::warn!(event_id = %envelope.id, detail_type = %envelope.detail_type,
            "ignoring event that is not a broadcast (check the rule's pattern)");
        return Ok(None);
    }
    let event: BroadcastEvent =
        serde_json::from_str(envelope.detail.get()).map_err(PlanEventError::BadDetail)?;
    plan_event(&envelope.id, &event, deps).await.map(Some)
}

/// Plans one broadcast: resolve, frame, cut, send.
pub async fn plan_event(
    event_id: &str,
    event: &BroadcastEvent,
    deps: &PlannerDeps,
) -> Result<PlanSummary, PlanEventError> {
    let sent_at = rfc3339_ms(deps.clock.now_ms());
    let frame = ServerFrame::Message {
        id: event_id,
        room: event.target.room().map(|r| r.as_str()),
        data: &event.data,
        sent_at: &sent_at,
    }
    .to_json();
    if frame.len() > deps.settings.max_frame_bytes {
        return Err(PlanEventError::FrameTooLarge {
            size: frame.len(),
            max: deps.settings.max_frame_bytes,
        });
    }
    let frame = RawValue::from_string(frame).map_err(PlanEventError::BadDetail)?;

    let mut connections = resolve(&event.tenant, &event.target, deps.store.as_ref()).await?;
    if !event.exclude.is_empty() {
        let excluded: HashSet<&ConnectionId> = event.exclude.iter().collect();
        connections.retain(|c| !excluded.contains(c));
    }
    let bodies = cut_jobs(
        event_id,
        1,
        &frame,
        &connections,
        deps.settings.job_budget_bytes,
        deps.settings.max_connections_per_job,
    )?;
    let messages: Vec<OutgoingMessage> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| OutgoingMessage {
            id: i.to_string(),
            body,
            delay: std::time::Duration::ZERO,
        })
        .collect();
    send_all(deps.deliver_queue.as_ref(), &messages).await?;
    Ok(PlanSummary {
        event_id: event_id.to_string(),
        connections: connections.len(),
        jobs: messages.len(),
    })
}

/// Every live connection a target names.
pub async fn resolve(
    tenant: &TenantId,
    target: &Target,
    store: &dyn ConnectionStore,
) -> Result<Vec<ConnectionId>, StoreError> {
    match target {
        Target::Connection(id) => Ok(vec![id.clone()]),
        Target::User(user) => user_connections(tenant, user, store).await,
        Target::Room(room) => {
            let set = MemberSet::Room {
                tenant: tenant.clone(),
                room: room.clone(),
            };
            all_shards(&set, store).await
        }
        Target::Tenant(_) => all_shards(&MemberSet::Tenant(tenant.clone()), store).await,
    }
}

async fn all_shards(
    set: &MemberSet,
    store: &dyn ConnectionStore,
) -> Result<Vec<ConnectionId>, StoreError> {
    let shards = try_join_all((0..store.shards()).map(|shard| async move {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store.members_page(set, shard, cursor.as_deref()).await?;
            ids.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok::<_, StoreError>(ids),
            }
        }
    }))
    .await?;
    Ok(shards.into_iter().flatten().collect())
}

async fn user_connections(
    tenant: &TenantId,
    user: &UserId,
    store: &dyn ConnectionStore,
) -> Result<Vec<ConnectionId>, StoreError> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .user_connections_page(tenant, user, cursor.as_deref())
            .await?;
        ids.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(ids),
        }
    }
}
