//! The planner (plan queue consumer): turns each `fanout.broadcast` event
//! into delivery jobs. It claims the event's idempotency key first (a
//! conditional write), so a redelivered or republished event is planned
//! once; resolves the target to connection ids (paging every shard to the
//! end, in parallel); serializes the frame once; and either posts a small
//! target directly (the fast path) or cuts the ids into jobs that fit one
//! SQS message and sends them in batches.

use std::collections::HashSet;
use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::{join_all, try_join_all};
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing::Instrument;

use crate::clock::{Clock, rfc3339_ms};
use crate::event::{
    BROADCAST, BroadcastEvent, CLIENT_SOURCE, EventEnvelope, Target, is_reserved_source,
    source_speaks_for,
};
use crate::handlers::broadcaster::{self, BroadcasterDeps, DeliverError};
use crate::handlers::dead_letter_at_once;
use crate::ids::{ConnectionId, TenantId, UserId};
use crate::metrics::{self, Metric, MetricsSink};
use crate::plan::{DeliveryJob, JobHead, PlanError, cut_jobs};
use crate::ports::{
    ConnectionStore, EventClaim, EventDedupe, MemberSet, OutgoingMessage, Queue, QueueError,
    StoreError, send_all,
};
use crate::protocol::ServerFrame;
pub use crate::settings::{JobSettings, PlannerSettings};

/// The function name in metrics.
pub const FUNCTION: &str = "planner";

#[derive(Clone)]
pub struct PlannerDeps {
    pub store: Arc<dyn ConnectionStore>,
    pub dedupe: Arc<dyn EventDedupe>,
    pub deliver_queue: Arc<dyn Queue>,
    /// Where events that retrying cannot fix go at once (the plan DLQ).
    pub dead_letter_queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn MetricsSink>,
    /// Posts small targets directly; `None` always goes through the
    /// deliver queue.
    pub direct: Option<Arc<BroadcasterDeps>>,
    pub settings: PlannerSettings,
    /// How jobs are cut.
    pub jobs: JobSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanEventError {
    #[error("not an EventBridge event: {0}")]
    BadEnvelope(serde_json::Error),
    #[error("invalid fanout.broadcast detail: {0}")]
    BadDetail(serde_json::Error),
    #[error("the message frame is {size} bytes; API Gateway posts at most {max}")]
    FrameTooLarge { size: usize, max: usize },
    #[error("idempotency key '{key}' is being planned by event {owner}; retrying later")]
    InProgress { key: String, owner: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("direct delivery failed: {0}")]
    Direct(#[from] DeliverError),
}

impl PlanEventError {
    /// A stable code when retrying cannot fix this failure.
    pub fn permanent_reason(&self) -> Option<&'static str> {
        match self {
            Self::BadEnvelope(_) => Some("bad_envelope"),
            Self::BadDetail(_) => Some("bad_detail"),
            Self::FrameTooLarge { .. } | Self::Plan(PlanError::FrameTooLarge { .. }) => {
                Some("frame_too_large")
            }
            Self::InProgress { .. } | Self::Store(_) | Self::Queue(_) | Self::Direct(_) => None,
        }
    }
}

/// What planning one event produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSummary {
    pub event_id: String,
    pub connections: usize,
    pub jobs: usize,
    /// Posted by the planner itself (the fast path).
    pub direct: bool,
    /// Dropped: its idempotency key was already planned.
    pub duplicate: bool,
}

/// Plans every record. A record whose failure retrying can fix is
/// reported in `batchItemFailures`, so SQS redelivers it (and, past
/// maxReceiveCount, dead-letters it); one that retrying cannot fix (not an
/// event, an invalid detail, a frame too large) goes to the plan DLQ at
/// once with its reason. The others are deleted.
pub async fn handle(event: SqsEvent, deadline: Instant, deps: &PlannerDeps) -> SqsBatchResponse {
    let retry = join_all(event.records.iter().map(|r| plan_record(r, deadline, deps))).await;
    let mut response = SqsBatchResponse::default();
    for (record, retry) in event.records.iter().zip(retry) {
        if retry {
            push_failure(&mut response, record.message_id.clone().unwrap_or_default());
        }
    }
    response
}

fn push_failure(response: &mut SqsBatchResponse, message_id: String) {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id;
    response.batch_item_failures.push(failure);
}

/// Plans one record; returns whether SQS should deliver it again. Every
/// log line of an event carries its event id.
async fn plan_record(record: &SqsMessage, deadline: Instant, deps: &PlannerDeps) -> bool {
    let body = record.body.as_deref().unwrap_or("");
    let envelope: EventEnvelope = match serde_json::from_str(body) {
        Ok(envelope) => envelope,
        Err(error) => {
            let message_id = record.message_id.as_deref().unwrap_or("");
            let span = tracing::info_span!("record", %message_id);
            return settle(record, None, PlanEventError::BadEnvelope(error), deps)
                .instrument(span)
                .await;
        }
    };
    let span = tracing::info_span!("event", event_id = %envelope.id);
    async {
        match plan_envelope(&envelope, deadline, deps).await {
            Ok(_) => false,
            Err(error) => settle(record, Some(&envelope.id), error, deps).await,
        }
    }
    .instrument(span)
    .await
}

async fn plan_envelope(
    envelope: &EventEnvelope,
    deadline: Instant,
    deps: &PlannerDeps,
) -> Result<Option<PlanSummary>, PlanEventError> {
    if envelope.detail_type != BROADCAST {
        tracing::warn!(detail_type = %envelope.detail_type,
            "ignoring event that is not a broadcast (check the rule's pattern)");
        return Ok(None);
    }
    let mut event: BroadcastEvent =
        serde_json::from_str(envelope.detail.get()).map_err(PlanEventError::BadDetail)?;
    // Only the gateway's own client publishes name a client sender; any
    // `from` another publisher wrote is replaced by its Source.
    event.from = event.sender(&envelope.source);
    if let Some(reason) = refused_source(&envelope.source, &event, &deps.settings) {
        tracing::error!(source = %envelope.source, tenant = %event.tenant, reason,
            "broadcast refused for its source; not delivered");
        deps.metrics.record(
            FUNCTION,
            &envelope.id,
            &[Metric::count(metrics::REFUSED_SOURCES, 1)],
        );
        return Ok(None);
    }
    let published_at_ms = chrono::DateTime::parse_from_rfc3339(&envelope.time)
        .ok()
        .map(|t| t.timestamp_millis());
    plan_once(&envelope.id, published_at_ms, &event, deadline, deps)
        .await
        .map(Some)
}

/// Decides what a failed record becomes: dead-lettered at once when
/// retrying cannot help, otherwise retried. Returns whether to retry.
async fn settle(
    record: &SqsMessage,
    event_id: Option<&str>,
    error: PlanEventError,
    deps: &PlannerDeps,
) -> bool {
    let Some(reason) = error.permanent_reason() else {
        if matches!(error, PlanEventError::InProgress { .. }) {
            tracing::info!(%error, "event is being planned elsewhere; retrying later");
        } else {
            tracing::error!(%error, "could not plan event; it will be retried");
        }
        return true;
    };
    let queue = deps.dead_letter_queue.as_ref();
    match dead_letter_at_once(queue, record, reason, &error.to_string(), event_id).await {
        Ok(()) => {
            tracing::error!(%error, reason, dead_letter_queue = deps.dead_letter_queue.name(),
                "event cannot be planned; sent to the dead-letter queue at once");
            deps.metrics.record(
                FUNCTION,
                event_id.unwrap_or(""),
                &[Metric::count(metrics::DEAD_LETTERED, 1)],
            );
            false
        }
        Err(send_error) => {
            tracing::error!(%error, %send_error,
                "event cannot be planned and the dead-letter queue refused it; it will be retried");
            true
        }
    }
}

/// Why a broadcast's `Source` may not publish for its tenant, if it may not.
pub fn refused_source(
    source: &str,
    event: &BroadcastEvent,
    settings: &PlannerSettings,
) -> Option<&'static str> {
    if source == CLIENT_SOURCE {
        // The message function set the tenant from the authorizer.
        return None;
    }
    if is_reserved_source(source) {
        return Some("fanout.* sources are reserved for the gateway");
    }
    if settings.tenant_bound_sources && !source_speaks_for(source, &event.tenant) {
        return Some(
            "the source does not speak for the event's tenant (expected <tenant> or <tenant>.<service>)",
        );
    }
    None
}

/// The dedupe marker's key: idempotency keys are scoped to their tenant.
pub fn dedupe_key(event_id: &str, event: &BroadcastEvent) -> String {
    let key = event.idempotency_key.as_deref().unwrap_or(event_id);
    format!("{}#{key}", event.tenant)
}

/// Claims the event's idempotency key, plans it, and marks it done; a key
/// already done is dropped as a duplicate.
pub async fn plan_once(
    event_id: &str,
    published_at_ms: Option<i64>,
    event: &BroadcastEvent,
    deadline: Instant,
    deps: &PlannerDeps,
) -> Result<PlanSummary, PlanEventError> {
    let key = dedupe_key(event_id, event);
    let now_ms = deps.clock.now_ms();
    // The claim lasts as long as this invocation can: if it dies, a later
    // delivery takes over once the lease has passed.
    let lease = deadline.saturating_duration_since(Instant::now());
    match deps
        .dedupe
        .claim_event(&key, event_id, now_ms, lease)
        .await?
    {
        EventClaim::Claimed => {}
        EventClaim::AlreadyDone { owner } => {
            tracing::info!(idempotency_key = %key, planned_as = %owner, "duplicate event dropped");
            deps.metrics.record(
                FUNCTION,
                event_id,
                &[Metric::count(metrics::DUPLICATE_EVENTS, 1)],
            );
            return Ok(PlanSummary {
                event_id: event_id.to_string(),
                connections: 0,
                jobs: 0,
                direct: false,
                duplicate: true,
            });
        }
        EventClaim::InProgress { owner } => {
            return Err(PlanEventError::InProgress { key, owner });
        }
    }
    match plan_event(event_id, published_at_ms, event, deadline, deps).await {
        Ok(summary) => {
            let expires = deps.clock.now_secs() + deps.settings.dedupe_ttl.as_secs() as i64;
            if let Err(error) = deps.dedupe.complete_event(&key, event_id, expires).await {
                // The jobs are sent; at worst a redelivery plans it again
                // once the lease passes, and clients drop the duplicate.
                tracing::error!(%error, idempotency_key = %key, "could not mark event planned");
            }
            Ok(summary)
        }
        Err(error) => {
            if let Err(release_error) = deps.dedupe.release_event(&key, event_id).await {
                tracing::warn!(%release_error, idempotency_key = %key,
                    "could not release the claim; a retry waits for its lease");
            }
            Err(error)
        }
    }
}

/// Plans one broadcast: resolve, frame, then post directly or cut and send.
pub async fn plan_event(
    event_id: &str,
    published_at_ms: Option<i64>,
    event: &BroadcastEvent,
    deadline: Instant,
    deps: &PlannerDeps,
) -> Result<PlanSummary, PlanEventError> {
    let sent_at = rfc3339_ms(deps.clock.now_ms());
    let frame = ServerFrame::Message {
        id: event_id,
        room: event.target.room().map(|r| r.as_str()),
        from: event.from.as_ref(),
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

    let Resolved {
        mut connections,
        other_tenant,
    } = resolve(&event.tenant, &event.target, deps.store.as_ref()).await?;
    if !other_tenant.is_empty() {
        // Never delivered: a publisher of one tenant must not reach another.
        tracing::warn!(tenant = %event.tenant, connections = ?other_tenant,
            "target names connections of another tenant; dropped");
        deps.metrics.record(
            FUNCTION,
            event_id,
            &[Metric::count(
                metrics::CROSS_TENANT_TARGETS,
                other_tenant.len(),
            )],
        );
    }
    if !event.exclude.is_empty() {
        let excluded: HashSet<&ConnectionId> = event.exclude.iter().collect();
        connections.retain(|c| !excluded.contains(c));
    }
    let mut summary = PlanSummary {
        event_id: event_id.to_string(),
        connections: connections.len(),
        jobs: 0,
        direct: false,
        duplicate: false,
    };
    let direct = deps
        .direct
        .as_ref()
        .filter(|_| connections.len() <= deps.settings.direct_max_connections);
    if let Some(direct) = direct {
        if !connections.is_empty() {
            let job = DeliveryJob {
                event_id: event_id.to_string(),
                attempt: 1,
                published_at_ms,
                dead_letter: None,
                connections,
                frame,
            };
            broadcaster::deliver(&job, deadline, direct).await?;
            summary.direct = true;
        }
    } else {
        let bodies = cut_jobs(
            &JobHead::new(event_id, published_at_ms),
            &frame,
            &connections,
            deps.jobs.job_budget_bytes,
            deps.jobs.max_connections_per_job,
        )?;
        let messages: Vec<OutgoingMessage> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| OutgoingMessage::new(i.to_string(), body))
            .collect();
        send_all(deps.deliver_queue.as_ref(), &messages).await?;
        summary.jobs = messages.len();
    }
    deps.metrics.record(
        FUNCTION,
        event_id,
        &[
            Metric::count(metrics::PLANNED_CONNECTIONS, summary.connections),
            Metric::count(metrics::JOBS, summary.jobs),
            Metric::count(
                metrics::DIRECT_DELIVERIES,
                if summary.direct {
                    summary.connections
                } else {
                    0
                },
            ),
        ],
    );
    tracing::info!(
        connections = summary.connections,
        jobs = summary.jobs,
        direct = summary.direct,
        "planned broadcast"
    );
    Ok(summary)
}

/// What a target resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Live connections of the event's tenant.
    pub connections: Vec<ConnectionId>,
    /// Connections the target named that belong to another tenant: never
    /// delivered to.
    pub other_tenant: Vec<ConnectionId>,
}

/// Every live connection of `tenant` a target names. Rooms, users and the
/// tenant set are keyed by tenant; a connection target is looked up (one
/// read) and kept only when it is live and of the same tenant.
pub async fn resolve(
    tenant: &TenantId,
    target: &Target,
    store: &dyn ConnectionStore,
) -> Result<Resolved, StoreError> {
    let connections = match target {
        Target::Connection(id) => {
            return Ok(match store.get_connection(id).await? {
                Some(record) if &record.tenant == tenant => Resolved {
                    connections: vec![id.clone()],
                    other_tenant: Vec::new(),
                },
                Some(_) => Resolved {
                    connections: Vec::new(),
                    other_tenant: vec![id.clone()],
                },
                None => Resolved::default(),
            });
        }
        Target::User(user) => user_connections(tenant, user, store).await?,
        Target::Room(room) => {
            let set = MemberSet::Room {
                tenant: tenant.clone(),
                room: room.clone(),
            };
            all_shards(&set, store).await?
        }
        Target::Tenant(_) => all_shards(&MemberSet::Tenant(tenant.clone()), store).await?,
    };
    Ok(Resolved {
        connections,
        other_tenant: Vec::new(),
    })
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
