//! The planner (plan queue consumer): turns each `fanout.broadcast` event
//! into delivery jobs. It claims the event's idempotency key first (a
//! conditional write), so a redelivered or republished event is planned
//! once; numbers and stores a room event in the room's stream (an atomic
//! counter, so concurrent planners never share or skip a `seq`, and the
//! number is kept with the dedupe marker for retries); serializes the
//! frame once; then resolves the target to connection ids (paging every
//! shard to the end, in parallel) and either posts a small target
//! directly (the fast path) or cuts the ids into jobs that fit one SQS
//! message and sends them in batches.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::{join_all, try_join_all};
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing::Instrument;

use crate::clock::{Clock, rfc3339_ms};
use crate::event::{
    BROADCAST, BroadcastEvent, CLIENT_SOURCE, EventEnvelope, GATEWAY_SOURCE, PresenceNotice,
    StreamOp, Target, is_reserved_source, source_speaks_for,
};
use crate::handlers::broadcaster::{self, BroadcasterDeps, DeliverError};
use crate::handlers::dead_letter_at_once;
use crate::ids::{ConnectionId, RoomId, TenantId, UserId};
use crate::metrics::{self, Metric, MetricsSink};
use crate::plan::{DeliveryJob, JobHead, PlanError, cut_jobs};
use crate::ports::{
    ConnectionStore, Edit, EditOutcome, EntryKind, EventClaim, EventDedupe, MemberSet,
    OutgoingMessage, PriorAttempt, Queue, QueueError, RoomStreams, StoreError, send_all,
};
use crate::protocol::{PresenceFrame, ServerFrame};
pub use crate::settings::{JobSettings, PlannerSettings, StreamSettings};
use crate::stream;

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
    /// Room streams: where room events are numbered and stored.
    pub streams: Arc<dyn RoomStreams>,
    pub stream: StreamSettings,
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
    /// Its number in its room's stream, when stored.
    pub seq: Option<u64>,
}

impl PlanSummary {
    /// An event that reached nobody (yet).
    fn dropped(event_id: &str, duplicate: bool) -> Self {
        Self {
            event_id: event_id.to_string(),
            connections: 0,
            jobs: 0,
            direct: false,
            duplicate,
            seq: None,
        }
    }
}

/// Plans every record. A record whose failure retrying can fix is
/// reported in `batchItemFailures`, so SQS redelivers it (and, past
/// maxReceiveCount, dead-letters it); one that retrying cannot fix (not an
/// event, an invalid detail, a frame too large) goes to the plan DLQ at
/// once with its reason. The others are deleted.
pub async fn handle(event: SqsEvent, deadline: Instant, deps: &PlannerDeps) -> SqsBatchResponse {
    let superseded = superseded_signals(&event.records);
    let retry = join_all(event.records.iter().enumerate().map(|(i, r)| {
        let superseded = superseded.contains(&i);
        async move {
            if superseded {
                let id = r.message_id.as_deref().unwrap_or("");
                deps.metrics.record(
                    FUNCTION,
                    id,
                    &[Metric::count(metrics::COALESCED_SIGNALS, 1)],
                );
                return false;
            }
            plan_record(r, deadline, deps).await
        }
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for (record, retry) in event.records.iter().zip(retry) {
        if retry {
            push_failure(&mut response, record.message_id.clone().unwrap_or_default());
        }
    }
    response
}

/// The records of a batch that a later signal from the same sender to the
/// same room makes pointless (typing indicators: only the latest state
/// matters). Signals queued while the planner was busy, or within the
/// mapping's batching window, are coalesced this way at no store cost.
fn superseded_signals(records: &[SqsMessage]) -> HashSet<usize> {
    let mut latest: HashMap<String, usize> = HashMap::new();
    let mut superseded = HashSet::new();
    for (i, record) in records.iter().enumerate() {
        let body = record.body.as_deref().unwrap_or("");
        // Most records are not signals: skip parsing them twice.
        if !body.contains("\"signal\":true") {
            continue;
        }
        let Ok(envelope) = serde_json::from_str::<EventEnvelope>(body) else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<BroadcastEvent>(envelope.detail.get()) else {
            continue;
        };
        if envelope.detail_type != BROADCAST || !event.signal {
            continue;
        }
        let sender = serde_json::to_string(&event.sender(&envelope.source)).unwrap_or_default();
        let key = format!(
            "{}\u{0}{:?}\u{0}{sender}",
            event.tenant,
            event.target.room()
        );
        if let Some(earlier) = latest.insert(key, i) {
            superseded.insert(earlier);
        }
    }
    superseded
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
    if event.presence.is_some() {
        // Presence notices come from the message and disconnect
        // functions alone.
        return (source != CLIENT_SOURCE && source != GATEWAY_SOURCE)
            .then_some("presence notices come from the gateway only");
    }
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

/// Claims the event's idempotency key, stores it in its room's stream,
/// plans it, and marks it done (with its `seq`); a key already done is
/// dropped as a duplicate. A failed attempt releases the key keeping the
/// `seq` it took, so the retry delivers the same number.
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
    let prior = match deps
        .dedupe
        .claim_event(&key, event_id, now_ms, lease)
        .await?
    {
        EventClaim::Claimed { prior } => prior,
        EventClaim::AlreadyDone { owner } => {
            tracing::info!(idempotency_key = %key, planned_as = %owner, "duplicate event dropped");
            deps.metrics.record(
                FUNCTION,
                event_id,
                &[Metric::count(metrics::DUPLICATE_EVENTS, 1)],
            );
            return Ok(PlanSummary::dropped(event_id, true));
        }
        EventClaim::InProgress { owner } => {
            return Err(PlanEventError::InProgress { key, owner });
        }
    };
    let mut seq = None;
    let result = async {
        let frame = match store_in_stream(event_id, &key, event, prior, &mut seq, deps).await? {
            Stored::Frame(frame) => frame,
            Stored::Refused => return Ok(PlanSummary::dropped(event_id, false)),
        };
        plan_event(event_id, published_at_ms, event, frame, deadline, deps).await
    }
    .await;
    let expires = deps.clock.now_secs() + deps.settings.dedupe_ttl.as_secs() as i64;
    match result {
        Ok(mut summary) => {
            summary.seq = seq;
            if let Err(error) = deps
                .dedupe
                .complete_event(&key, event_id, expires, seq)
                .await
            {
                // The jobs are sent; at worst a redelivery plans it again
                // once the lease passes, and clients drop the duplicate.
                tracing::error!(%error, idempotency_key = %key, "could not mark event planned");
            }
            Ok(summary)
        }
        Err(error) => {
            if let Err(release_error) = deps
                .dedupe
                .release_event(&key, event_id, seq, expires)
                .await
            {
                tracing::warn!(%release_error, idempotency_key = %key,
                    "could not release the claim; a retry waits for its lease");
            }
            Err(error)
        }
    }
}

/// What storing an event in its room's stream left to deliver.
enum Stored {
    /// The frame to deliver (with its `seq` when stored).
    Frame(Box<RawValue>),
    /// An edit whose message is not in the stream: not delivered.
    Refused,
}

/// Numbers and stores a room event (unless it opted out or its room is
/// ephemeral), applies an edit to the message it names, and renders the
/// frame. `seq` is set as soon as a number is taken, so a failure after it
/// releases the claim with it. Store cost per stored event: one counter
/// update, one put, and for an edit one read and one update of the
/// message.
async fn store_in_stream(
    event_id: &str,
    key: &str,
    event: &BroadcastEvent,
    prior: PriorAttempt,
    seq: &mut Option<u64>,
    deps: &PlannerDeps,
) -> Result<Stored, PlanEventError> {
    let now_ms = deps.clock.now_ms();
    let room = event.target.room();
    if event.signal {
        return checked_frame(signal_frame(event_id, event, now_ms), deps).map(Stored::Frame);
    }
    if let Some(notice) = &event.presence {
        return checked_frame(presence_frame(event, notice, now_ms), deps).map(Stored::Frame);
    }
    let streamed = room.filter(|r| event.stream && deps.stream.is_streamed(r));
    let op = event.stream_op();
    let Some(room) = streamed else {
        if op != StreamOp::Append {
            return Ok(refuse_edit(
                event_id,
                event,
                "the room is not streamed",
                deps,
            ));
        }
        let entry = stream::new_entry(event_id, key, event, 0, now_ms, &deps.stream);
        return checked_frame(stream::frame(&entry, room, None), deps).map(Stored::Frame);
    };
    let tenant = &event.tenant;
    let streams = deps.streams.as_ref();
    let earlier = match prior {
        PriorAttempt::Numbered(seq) => Some(seq),
        // It may have stored the event before dying: find its number
        // among the room's latest entries.
        PriorAttempt::Crashed => {
            streams
                .find_by_key(tenant, room, key, deps.stream.replay_max_events)
                .await?
        }
        PriorAttempt::None => None,
    };
    // A first attempt checks the edited message exists; a retry may find
    // it already edited by the attempt before.
    if let (None, StreamOp::Update(of) | StreamOp::Delete(of)) = (earlier, op) {
        let live = streams.get_entry(tenant, room, of).await?;
        if !live.is_some_and(|m| m.kind == EntryKind::Message && !m.deleted) {
            return Ok(refuse_edit(
                event_id,
                event,
                "its message is not in the stream (never stored, expired or deleted)",
                deps,
            ));
        }
    }
    // A frame too large to post is refused before it takes a number, so
    // it leaves no hole in the stream.
    let mut entry = stream::new_entry(event_id, key, event, u64::MAX, now_ms, &deps.stream);
    checked_frame(stream::frame(&entry, Some(room), Some(entry.seq)), deps)?;
    let number = match earlier {
        Some(number) => number,
        None => streams.next_seq(tenant, room).await?,
    };
    *seq = Some(number);
    entry.seq = number;
    let frame = checked_frame(stream::frame(&entry, Some(room), Some(number)), deps)?;
    streams.put_entry(tenant, room, &entry).await?;
    let edit = match op {
        StreamOp::Append => None,
        StreamOp::Update(of) => Some((of, Edit::Update(event.data.clone()))),
        StreamOp::Delete(of) => Some((of, Edit::Delete)),
    };
    if let Some((of, edit)) = edit {
        let outcome = streams.edit_entry(tenant, room, of, &edit, now_ms).await?;
        if outcome != EditOutcome::Applied {
            // Deleted or expired in between: the edit event is stored and
            // delivered; clients apply it to whatever they hold.
            tracing::info!(
                ?outcome,
                of,
                seq = number,
                "edited message changed meanwhile"
            );
        }
    }
    deps.metrics.record(
        FUNCTION,
        event_id,
        &[Metric::count(metrics::STREAMED_EVENTS, 1)],
    );
    Ok(Stored::Frame(frame))
}

/// The `signal` frame for a signal event (validated to target a room).
fn signal_frame(event_id: &str, event: &BroadcastEvent, now_ms: i64) -> String {
    let sent_at = rfc3339_ms(now_ms);
    ServerFrame::Signal {
        id: event_id,
        room: event.target.room().map(RoomId::as_str).unwrap_or_default(),
        from: event.from.as_ref(),
        data: &event.data,
        sent_at: &sent_at,
    }
    .to_json()
}

/// The `presence.*` frame for a presence notice (validated to target a
/// room).
fn presence_frame(event: &BroadcastEvent, notice: &PresenceNotice, now_ms: i64) -> String {
    let sent_at = rfc3339_ms(now_ms);
    let frame = PresenceFrame {
        kind: notice.kind.frame_type(),
        room: event.target.room().map(RoomId::as_str).unwrap_or_default(),
        user: notice.user.as_ref().map(UserId::as_str),
        state: notice.state.as_deref(),
        version: notice.version,
        connections: notice.connections,
        members: notice.members,
        sent_at: &sent_at,
    };
    serde_json::to_string(&frame).unwrap_or_default()
}

fn refuse_edit(event_id: &str, event: &BroadcastEvent, reason: &str, deps: &PlannerDeps) -> Stored {
    tracing::warn!(tenant = %event.tenant, room = ?event.target.room(), op = ?event.stream_op(),
        reason, "update or delete refused; not delivered");
    deps.metrics.record(
        FUNCTION,
        event_id,
        &[Metric::count(metrics::REFUSED_EDITS, 1)],
    );
    Stored::Refused
}

/// The frame as raw JSON, if API Gateway can post it.
fn checked_frame(frame: String, deps: &PlannerDeps) -> Result<Box<RawValue>, PlanEventError> {
    if frame.len() > deps.settings.max_frame_bytes {
        return Err(PlanEventError::FrameTooLarge {
            size: frame.len(),
            max: deps.settings.max_frame_bytes,
        });
    }
    RawValue::from_string(frame).map_err(PlanEventError::BadDetail)
}

/// Plans one broadcast: resolve, then post directly or cut and send. The
/// targets are resolved after the event was stored, so a member that
/// joined and read the stream before the store is found here.
pub async fn plan_event(
    event_id: &str,
    published_at_ms: Option<i64>,
    event: &BroadcastEvent,
    frame: Box<RawValue>,
    deadline: Instant,
    deps: &PlannerDeps,
) -> Result<PlanSummary, PlanEventError> {
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
        connections: connections.len(),
        ..PlanSummary::dropped(event_id, false)
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
