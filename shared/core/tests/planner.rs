//! The planner against the embedded store: a room event's `seq` is taken
//! once, and kept by a republish with the same idempotency key, by the
//! retry of a failed attempt, and by the retry of a planner that died
//! after storing the event; replays stay within their budget; signals are
//! never stored and are coalesced per sender within a batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fanout_core::clock::ManualClock;
use fanout_core::event::{BroadcastEvent, Sender};
use fanout_core::handlers::planner::{PlannerDeps, dedupe_key, plan_once};
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::metrics::MetricTotals;
use fanout_core::ports::{
    ConnectionRecord, ConnectionStore, EventDedupe, FailedEntry, OutgoingMessage, Queue,
    QueueDepth, QueueError, ReceivedMessage, RoomStreams, StreamRange,
};
use fanout_core::stream::{StreamSettings, new_entry};
use fanout_embedded::{MemoryQueue, MemoryStore, QueueSettings};
use serde_json::value::RawValue;
use tokio::time::Instant;

const NOW_MS: i64 = 1_800_000_000_000;

/// The deliver queue, refusing sends while `failing` is set.
struct FlakyQueue {
    inner: Arc<MemoryQueue>,
    failing: AtomicBool,
}

#[async_trait]
impl Queue for FlakyQueue {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn arn(&self) -> String {
        self.inner.arn()
    }
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, QueueError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable {
                queue: self.name().into(),
                message: "injected".into(),
            });
        }
        self.inner.send_batch(messages).await
    }
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.inner.receive(max, wait, visibility).await
    }
    async fn delete(&self, handles: &[String]) -> Result<(), QueueError> {
        self.inner.delete(handles).await
    }
    async fn change_visibility(&self, handle: &str, timeout: Duration) -> Result<(), QueueError> {
        self.inner.change_visibility(handle, timeout).await
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.inner.depth().await
    }
}

struct World {
    deps: PlannerDeps,
    store: Arc<MemoryStore>,
    deliver: Arc<FlakyQueue>,
    clock: Arc<ManualClock>,
}

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn lobby() -> RoomId {
    RoomId::new("lobby").unwrap()
}

async fn world() -> World {
    let clock = ManualClock::at_ms(NOW_MS);
    let store = Arc::new(MemoryStore::new(clock.clone(), 2));
    let member = ConnectionRecord {
        id: ConnectionId::new("c1").unwrap(),
        tenant: acme(),
        user: UserId::new("alice").unwrap(),
        connected_at_ms: NOW_MS,
        last_seen_ms: NOW_MS,
        ttl: NOW_MS / 1000 + 3_600,
        idle_until: NOW_MS / 1000 + 3_600,
        token_expires_at: NOW_MS / 1000 + 3_600,
        capabilities: None,
    };
    store.put_connection(&member).await.unwrap();
    store
        .join_room(&member, &lobby(), Default::default())
        .await
        .unwrap();
    let deliver = Arc::new(FlakyQueue {
        inner: MemoryQueue::new("fanout-deliver", QueueSettings::default()),
        failing: AtomicBool::new(false),
    });
    let deps = PlannerDeps {
        store: store.clone(),
        dedupe: store.clone(),
        deliver_queue: deliver.clone(),
        dead_letter_queue: MemoryQueue::new("fanout-plan-dlq", QueueSettings::default()),
        clock: clock.clone(),
        metrics: MetricTotals::new(),
        direct: None,
        settings: Default::default(),
        jobs: Default::default(),
        streams: store.clone(),
        stream: StreamSettings::default(),
    };
    World {
        deps,
        store,
        deliver,
        clock,
    }
}

fn event(key: Option<&str>) -> BroadcastEvent {
    BroadcastEvent {
        idempotency_key: key.map(str::to_owned),
        from: Some(Sender::Service {
            service: "acme.chat".into(),
        }),
        ..BroadcastEvent::to_room(
            acme(),
            lobby(),
            RawValue::from_string(r#"{"text":"hi"}"#.into()).unwrap(),
        )
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

async fn stored_seqs(w: &World) -> Vec<u64> {
    w.store
        .read(&acme(), &lobby(), StreamRange::After(0), 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect()
}

#[tokio::test]
async fn a_republished_event_keeps_its_seq_and_is_not_stored_twice() {
    let w = world().await;
    let first = plan_once("e1", None, &event(Some("k1")), deadline(), &w.deps)
        .await
        .unwrap();
    assert_eq!((first.seq, first.connections), (Some(1), 1));
    let again = plan_once("e2", None, &event(Some("k1")), deadline(), &w.deps)
        .await
        .unwrap();
    assert!(again.duplicate);
    let next = plan_once("e3", None, &event(None), deadline(), &w.deps)
        .await
        .unwrap();
    assert_eq!(next.seq, Some(2));
    assert_eq!(stored_seqs(&w).await, vec![1, 2]);
}

#[tokio::test]
async fn a_failed_attempt_releases_its_claim_keeping_the_seq_for_the_retry() {
    let w = world().await;
    w.deliver.failing.store(true, Ordering::SeqCst);
    let failed = plan_once("e1", None, &event(None), deadline(), &w.deps).await;
    assert!(failed.is_err());
    assert_eq!(w.store.head(&acme(), &lobby()).await.unwrap(), 1);
    w.deliver.failing.store(false, Ordering::SeqCst);
    let retried = plan_once("e1", None, &event(None), deadline(), &w.deps)
        .await
        .unwrap();
    assert_eq!(retried.seq, Some(1), "the retry keeps the number");
    assert_eq!(w.store.head(&acme(), &lobby()).await.unwrap(), 1);
    assert_eq!(stored_seqs(&w).await, vec![1]);
    let next = plan_once("e2", None, &event(None), deadline(), &w.deps)
        .await
        .unwrap();
    assert_eq!(next.seq, Some(2), "no gap after the retry");
}

#[tokio::test]
async fn the_retry_of_a_planner_that_died_after_storing_finds_its_seq() {
    let w = world().await;
    let dying = event(None);
    let key = dedupe_key("e1", &dying);
    // A planner claims, numbers and stores the event, then dies.
    w.store
        .claim_event(&key, "e1", NOW_MS, Duration::from_secs(30))
        .await
        .unwrap();
    let seq = w.store.next_seq(&acme(), &lobby()).await.unwrap();
    let entry = new_entry("e1", &key, &dying, seq, NOW_MS, &StreamSettings::default());
    w.store.put_entry(&acme(), &lobby(), &entry).await.unwrap();
    plan_once("e2", None, &event(None), deadline(), &w.deps)
        .await
        .unwrap();
    // SQS delivers it again once the lease has passed.
    w.clock.advance_ms(31_000);
    let retried = plan_once("e1", None, &dying, deadline(), &w.deps)
        .await
        .unwrap();
    assert_eq!(retried.seq, Some(1));
    assert_eq!(stored_seqs(&w).await, vec![1, 2]);
}

#[tokio::test]
async fn unstored_events_and_edits_of_missing_messages_take_no_seq() {
    let w = world().await;
    let live_only = BroadcastEvent {
        stream: false,
        ..event(None)
    };
    let planned = plan_once("e1", None, &live_only, deadline(), &w.deps)
        .await
        .unwrap();
    assert_eq!((planned.seq, planned.connections), (None, 1));
    let edit = BroadcastEvent {
        update: Some(7),
        ..event(None)
    };
    let refused = plan_once("e2", None, &edit, deadline(), &w.deps)
        .await
        .unwrap();
    assert_eq!((refused.seq, refused.connections), (None, 0));
    assert_eq!(w.store.head(&acme(), &lobby()).await.unwrap(), 0);
}

#[tokio::test]
async fn a_replay_stops_at_its_byte_budget_and_says_so() {
    use fanout_core::stream::{REPLAY_MAX_BYTES, replay};
    let w = world().await;
    let big = format!("\"{}\"", "x".repeat(120 * 1024));
    let count = REPLAY_MAX_BYTES / big.len() + 5;
    for n in 0..count {
        let e = BroadcastEvent {
            data: RawValue::from_string(big.clone()).unwrap(),
            ..event(None)
        };
        plan_once(&format!("e{n}"), None, &e, deadline(), &w.deps)
            .await
            .unwrap();
    }
    let settings = StreamSettings::default();
    let r = replay(w.store.as_ref(), &settings, &acme(), &lobby(), 0)
        .await
        .unwrap();
    assert!(!r.recovered);
    assert_eq!(r.oldest, Some(1));
    assert_eq!(r.entries.len(), REPLAY_MAX_BYTES / big.len());
    assert_eq!(r.head, count as u64);
    let all = replay(
        w.store.as_ref(),
        &settings,
        &acme(),
        &lobby(),
        count as u64 - 3,
    )
    .await
    .unwrap();
    assert!(all.recovered);
    assert_eq!(all.entries.len(), 3);
}

#[tokio::test]
async fn a_frame_too_large_to_post_takes_no_seq() {
    let w = world().await;
    let huge = BroadcastEvent {
        data: RawValue::from_string(format!("\"{}\"", "x".repeat(200 * 1024))).unwrap(),
        ..event(None)
    };
    let refused = plan_once("e1", None, &huge, deadline(), &w.deps).await;
    assert!(refused.is_err_and(|e| e.permanent_reason() == Some("frame_too_large")));
    assert_eq!(w.store.head(&acme(), &lobby()).await.unwrap(), 0, "no hole");
    let next = plan_once("e2", None, &event(None), deadline(), &w.deps)
        .await
        .unwrap();
    assert_eq!(next.seq, Some(1));
}

/// An SQS record carrying `event` as EventBridge delivers it.
fn record(id: &str, source: &str, event: &BroadcastEvent) -> aws_lambda_events::sqs::SqsMessage {
    let envelope = serde_json::json!({
        "version": "0", "id": id, "detail-type": "fanout.broadcast", "source": source,
        "account": "1", "time": "2026-11-23T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": event,
    });
    let mut message = aws_lambda_events::sqs::SqsMessage::default();
    message.message_id = Some(format!("m-{id}"));
    message.body = Some(envelope.to_string());
    message
}

#[tokio::test]
async fn signals_from_one_sender_queued_together_are_coalesced_to_the_latest() {
    use fanout_core::handlers::planner::handle;
    let w = world().await;
    let signal = |user: &str, typing: bool| BroadcastEvent {
        from: Some(Sender::Client {
            user: UserId::new(user).unwrap(),
            connection: ConnectionId::new(format!("{user}-conn")).unwrap(),
        }),
        signal: true,
        stream: false,
        ..BroadcastEvent::to_room(
            acme(),
            lobby(),
            RawValue::from_string(format!(r#"{{"typing":{typing}}}"#)).unwrap(),
        )
    };
    let mut batch = aws_lambda_events::sqs::SqsEvent::default();
    batch.records = vec![
        record("s1", "fanout.client", &signal("alice", true)),
        record("s2", "fanout.client", &signal("bob", true)),
        record("s3", "fanout.client", &signal("alice", false)),
    ];
    let response = handle(batch, deadline(), &w.deps).await;
    assert!(response.batch_item_failures.is_empty());
    let jobs = w.deliver.inner.peek_bodies();
    let frames: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| serde_json::from_str::<serde_json::Value>(j).unwrap()["frame"].clone())
        .collect();
    assert_eq!(
        frames.len(),
        2,
        "alice's first signal was superseded: {frames:?}"
    );
    assert!(
        frames
            .iter()
            .all(|f| f["type"] == "signal" && f.get("seq").is_none())
    );
    let alice: Vec<_> = frames
        .iter()
        .filter(|f| f["from"]["user"] == "alice")
        .collect();
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0]["data"], serde_json::json!({"typing": false}));
    assert_eq!(
        w.store.head(&acme(), &lobby()).await.unwrap(),
        0,
        "never stored"
    );
}
