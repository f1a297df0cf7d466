//! Pipeline tests: the whole local stack (bus, plan and deliver queues,
//! event source mappings, planner, broadcaster, fault injection, registry)
//! with in-process connections registered in the gateway's registry instead
//! of sockets, so Tokio's paused clock can run visibility timeouts, delays
//! and backoff instantly and the seeded faults replay the same way.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use fanout_aws::dlq;
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::metrics;
use fanout_core::plan::{DeadLetterReason, DeliveryJob};
use fanout_core::ports::{BusEntry, EventBus, MemberSet, OutgoingMessage, Queue, publish};
use fanout_local::inprocess::InProcessClient;
use fanout_local::{RunningStack, StackConfig};
use tokio::net::TcpListener;

async fn start(extra: &[&str]) -> RunningStack {
    let mut args = vec!["fanout-local", "--port", "0"];
    args.extend_from_slice(extra);
    let config = <StackConfig as clap::Parser>::parse_from(args);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    fanout_local::start(config, listener).await.unwrap()
}

/// Registers `n` connections of tenant `acme` in `room` (see
/// [`InProcessClient::join`] for `stuck`).
async fn members(
    stack: &RunningStack,
    room: &str,
    prefix: &str,
    n: usize,
    stuck: bool,
) -> Vec<InProcessClient> {
    let tenant = TenantId::new("acme").unwrap();
    let room = RoomId::new(room).unwrap();
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let id = ConnectionId::new(format!("{prefix}{i:05}=")).unwrap();
        let user = UserId::new(format!("user{i}")).unwrap();
        let client = InProcessClient::join(&stack.resources, id, &tenant, user, &room, 64, stuck)
            .await
            .unwrap();
        clients.push(client);
    }
    clients
}

fn broadcast(room: &str, idempotency_key: Option<&str>) -> BusEntry {
    let mut detail = serde_json::json!({
        "tenant": "acme",
        "target": {"room": room},
        "data": {"order": 42},
    });
    if let Some(key) = idempotency_key {
        detail["idempotencyKey"] = key.into();
    }
    BusEntry::new("acme.orders", "fanout.broadcast", detail.to_string())
}

async fn publish_one(stack: &RunningStack, entry: BusEntry) -> String {
    let bus: &dyn EventBus = stack.resources.bus.as_ref();
    publish(bus, &[entry]).await.unwrap().remove(0)
}

/// Lets (paused) time run until the plan and deliver queues are empty,
/// delayed and in-flight messages included.
async fn settle(stack: &RunningStack) {
    for _ in 0..20_000 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if stack.resources.in_flight().await.unwrap() == 0 {
            return;
        }
    }
    panic!(
        "queues never drained: {} messages left",
        stack.resources.in_flight().await.unwrap()
    );
}

async fn dead_jobs(stack: &RunningStack) -> Vec<DeliveryJob> {
    dlq::peek(stack.resources.deliver_dlq.as_ref(), 1_000)
        .await
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn under_faults_every_live_member_of_a_2000_room_gets_the_message_and_nothing_is_lost() {
    let stack = start(&[
        "--fault-gone",
        "0.05",
        "--fault-throttle",
        "0.03",
        "--fault-error",
        "0.01",
        "--fault-crash",
        "0.02",
        "--fault-seed",
        "20261122",
        // Small jobs, one per invocation: enough invocations for crashes.
        "--max-connections-per-job",
        "20",
        "--broadcaster-batch-size",
        "1",
    ])
    .await;
    let mut clients = members(&stack, "lobby", "m", 2_000, false).await;
    let event_id = publish_one(&stack, broadcast("lobby", None)).await;
    settle(&stack).await;

    let r = &stack.resources;
    let (mut live, mut gone) = (0, 0);
    for client in &mut clients {
        let got = client.received();
        assert!(got.iter().all(|id| *id == event_id));
        if r.registry.get(&client.id).is_some() {
            live += 1;
            assert!(!got.is_empty(), "live member {} got nothing", client.id);
        } else {
            gone += 1;
            assert_eq!(
                r.store.get_connection(&client.id).await.unwrap(),
                None,
                "gone connection {} still stored",
                client.id
            );
        }
    }
    let acme = TenantId::new("acme").unwrap();
    assert_eq!(r.connection_count(&acme).await.unwrap(), live);
    assert_eq!(
        r.dead_letters().await.unwrap(),
        0,
        "every dead-letter queue is empty"
    );
    // The faults really happened.
    let m = &r.metrics;
    assert!(gone > 50, "{gone} gone");
    // A redelivered job (after a crash) meets some gone ones again.
    assert!(m.count(metrics::GONE) >= gone as u64);
    assert!(m.count(metrics::THROTTLED) > 20);
    assert!(m.count(metrics::RETRIED) > 20);
    assert!(m.count(metrics::DELIVERED) >= live as u64);
    assert!(r.faults.crashes() > 0, "no invocation crashed");
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn connections_that_always_fail_end_in_the_dlq_with_their_reason_and_nothing_else_does() {
    let stack = start(&["--max-attempts", "3"]).await;
    let mut healthy = members(&stack, "lobby", "ok", 45, false).await;
    let stuck = members(&stack, "lobby", "stuck", 5, true).await;
    let event_id = publish_one(&stack, broadcast("lobby", None)).await;
    settle(&stack).await;

    for client in &mut healthy {
        assert_eq!(client.received(), vec![event_id.clone()]);
    }
    let dead = dead_jobs(&stack).await;
    let mut failed: Vec<String> = Vec::new();
    for job in &dead {
        assert_eq!(job.event_id, event_id);
        let letter = job.dead_letter.as_ref().expect("a dead letter says why");
        assert_eq!(letter.reason, DeadLetterReason::RetriesExhausted);
        assert_eq!(letter.code, "throttled");
        assert_eq!(letter.attempts, 3);
        assert!(
            letter.detail.contains("LimitExceededException"),
            "{letter:?}"
        );
        failed.extend(job.connections.iter().map(|c| c.to_string()));
    }
    failed.sort();
    let expected: Vec<String> = stuck.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(failed, expected);
    let r = &stack.resources;
    assert_eq!(
        r.dead_letters().await.unwrap(),
        dead.len() as u64,
        "only those jobs are dead letters"
    );
    assert_eq!(r.metrics.count(metrics::DEAD_LETTERED), 5);
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_same_event_published_or_redelivered_twice_is_delivered_once() {
    let stack = start(&[]).await;
    let mut clients = members(&stack, "lobby", "m", 20, false).await;
    let first = publish_one(&stack, broadcast("lobby", Some("order-42-shipped"))).await;
    let second = publish_one(&stack, broadcast("lobby", Some("order-42-shipped"))).await;
    assert_ne!(first, second, "two publishes are two events");
    settle(&stack).await;
    for client in &mut clients {
        assert_eq!(client.received(), vec![first.clone()]);
    }

    // SQS redelivering the same event (same id, no key) plans it once too.
    let envelope = serde_json::json!({
        "version": "0", "id": "redelivered-1", "detail-type": "fanout.broadcast",
        "source": "acme.orders", "account": "000000000000", "time": "2026-11-22T09:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {"tenant": "acme", "target": {"room": "lobby"}, "data": {}},
    })
    .to_string();
    let plan_queue: &dyn Queue = stack.resources.plan_queue.as_ref();
    for i in 0..2 {
        plan_queue
            .send_batch(&[OutgoingMessage::new(i.to_string(), envelope.clone())])
            .await
            .unwrap();
        settle(&stack).await;
    }
    for client in &mut clients {
        assert_eq!(client.received(), vec!["redelivered-1".to_string()]);
    }
    assert_eq!(stack.resources.metrics.count(metrics::DUPLICATE_EVENTS), 2);
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_20000_member_room_is_planned_across_every_shard_into_sized_jobs_and_everyone_receives() {
    let stack = start(&["--shards", "8", "--max-connections-per-job", "500"]).await;
    let mut clients = members(&stack, "stadium", "s", 20_000, false).await;
    let r = &stack.resources;
    let set = MemberSet::Room {
        tenant: TenantId::new("acme").unwrap(),
        room: RoomId::new("stadium").unwrap(),
    };
    for shard in 0..8 {
        let (mut held, mut cursor) = (0, None);
        loop {
            let page = r
                .store
                .members_page(&set, shard, cursor.as_deref())
                .await
                .unwrap();
            held += page.items.len();
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert!(held > 2_000, "shard {shard} holds {held} of 20,000");
    }
    let event_id = publish_one(&stack, broadcast("stadium", None)).await;
    settle(&stack).await;

    assert_eq!(r.metrics.count(metrics::PLANNED_CONNECTIONS), 20_000);
    assert_eq!(
        r.metrics.count(metrics::JOBS),
        40,
        "20,000 ids / 500 per job"
    );
    let mut per_client: HashMap<usize, usize> = HashMap::new();
    for client in &mut clients {
        let got = client.received();
        assert!(got.iter().all(|id| *id == event_id));
        *per_client.entry(got.len()).or_default() += 1;
    }
    assert_eq!(
        per_client,
        HashMap::from([(1, 20_000)]),
        "each exactly once"
    );
    assert_eq!(r.dead_letters().await.unwrap(), 0);
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_small_target_is_posted_directly_by_the_planner() {
    let stack = start(&[]).await;
    let mut clients = members(&stack, "tiny", "t", 3, false).await;
    let event_id = publish_one(&stack, broadcast("tiny", None)).await;
    settle(&stack).await;
    for client in &mut clients {
        assert_eq!(client.received(), vec![event_id.clone()]);
    }
    let m = &stack.resources.metrics;
    assert_eq!(m.count(metrics::DIRECT_DELIVERIES), 3);
    assert_eq!(
        m.count(metrics::JOBS),
        0,
        "no job went through the deliver queue"
    );
    let unique: HashSet<_> = clients.iter().map(|c| c.id.clone()).collect();
    assert_eq!(unique.len(), 3);
    stack.stop().await;
}
