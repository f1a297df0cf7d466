//! The connection store and dedupe contract: `MemoryStore` and
//! `DynamoStore` behave the same.

use std::sync::Arc;
use std::time::Duration;

use fanout_aws::{DynamoChangeFeed, DynamoStore, provision};
use fanout_core::auth::{Capabilities, Right, Rights};
use fanout_core::changes::{connection_from_image, is_connection_removal, removed_by_ttl};
use fanout_core::clock::ManualClock;
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::ports::{
    ChangeFeed, ConnectionRecord, ConnectionStore, EventClaim, EventDedupe, MemberSet,
    PriorAttempt, StoreError,
};
use fanout_core::rate::Rate;
use fanout_embedded::MemoryStore;

use crate::common::{sdk_config, unique};
use crate::contract;

/// A store with 3 shards and pages of 7 items, and the clock it reads.
pub struct Subject {
    store: Arc<dyn ConnectionStore>,
    dedupe: Arc<dyn EventDedupe>,
    changes: Arc<dyn ChangeFeed>,
    clock: Arc<ManualClock>,
}

const SHARDS: u32 = 3;
const PAGE: usize = 7;
const NOW_MS: i64 = 1_800_000_000_000;

async fn embedded() -> Subject {
    let clock = ManualClock::at_ms(NOW_MS);
    let store = Arc::new(MemoryStore::with_page_size(clock.clone(), SHARDS, PAGE));
    Subject {
        store: store.clone(),
        dedupe: store.clone(),
        changes: store,
        clock,
    }
}

async fn aws(endpoint: &str) -> Subject {
    let config = sdk_config(endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("fanout-contract");
    provision::table(&client, &table).await.unwrap();
    let changes = Arc::new(
        DynamoChangeFeed::open(&config, &client, &table)
            .await
            .unwrap(),
    );
    let clock = ManualClock::at_ms(NOW_MS);
    let store = Arc::new(
        DynamoStore::new(client, table, clock.clone(), SHARDS).with_page_limit(PAGE as i32),
    );
    Subject {
        store: store.clone(),
        dedupe: store,
        changes,
        clock,
    }
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn record(id: &str, user: &str, ttl: i64) -> ConnectionRecord {
    ConnectionRecord {
        id: ConnectionId::new(id).unwrap(),
        tenant: tenant(),
        user: UserId::new(user).unwrap(),
        connected_at_ms: NOW_MS,
        last_seen_ms: NOW_MS,
        ttl,
        // Heartbeats are tested on their own; here only the life matters.
        idle_until: later(86_400),
        token_expires_at: ttl,
        capabilities: None,
    }
}

fn later(secs: i64) -> i64 {
    NOW_MS / 1000 + secs
}

async fn all(store: &dyn ConnectionStore, set: &MemberSet) -> Vec<String> {
    let mut out = Vec::new();
    for shard in 0..store.shards() {
        let mut cursor = None;
        loop {
            let page = store
                .members_page(set, shard, cursor.as_deref())
                .await
                .unwrap();
            out.extend(page.items.iter().map(|c| c.to_string()));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    out.sort();
    out
}

async fn user_connections(store: &dyn ConnectionStore, user: &str) -> Vec<String> {
    let user = UserId::new(user).unwrap();
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .user_connections_page(&tenant(), &user, cursor.as_deref())
            .await
            .unwrap();
        out.extend(page.items.iter().map(|c| c.to_string()));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    out.sort();
    out
}

async fn lifecycle(s: Subject) {
    let store = s.store.as_ref();
    let lobby = RoomId::new("lobby").unwrap();
    let r = record("c1=", "alice", later(3_600));
    assert_eq!(store.get_connection(&r.id).await.unwrap(), None);
    store.put_connection(&r).await.unwrap();
    assert_eq!(store.get_connection(&r.id).await.unwrap(), Some(r.clone()));

    // An admitted frame is the connection's heartbeat: it moves the
    // heartbeat deadline, not the connection's life.
    assert!(
        store
            .admit_frame(&r.id, NOW_MS + 5, None, later(700))
            .await
            .unwrap()
            .is_some()
    );
    let touched = store.get_connection(&r.id).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_ms, NOW_MS + 5);
    assert_eq!((touched.idle_until, touched.ttl), (later(700), r.ttl));
    let unknown = ConnectionId::new("nobody=").unwrap();
    assert!(
        store
            .admit_frame(&unknown, NOW_MS, None, later(700))
            .await
            .unwrap()
            .is_none()
    );

    store.join_room(&r, &lobby, Rights::NONE).await.unwrap();
    store.join_room(&r, &lobby, Rights::NONE).await.unwrap(); // idempotent
    assert!(store.is_member(&r.id, &tenant(), &lobby).await.unwrap());
    let room = MemberSet::Room {
        tenant: tenant(),
        room: lobby.clone(),
    };
    assert_eq!(all(store, &room).await, ["c1="]);
    assert_eq!(all(store, &MemberSet::Tenant(tenant())).await, ["c1="]);
    assert_eq!(user_connections(store, "alice").await, ["c1="]);

    assert!(store.leave_room(&r.id, &tenant(), &lobby).await.unwrap());
    assert!(!store.leave_room(&r.id, &tenant(), &lobby).await.unwrap());
    assert!(!store.is_member(&r.id, &tenant(), &lobby).await.unwrap());

    let other = RoomId::new("other").unwrap();
    store.join_room(&r, &lobby, Rights::NONE).await.unwrap();
    store.join_room(&r, &other, Rights::NONE).await.unwrap();
    // Deleting a connection removes its item (and its user-index entry);
    // its memberships wait for the sweeper, which finds them and purges.
    assert!(store.delete_connection(&r.id).await.unwrap());
    assert_eq!(store.get_connection(&r.id).await.unwrap(), None);
    assert!(user_connections(store, "alice").await.is_empty());
    let rooms = store.connection_rooms(&r.id).await.unwrap();
    assert_eq!(rooms, vec![lobby.clone(), other]);
    assert_eq!(all(store, &room).await, ["c1="]);
    store
        .purge_connection(&r.id, &tenant(), &rooms)
        .await
        .unwrap();
    assert!(all(store, &room).await.is_empty());
    assert!(all(store, &MemberSet::Tenant(tenant())).await.is_empty());
    assert!(store.connection_rooms(&r.id).await.unwrap().is_empty());
    // Both are idempotent.
    assert!(!store.delete_connection(&r.id).await.unwrap());
    store
        .purge_connection(&r.id, &tenant(), &rooms)
        .await
        .unwrap();
}

async fn paging_and_expiry(s: Subject) {
    let store = s.store.as_ref();
    let lobby = RoomId::new("lobby").unwrap();
    for i in 0..40 {
        let ttl = if i % 10 == 0 { later(60) } else { later(3_600) };
        let r = record(
            &format!("c{i:02}="),
            if i < 20 { "alice" } else { "bob" },
            ttl,
        );
        store.put_connection(&r).await.unwrap();
        store.join_room(&r, &lobby, Rights::NONE).await.unwrap();
    }
    let room = MemberSet::Room {
        tenant: tenant(),
        room: lobby.clone(),
    };
    assert_eq!(all(store, &room).await.len(), 40);
    assert_eq!(user_connections(store, "alice").await.len(), 20);
    // Past the short TTLs: expired items are filtered from every read,
    // whether or not the store has deleted them yet.
    s.clock.advance_ms(120_000);
    let members = all(store, &room).await;
    assert_eq!(members.len(), 36);
    assert!(!members.contains(&"c10=".to_string()));
    assert_eq!(all(store, &MemberSet::Tenant(tenant())).await.len(), 36);
    assert_eq!(user_connections(store, "alice").await.len(), 18);
    let expired = ConnectionId::new("c10=").unwrap();
    assert_eq!(store.get_connection(&expired).await.unwrap(), None);
    assert!(!store.is_member(&expired, &tenant(), &lobby).await.unwrap());
    // A frame from an expired connection is seen (to close it with a
    // reason) but never resurrects it.
    assert!(
        store
            .admit_frame(&expired, NOW_MS, None, later(3_600))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.get_connection(&expired).await.unwrap(), None);
    // A connection whose heartbeat deadline passed is gone for reads too,
    // though its life has not run out.
    let silent = ConnectionId::new("c11=").unwrap();
    store
        .admit_frame(&silent, NOW_MS + 120_000, None, later(150))
        .await
        .unwrap();
    assert!(store.get_connection(&silent).await.unwrap().is_some());
    s.clock.advance_ms(31_000);
    assert_eq!(store.get_connection(&silent).await.unwrap(), None);
    assert!(matches!(
        store.members_page(&room, 0, Some("not a cursor!")).await,
        Err(StoreError::BadCursor)
    ));
}

async fn batch_delete(s: Subject) {
    let store = s.store.as_ref();
    let lobby = RoomId::new("lobby").unwrap();
    let mut ids = Vec::new();
    for i in 0..30 {
        let r = record(&format!("d{i:02}="), "carol", later(3_600));
        store.put_connection(&r).await.unwrap();
        store.join_room(&r, &lobby, Rights::NONE).await.unwrap();
        ids.push(r.id);
    }
    let mut doomed = ids[..20].to_vec();
    doomed.push(ConnectionId::new("never-existed=").unwrap());
    store.delete_connections(&doomed).await.unwrap();
    assert_eq!(user_connections(store, "carol").await.len(), 10);
    let room = MemberSet::Room {
        tenant: tenant(),
        room: lobby.clone(),
    };
    assert_eq!(all(store, &room).await.len(), 30);
    for id in &ids[..20] {
        assert_eq!(store.get_connection(id).await.unwrap(), None);
        let rooms = store.connection_rooms(id).await.unwrap();
        assert_eq!(rooms, vec![lobby.clone()]);
        store.purge_connection(id, &tenant(), &rooms).await.unwrap();
    }
    assert_eq!(all(store, &room).await.len(), 10);
}

/// Every removed connection item shows in the change feed, once, in
/// order, with its old image (what the sweeper reads); nothing else that
/// the store writes passes the sweeper's filter.
async fn change_feed(s: Subject) {
    let store = s.store.as_ref();
    let lobby = RoomId::new("lobby").unwrap();
    let mut written = Vec::new();
    for i in 0..3 {
        let r = record(&format!("f{i}="), "dave", later(3_600));
        store.put_connection(&r).await.unwrap();
        store.join_room(&r, &lobby, Rights::NONE).await.unwrap();
        store
            .admit_frame(&r.id, NOW_MS + 1, None, r.idle_until)
            .await
            .unwrap();
        written.push(r);
    }
    store.delete_connection(&written[0].id).await.unwrap();
    store
        .delete_connections(&[written[1].id.clone(), written[2].id.clone()])
        .await
        .unwrap();
    let mut removed = Vec::new();
    for _ in 0..20 {
        let records = s
            .changes
            .read(100, Duration::from_millis(500))
            .await
            .unwrap();
        let count = records.len();
        removed.extend(records.into_iter().filter(is_connection_removal));
        s.changes.acknowledge(count).await;
        if removed.len() >= 3 {
            break;
        }
    }
    let ids: Vec<String> = removed
        .iter()
        .map(|r| {
            assert!(!removed_by_ttl(r), "deleted by a request, not by TTL");
            connection_from_image(&r.change.old_image)
                .unwrap()
                .id
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[0], "f0=");
    let image = connection_from_image(&removed[0].change.old_image).unwrap();
    assert_eq!(
        (image.tenant, image.user, image.ttl),
        (tenant(), UserId::new("dave").unwrap(), later(3_600))
    );
    // Deleting what is gone writes no record.
    store.delete_connection(&written[0].id).await.unwrap();
    let after = s
        .changes
        .read(100, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(!after.iter().any(is_connection_removal), "{after:?}");
}

async fn dedupe(s: Subject) {
    let d = s.dedupe.as_ref();
    let lease = Duration::from_secs(30);
    let key = "acme#order-42";
    let fresh = EventClaim::Claimed {
        prior: PriorAttempt::None,
    };
    assert_eq!(
        d.claim_event(key, "e1", NOW_MS, lease).await.unwrap(),
        fresh
    );
    assert_eq!(
        d.claim_event(key, "e2", NOW_MS + 1_000, lease)
            .await
            .unwrap(),
        EventClaim::InProgress { owner: "e1".into() }
    );
    assert_eq!(
        d.claim_event(key, "e2", NOW_MS + 31_000, lease)
            .await
            .unwrap(),
        EventClaim::Claimed {
            prior: PriorAttempt::Crashed
        },
        "a claim past its lease is taken over, knowing its planner died"
    );
    d.complete_event(key, "e2", later(3_600), Some(7))
        .await
        .unwrap();
    assert_eq!(
        d.claim_event(key, "e1", NOW_MS + 40_000, lease)
            .await
            .unwrap(),
        EventClaim::AlreadyDone { owner: "e2".into() }
    );
    assert_eq!(
        d.claim_event(key, "e3", NOW_MS + 3_601_000, lease)
            .await
            .unwrap(),
        fresh,
        "a done marker past its ttl is free"
    );
    d.release_event(key, "someone-else", None, later(7_200))
        .await
        .unwrap();
    assert!(matches!(
        d.claim_event(key, "e4", NOW_MS + 3_602_000, lease)
            .await
            .unwrap(),
        EventClaim::InProgress { .. }
    ));
    // A failed attempt that numbered the event keeps the number for the
    // retry.
    d.release_event(key, "e3", Some(9), later(7_200))
        .await
        .unwrap();
    assert_eq!(
        d.claim_event(key, "e4", NOW_MS + 3_602_000, lease)
            .await
            .unwrap(),
        EventClaim::Claimed {
            prior: PriorAttempt::Numbered(9)
        }
    );
    // One that did not leaves nothing.
    d.release_event(key, "e4", None, later(7_200))
        .await
        .unwrap();
    assert_eq!(
        d.claim_event(key, "e5", NOW_MS + 3_602_500, lease)
            .await
            .unwrap(),
        fresh
    );
    // A done marker is never released.
    d.complete_event(key, "e5", later(7_200), None)
        .await
        .unwrap();
    d.release_event(key, "e5", Some(3), later(7_200))
        .await
        .unwrap();
    assert!(matches!(
        d.claim_event(key, "e6", NOW_MS + 3_603_000, lease)
            .await
            .unwrap(),
        EventClaim::AlreadyDone { .. }
    ));
}

async fn room_count(s: Subject) {
    let store = s.store.as_ref();
    let c1 = record("c1", "alice", later(3_600));
    store.put_connection(&c1).await.unwrap();
    assert_eq!(store.room_count(&c1.id).await.unwrap(), 0);
    for room in ["a", "b", "c"] {
        store
            .join_room(&c1, &RoomId::new(room).unwrap(), Rights::NONE)
            .await
            .unwrap();
    }
    // Joining again is idempotent.
    store
        .join_room(&c1, &RoomId::new("a").unwrap(), Rights::NONE)
        .await
        .unwrap();
    assert_eq!(store.room_count(&c1.id).await.unwrap(), 3);
    store
        .leave_room(&c1.id, &tenant(), &RoomId::new("b").unwrap())
        .await
        .unwrap();
    assert_eq!(store.room_count(&c1.id).await.unwrap(), 2);
    // Expired memberships do not count.
    let short = record("c2", "bob", later(60));
    store.put_connection(&short).await.unwrap();
    store
        .join_room(&short, &RoomId::new("a").unwrap(), Rights::NONE)
        .await
        .unwrap();
    assert_eq!(store.room_count(&short.id).await.unwrap(), 1);
    s.clock.advance_ms(120_000);
    assert_eq!(store.room_count(&short.id).await.unwrap(), 0);
    assert_eq!(
        store
            .room_count(&ConnectionId::new("nobody").unwrap())
            .await
            .unwrap(),
        0
    );
}

async fn rate_gates(s: Subject) {
    let store = &s.store;
    let c1 = record("c1", "alice", later(3_600));
    store.put_connection(&c1).await.unwrap();
    let rate = Rate::new(10, 3); // one per 100 ms, three at once
    // Without a rate, the record comes back untouched.
    let a = store
        .admit_frame(&c1.id, NOW_MS, None, c1.idle_until)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.record, c1);
    assert_eq!(a.retry_after_ms, None);
    for _ in 0..3 {
        let a = store
            .admit_frame(&c1.id, NOW_MS, rate, later(3_600))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.retry_after_ms, None);
        assert_eq!(a.record.id, c1.id);
    }
    let limited = store
        .admit_frame(&c1.id, NOW_MS, rate, later(3_600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(limited.retry_after_ms, Some(100));
    assert_eq!(
        limited.record.user, c1.user,
        "a refusal still returns the record"
    );
    let later_frame = store
        .admit_frame(&c1.id, NOW_MS + 100, rate, later(3_600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        later_frame.retry_after_ms, None,
        "one more after an interval"
    );
    // After a quiet spell the burst is back.
    for _ in 0..3 {
        let a = store
            .admit_frame(&c1.id, NOW_MS + 60_000, rate, later(3_600))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.retry_after_ms, None);
    }
    let unknown = ConnectionId::new("nobody").unwrap();
    assert!(
        store
            .admit_frame(&unknown, NOW_MS, rate, later(3_600))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .admit_frame(&unknown, NOW_MS, None, later(3_600))
            .await
            .unwrap()
            .is_none()
    );

    // The tenant publish gate needs no item to exist first.
    let rate = Rate::new(1, 2).unwrap();
    let acme = tenant();
    assert_eq!(
        store.admit_publish(&acme, NOW_MS, rate).await.unwrap(),
        None
    );
    assert_eq!(
        store.admit_publish(&acme, NOW_MS, rate).await.unwrap(),
        None
    );
    assert_eq!(
        store.admit_publish(&acme, NOW_MS, rate).await.unwrap(),
        Some(1_000)
    );
    let other = TenantId::new("globex").unwrap();
    assert_eq!(
        store.admit_publish(&other, NOW_MS, rate).await.unwrap(),
        None,
        "tenants are apart"
    );
    assert_eq!(
        store
            .admit_publish(&acme, NOW_MS + 1_000, rate)
            .await
            .unwrap(),
        None
    );
    // A connection's signals have a gate of their own.
    let c1 = ConnectionId::new("c1").unwrap();
    for _ in 0..2 {
        assert_eq!(store.admit_signal(&c1, NOW_MS, rate).await.unwrap(), None);
    }
    assert_eq!(
        store.admit_signal(&c1, NOW_MS, rate).await.unwrap(),
        Some(1_000)
    );
    let c2 = ConnectionId::new("c2").unwrap();
    assert_eq!(
        store.admit_signal(&c2, NOW_MS, rate).await.unwrap(),
        None,
        "connections are apart"
    );
}

async fn grants_and_refresh(s: Subject) {
    let store = &s.store;
    let caps = Capabilities::from_claim(&serde_json::json!({"lobby": ["subscribe"]})).unwrap();
    let mut c1 = record("c1", "alice", later(60));
    c1.capabilities = Some(caps.clone());
    store.put_connection(&c1).await.unwrap();
    assert_eq!(
        store
            .get_connection(&c1.id)
            .await
            .unwrap()
            .unwrap()
            .capabilities,
        Some(caps)
    );
    let (lobby, vip) = (RoomId::new("lobby").unwrap(), RoomId::new("vip").unwrap());
    let granted: Rights = [Right::Subscribe, Right::Publish].into_iter().collect();
    store.join_room(&c1, &lobby, Rights::NONE).await.unwrap();
    store.join_room(&c1, &vip, granted).await.unwrap();
    assert_eq!(
        store.membership(&c1.id, &tenant(), &lobby).await.unwrap(),
        Some(Rights::NONE)
    );
    assert_eq!(
        store.membership(&c1.id, &tenant(), &vip).await.unwrap(),
        Some(granted)
    );
    assert_eq!(
        store
            .membership(&c1.id, &tenant(), &RoomId::new("other").unwrap())
            .await
            .unwrap(),
        None
    );

    // A refresh moves the expiry of the connection and every item of it.
    let refreshed = later(3_600);
    assert!(
        store
            .refresh_connection(&c1.id, refreshed, None, refreshed)
            .await
            .unwrap()
    );
    s.clock.advance_ms(120_000);
    let live = store
        .get_connection(&c1.id)
        .await
        .unwrap()
        .expect("still live");
    assert_eq!(live.token_expires_at, refreshed);
    assert_eq!(live.capabilities, None);
    assert_eq!(
        store.membership(&c1.id, &tenant(), &vip).await.unwrap(),
        Some(granted)
    );
    let members = store
        .members_page(
            &MemberSet::Room {
                tenant: tenant(),
                room: lobby.clone(),
            },
            fanout_core::ids::shard_of(&c1.id, SHARDS),
            None,
        )
        .await
        .unwrap();
    assert_eq!(members.items, vec![c1.id.clone()]);
    let everyone = store
        .members_page(
            &MemberSet::Tenant(tenant()),
            fanout_core::ids::shard_of(&c1.id, SHARDS),
            None,
        )
        .await
        .unwrap();
    assert_eq!(everyone.items, vec![c1.id.clone()]);
    assert_eq!(store.room_count(&c1.id).await.unwrap(), 2);

    // Without a refresh, an expired token hides the connection from reads
    // but the frame gate still finds it (to close it with a reason).
    let c2 = record("c2", "bob", later(150));
    store.put_connection(&c2).await.unwrap();
    store.join_room(&c2, &lobby, Rights::NONE).await.unwrap();
    s.clock.advance_ms(60_000);
    assert!(store.get_connection(&c2.id).await.unwrap().is_none());
    assert!(!store.is_member(&c2.id, &tenant(), &lobby).await.unwrap());
    let seen = store
        .admit_frame(&c2.id, NOW_MS + 180_000, None, later(3_600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.record.token_expires_at, c2.token_expires_at);
    assert!(
        !store
            .refresh_connection(&ConnectionId::new("nobody").unwrap(), 1, None, 1)
            .await
            .unwrap()
    );
}

contract!(store_rate_gates: rate_gates, embedded = embedded, aws = aws);
contract!(store_grants_and_refresh: grants_and_refresh, embedded = embedded, aws = aws);
contract!(store_lifecycle: lifecycle, embedded = embedded, aws = aws);
contract!(store_room_count: room_count, embedded = embedded, aws = aws);
contract!(store_paging_and_expiry: paging_and_expiry, embedded = embedded, aws = aws);
contract!(store_batch_delete: batch_delete, embedded = embedded, aws = aws);
contract!(store_dedupe: dedupe, embedded = embedded, aws = aws);
contract!(store_change_feed: change_feed, embedded = embedded, aws = aws);
