//! The sweeper against the embedded store and bus, on a clock the test
//! moves: a connection that stops heartbeating expires, its removal is a
//! change record, and the sweep ends its presence (`presence.left` for the
//! room), deletes its memberships and emits `fanout.connection.closed` —
//! the same as for a connection `$disconnect` removed; sweeping a record
//! twice changes nothing twice.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use fanout_core::auth::Rights;
use fanout_core::clock::ManualClock;
use fanout_core::event::{BROADCAST, CONNECTION_CLOSED};
use fanout_core::handlers::sweeper::{SweeperDeps, sweep_batch};
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::ports::{ChangeFeed, ConnectionRecord, ConnectionStore, PresenceStore, Queue};
use fanout_embedded::{MemoryPoster, MemoryQueue, MemoryStore};

mod common;

const NOW_MS: i64 = 1_800_000_000_000;

struct World {
    deps: SweeperDeps,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    /// Every event the bus routed: lifecycle events and broadcasts.
    events: Arc<MemoryQueue>,
}

fn world() -> World {
    let common::Gateway {
        deps: gateway,
        store,
        clock,
        events,
    } = common::gateway(NOW_MS);
    let deps = SweeperDeps {
        gateway,
        poster: Arc::new(MemoryPoster::new()),
    };
    World {
        deps,
        store,
        clock,
        events,
    }
}

async fn present(w: &World, id: &str, user: &str, room: &RoomId) -> ConnectionRecord {
    let record = ConnectionRecord {
        id: ConnectionId::new(id).unwrap(),
        tenant: TenantId::new("acme").unwrap(),
        user: UserId::new(user).unwrap(),
        connected_at_ms: NOW_MS,
        last_seen_ms: NOW_MS,
        ttl: NOW_MS / 1000 + 7_200,
        idle_until: w.deps.gateway.settings.idle_until(NOW_MS),
        token_expires_at: NOW_MS / 1000 + 7_200,
        capabilities: None,
    };
    w.store.put_connection(&record).await.unwrap();
    w.store
        .join_room(&record, room, Rights::NONE)
        .await
        .unwrap();
    w.store
        .enter(
            &record.tenant,
            room,
            &record.user,
            &record.id,
            None,
            record.ttl,
        )
        .await
        .unwrap();
    record
}

/// The detail-types (and, for broadcasts, the presence kind) of every
/// event routed so far.
async fn routed(w: &World) -> Vec<String> {
    let mut out = Vec::new();
    let received = w
        .events
        .receive(100, Duration::ZERO, Duration::from_secs(30))
        .await
        .unwrap();
    for m in received {
        let event: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        let kind = event["detail-type"].as_str().unwrap().to_string();
        if kind == BROADCAST {
            out.push(format!(
                "presence.{}",
                event["detail"]["presence"]["kind"].as_str().unwrap()
            ));
        } else {
            out.push(kind);
        }
    }
    out
}

async fn changes(w: &World) -> Event {
    let records = w.store.read(100, Duration::ZERO).await.unwrap();
    w.store.acknowledge(records.len()).await;
    let mut event = Event::default();
    event.records = records;
    event
}

#[tokio::test]
async fn a_silent_connection_expires_and_is_swept_like_a_disconnect() {
    let w = world();
    let lobby = RoomId::new("lobby").unwrap();
    let silent = present(&w, "silent=", "alice", &lobby).await;
    let chatty = present(&w, "chatty=", "bob", &lobby).await;

    // Six minutes in, bob heartbeats; alice does not.
    w.clock.advance_ms(6 * 60_000);
    let now = NOW_MS + 6 * 60_000;
    w.store
        .admit_frame(
            &chatty.id,
            now,
            None,
            w.deps.gateway.settings.idle_until(now),
        )
        .await
        .unwrap();
    assert_eq!(
        w.store.expire_connections(),
        0,
        "nobody is past 11 minutes yet"
    );

    // Twelve minutes in: alice is past her heartbeat deadline, bob is not.
    w.clock.advance_ms(6 * 60_000);
    assert_eq!(w.store.expire_connections(), 1);
    assert!(w.store.get_connection(&silent.id).await.unwrap().is_none());
    assert!(w.store.get_connection(&chatty.id).await.unwrap().is_some());
    // Until swept, her membership is still stored.
    assert!(
        w.store
            .is_member(&silent.id, &silent.tenant, &lobby)
            .await
            .unwrap()
    );

    let event = changes(&w).await;
    assert_eq!(event.records.len(), 1);
    assert!(fanout_core::changes::removed_by_ttl(&event.records[0]));
    let (response, report) = sweep_batch(&event.records, &w.deps).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(report.swept, 1);
    assert!(
        !w.store
            .is_member(&silent.id, &silent.tenant, &lobby)
            .await
            .unwrap()
    );
    assert_eq!(
        w.store
            .presence_count(&silent.tenant, &lobby)
            .await
            .unwrap(),
        1
    );
    assert_eq!(routed(&w).await, ["presence.left", CONNECTION_CLOSED]);

    // The same record again (a retried batch): nothing new to announce but
    // the at-least-once lifecycle event.
    let (response, _) = sweep_batch(&event.records, &w.deps).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(routed(&w).await, [CONNECTION_CLOSED]);

    // bob leaves cleanly: $disconnect's deletion is swept the same way.
    assert!(w.store.delete_connection(&chatty.id).await.unwrap());
    let event = changes(&w).await;
    assert!(!fanout_core::changes::removed_by_ttl(&event.records[0]));
    sweep_batch(&event.records, &w.deps).await;
    assert_eq!(routed(&w).await, ["presence.left", CONNECTION_CLOSED]);
    assert_eq!(
        w.store
            .presence_count(&chatty.tenant, &lobby)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn records_that_are_not_connection_removals_are_skipped() {
    let w = world();
    let lobby = RoomId::new("lobby").unwrap();
    present(&w, "c1=", "alice", &lobby).await;
    w.store
        .delete_connection(&ConnectionId::new("c1=").unwrap())
        .await
        .unwrap();
    let mut records = changes(&w).await.records;
    let mut not_ours = records[0].clone();
    not_ours.event_name = "MODIFY".into();
    let mut unreadable = records[0].clone();
    unreadable.change.old_image = Default::default();
    records.extend([not_ours, unreadable]);
    let (response, report) = sweep_batch(&records, &w.deps).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((report.swept, report.skipped, report.unreadable), (1, 1, 1));
}
