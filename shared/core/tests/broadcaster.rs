//! The broadcaster's delivery of one job against a scripted poster and the
//! embedded store and queues: retries within the invocation, re-enqueues,
//! dead letters, deadlines, rate gates and batch item failures.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use bytes::Bytes;
use fanout_core::handlers::broadcaster::{
    BroadcasterDeps, BroadcasterSettings, JobSettings, deliver, handle,
};
use fanout_core::ids::ConnectionId;
use fanout_core::metrics;
use fanout_core::plan::{DeadLetter, DeadLetterReason, DeliveryJob};
use fanout_core::ports::{ConnectionPoster, ConnectionStore, PostError, Queue};
use fanout_core::rate::RateGate;
use fanout_core::settings::REQUEUE_BACKOFF;
use tokio::time::Instant;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;

use fanout_core::clock::ManualClock;
use fanout_core::ids::{RoomId, TenantId, UserId};
use fanout_core::metrics::MetricTotals;
use fanout_core::ports::{ConnectionInfo, ConnectionRecord};
use fanout_core::rate::Rate;
use fanout_embedded::{MemoryQueue, MemoryStore, QueueSettings};

/// The settings the tests are written against.
fn defaults() -> BroadcasterSettings {
    BroadcasterSettings::default()
}

/// Answers each connection's posts from a script (then 200s), and
/// counts deliveries. A double for the pure retry logic; the real
/// poster is exercised by the local stack's tests.
#[derive(Default)]
struct ScriptedPoster {
    script: Mutex<HashMap<String, VecDeque<Result<(), PostError>>>>,
    always: Mutex<HashMap<String, PostError>>,
    delivered: Mutex<HashMap<String, usize>>,
}

impl ScriptedPoster {
    fn answer(&self, id: &str, answers: Vec<Result<(), PostError>>) {
        self.script
            .lock()
            .unwrap()
            .insert(id.into(), answers.into());
    }
    fn always(&self, id: &str, error: PostError) {
        self.always.lock().unwrap().insert(id.into(), error);
    }
    fn delivered(&self, id: &str) -> usize {
        self.delivered.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

#[async_trait]
impl ConnectionPoster for ScriptedPoster {
    async fn post(&self, id: &ConnectionId, _frame: &Bytes) -> Result<(), PostError> {
        if let Some(e) = self.always.lock().unwrap().get(id.as_str()) {
            return Err(e.clone());
        }
        let scripted = self
            .script
            .lock()
            .unwrap()
            .get_mut(id.as_str())
            .and_then(VecDeque::pop_front);
        let result = scripted.unwrap_or(Ok(()));
        if result.is_ok() {
            *self
                .delivered
                .lock()
                .unwrap()
                .entry(id.to_string())
                .or_default() += 1;
        }
        result
    }
    async fn get(&self, _id: &ConnectionId) -> Result<ConnectionInfo, PostError> {
        Err(PostError::Gone)
    }
    async fn delete(&self, _id: &ConnectionId) -> Result<(), PostError> {
        Ok(())
    }
}

struct Fixture {
    deps: BroadcasterDeps,
    poster: Arc<ScriptedPoster>,
    store: Arc<MemoryStore>,
    deliver: Arc<MemoryQueue>,
    dlq: Arc<MemoryQueue>,
    totals: Arc<MetricTotals>,
}

fn fixture(settings: BroadcasterSettings) -> Fixture {
    let clock = ManualClock::at_ms(1_000_000);
    let store = Arc::new(MemoryStore::new(clock.clone(), 4));
    let poster = Arc::new(ScriptedPoster::default());
    let deliver = MemoryQueue::new("deliver", QueueSettings::default());
    let dlq = MemoryQueue::new("deliver-dlq", QueueSettings::default());
    let totals = MetricTotals::new();
    let deps = BroadcasterDeps {
        store: store.clone(),
        poster: poster.clone(),
        deliver_queue: deliver.clone(),
        dead_letter_queue: dlq.clone(),
        gate: None,
        metrics: totals.clone(),
        clock,
        settings,
        jobs: JobSettings::default(),
    };
    Fixture {
        deps,
        poster,
        store,
        deliver,
        dlq,
        totals,
    }
}

fn ids(n: usize) -> Vec<ConnectionId> {
    (0..n)
        .map(|i| ConnectionId::new(format!("c{i}")).unwrap())
        .collect()
}

fn job(connections: Vec<ConnectionId>, attempt: u32) -> DeliveryJob {
    DeliveryJob {
        event_id: "e1".into(),
        attempt,
        published_at_ms: Some(999_000),
        dead_letter: None,
        connections,
        frame: serde_json::value::RawValue::from_string(r#"{"type":"message"}"#.into()).unwrap(),
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(900)
}

fn jobs_in(q: &MemoryQueue) -> Vec<DeliveryJob> {
    q.peek_bodies()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn delivers_to_every_connection_once() {
    let f = fixture(BroadcasterSettings::default());
    let report = deliver(&job(ids(300), 1), far(), &f.deps).await.unwrap();
    assert_eq!(report.delivered, 300);
    assert_eq!(report.latency_ms, Some(1_000));
    assert!(
        ids(300)
            .iter()
            .all(|id| f.poster.delivered(id.as_str()) == 1)
    );
    assert_eq!(f.deliver.message_count() + f.dlq.message_count(), 0);
    assert_eq!(f.totals.count(metrics::DELIVERED), 300);
}

#[tokio::test(start_paused = true)]
async fn gone_connections_are_deleted_in_one_batch() {
    let f = fixture(BroadcasterSettings::default());
    let tenant = TenantId::new("acme").unwrap();
    let room = RoomId::new("lobby").unwrap();
    for id in ids(10) {
        let record = ConnectionRecord {
            id: id.clone(),
            tenant: tenant.clone(),
            user: UserId::new("u").unwrap(),
            connected_at_ms: 0,
            last_seen_ms: 0,
            ttl: i64::MAX,
            idle_until: i64::MAX,
            token_expires_at: i64::MAX,
            capabilities: None,
        };
        f.store.put_connection(&record).await.unwrap();
        f.store
            .join_room(&record, &room, fanout_core::auth::Rights::NONE)
            .await
            .unwrap();
    }
    for id in ["c1", "c4", "c7"] {
        f.poster.always(id, PostError::Gone);
    }
    let report = deliver(&job(ids(10), 1), far(), &f.deps).await.unwrap();
    assert_eq!((report.delivered, report.gone), (7, 3));
    assert_eq!(f.store.connection_count(), 7);
    // Their items are gone; each removal is a change record for the
    // sweeper, which deletes the memberships.
    use fanout_core::ports::ChangeFeed;
    let removed: Vec<String> = f
        .store
        .read(10, std::time::Duration::ZERO)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            fanout_core::changes::connection_from_image(&r.change.old_image)
                .unwrap()
                .id
                .to_string()
        })
        .collect();
    assert_eq!(removed, ["c1", "c4", "c7"]);
    assert_eq!(
        f.deliver.message_count() + f.dlq.message_count(),
        0,
        "gone is not a failure"
    );
}

#[tokio::test(start_paused = true)]
async fn retryable_answers_are_retried_within_the_invocation() {
    let f = fixture(BroadcasterSettings::default());
    f.poster.answer(
        "c0",
        vec![Err(PostError::Throttled("LimitExceededException".into()))],
    );
    f.poster.answer(
        "c1",
        vec![
            Err(PostError::Http {
                status: 503,
                message: "unavailable".into(),
            }),
            Err(PostError::Transport("reset".into())),
        ],
    );
    let report = deliver(&job(ids(5), 1), far(), &f.deps).await.unwrap();
    assert_eq!(report.delivered, 5);
    assert_eq!(report.throttled, 1);
    assert_eq!(report.retried, 3);
    assert_eq!(f.deliver.message_count() + f.dlq.message_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn still_failing_connections_are_requeued_as_a_smaller_delayed_job() {
    let f = fixture(BroadcasterSettings::default());
    f.poster
        .always("c3", PostError::Throttled("LimitExceededException".into()));
    f.poster.always(
        "c8",
        PostError::Http {
            status: 500,
            message: "boom".into(),
        },
    );
    let report = deliver(&job(ids(10), 2), far(), &f.deps).await.unwrap();
    assert_eq!((report.delivered, report.requeued), (8, 2));
    // The delayed job is not visible yet.
    assert!(f.deliver.peek_bodies().is_empty());
    assert_eq!(f.deliver.message_count(), 1);
    tokio::time::sleep(REQUEUE_BACKOFF.ceiling(2)).await;
    let requeued = jobs_in(&f.deliver);
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].attempt, 3);
    assert_eq!(requeued[0].event_id, "e1");
    assert_eq!(requeued[0].published_at_ms, Some(999_000));
    let mut left: Vec<&str> = requeued[0].connections.iter().map(|c| c.as_str()).collect();
    left.sort();
    assert_eq!(left, ["c3", "c8"]);
    assert_eq!(f.dlq.message_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn past_the_maximum_attempts_the_failures_are_dead_lettered_with_their_reason() {
    let f = fixture(BroadcasterSettings::default());
    f.poster
        .always("c3", PostError::Throttled("LimitExceededException".into()));
    let report = deliver(&job(ids(5), defaults().max_attempts), far(), &f.deps)
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (4, 1));
    assert_eq!(f.deliver.message_count(), 0);
    let dead = jobs_in(&f.dlq);
    assert_eq!(dead.len(), 1);
    let letter = dead[0].dead_letter.as_ref().unwrap();
    assert_eq!(letter.reason, DeadLetterReason::RetriesExhausted);
    assert_eq!(letter.code, "throttled");
    assert_eq!(letter.attempts, defaults().max_attempts);
    assert!(letter.detail.contains("LimitExceededException"));
    assert_eq!(dead[0].connections, vec![ConnectionId::new("c3").unwrap()]);
    assert_eq!(f.totals.count(metrics::DEAD_LETTERED), 1);
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_go_straight_to_the_dead_letter_queue_and_403_is_flagged() {
    let f = fixture(BroadcasterSettings::default());
    f.poster
        .always("c0", PostError::Forbidden("ForbiddenException".into()));
    f.poster.always("c1", PostError::PayloadTooLarge);
    let report = deliver(&job(ids(4), 1), far(), &f.deps).await.unwrap();
    assert_eq!(report.misconfigured, 1);
    assert_eq!(report.failed, 2);
    assert_eq!(report.retried, 0, "permanent failures are not retried");
    let mut codes: Vec<String> = jobs_in(&f.dlq)
        .into_iter()
        .map(|j| {
            let letter = j.dead_letter.unwrap();
            assert_eq!(letter.reason, DeadLetterReason::Permanent);
            format!("{}:{}", letter.code, j.connections[0])
        })
        .collect();
    codes.sort();
    assert_eq!(codes, ["forbidden:c0", "payload_too_large:c1"]);
    assert_eq!(f.totals.count(metrics::MISCONFIGURED), 1);
}

#[tokio::test(start_paused = true)]
async fn near_the_deadline_no_post_starts_and_the_job_is_requeued_unchanged() {
    let f = fixture(BroadcasterSettings::default());
    let deadline = Instant::now() + defaults().deadline_margin / 2;
    let report = deliver(&job(ids(20), 2), deadline, &f.deps).await.unwrap();
    assert_eq!((report.delivered, report.deferred), (0, 20));
    let requeued = jobs_in(&f.deliver);
    assert_eq!(requeued.len(), 1);
    assert_eq!(
        requeued[0].attempt, 2,
        "running out of time is not a failed attempt"
    );
    assert_eq!(requeued[0].connections, ids(20));
}

#[tokio::test(start_paused = true)]
async fn the_rate_gate_paces_posts_and_the_deadline_cuts_the_job() {
    let mut f = fixture(BroadcasterSettings::default());
    f.deps.gate = Some(Arc::new(RateGate::new(Rate::new(100, 10).unwrap())));
    // 10 s of budget before the margin: 10 burst + 100/s × 10 s.
    let deadline = Instant::now() + Duration::from_secs(10) + defaults().deadline_margin;
    let report = deliver(&job(ids(2_000), 1), deadline, &f.deps)
        .await
        .unwrap();
    assert!(
        (1_005..=1_010).contains(&report.delivered),
        "{}",
        report.delivered
    );
    assert_eq!(report.delivered + report.deferred, 2_000);
    let requeued: usize = jobs_in(&f.deliver)
        .iter()
        .map(|j| j.connections.len())
        .sum();
    assert_eq!(requeued, report.deferred);
}

#[tokio::test(start_paused = true)]
async fn a_redriven_job_starts_its_attempts_over() {
    let f = fixture(BroadcasterSettings::default());
    f.poster
        .always("c0", PostError::Transport("refused".into()));
    let mut j = job(ids(1), defaults().max_attempts);
    j.dead_letter = Some(DeadLetter {
        reason: DeadLetterReason::RetriesExhausted,
        code: "transport".into(),
        detail: "refused".into(),
        attempts: defaults().max_attempts,
        at: "2026-11-22T09:00:00.000Z".into(),
    });
    deliver(&j, far(), &f.deps).await.unwrap();
    assert_eq!(f.dlq.message_count(), 0);
    tokio::time::sleep(Duration::from_secs(900)).await;
    let requeued = jobs_in(&f.deliver);
    assert_eq!(requeued[0].attempt, 2);
    assert!(requeued[0].dead_letter.is_none());
}

#[tokio::test(start_paused = true)]
async fn only_records_whose_follow_up_could_not_be_sent_are_batch_failures_and_garbage_is_dead_lettered_at_once()
 {
    let mut f = fixture(BroadcasterSettings::default());
    // A deliver queue that refuses every message.
    f.deps.deliver_queue = MemoryQueue::new(
        "tiny",
        QueueSettings {
            max_message_bytes: 10,
            ..QueueSettings::default()
        },
    );
    f.poster
        .always("bad", PostError::Throttled("LimitExceededException".into()));
    let record = |id: &str, body: String| {
        let mut r = SqsMessage::default();
        r.message_id = Some(id.into());
        r.body = Some(body);
        r
    };
    let good = serde_json::to_string(&job(ids(3), 1)).unwrap();
    let failing = serde_json::to_string(&job(vec![ConnectionId::new("bad").unwrap()], 1)).unwrap();
    let mut event = SqsEvent::default();
    event.records = vec![
        record("m-good", good),
        record("m-failing", failing),
        record("m-garbage", "not json".into()),
    ];
    let response = handle(event, far(), &f.deps).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-failing"]);
    // Retrying cannot make garbage readable: it is in the DLQ already,
    // with why.
    let dead = f
        .dlq
        .receive(10, Duration::ZERO, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "not json");
    assert_eq!(
        dead[0].attributes.get("FANOUT_REASON").map(String::as_str),
        Some("unreadable_job")
    );
}

#[tokio::test(start_paused = true)]
async fn mixed_failures_keep_every_reason() {
    let f = fixture(BroadcasterSettings::default());
    f.poster
        .always("c1", PostError::Throttled("LimitExceededException".into()));
    f.poster.always(
        "c2",
        PostError::Http {
            status: 503,
            message: "unavailable".into(),
        },
    );
    f.poster.always("c3", PostError::Transport("reset".into()));
    f.poster
        .always("c4", PostError::Forbidden("ForbiddenException".into()));
    let report = deliver(&job(ids(6), defaults().max_attempts), far(), &f.deps)
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (2, 4));
    let mut letters: Vec<String> = jobs_in(&f.dlq)
        .into_iter()
        .map(|j| {
            let letter = j.dead_letter.unwrap();
            let ids: Vec<&str> = j.connections.iter().map(|c| c.as_str()).collect();
            format!("{:?}:{}:{}", letter.reason, letter.code, ids.join(","))
        })
        .collect();
    letters.sort();
    assert_eq!(
        letters,
        [
            "Permanent:forbidden:c4",
            "RetriesExhausted:server_error:c2",
            "RetriesExhausted:throttled:c1",
            "RetriesExhausted:transport:c3",
        ]
    );
}
