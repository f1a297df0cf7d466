//! The presence contract: `MemoryStore` and `DynamoStore` count users, not
//! connections, the same way.

use std::sync::Arc;

use fanout_aws::{DynamoStore, provision};
use fanout_core::clock::ManualClock;
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::ports::{PresenceChange, PresenceStore};
use fanout_embedded::MemoryStore;
use serde_json::value::RawValue;

use crate::common::{sdk_config, unique};
use crate::contract;

pub struct Subject {
    presence: Arc<dyn PresenceStore>,
    clock: Arc<ManualClock>,
}

const NOW_MS: i64 = 1_800_000_000_000;

async fn embedded() -> Subject {
    let clock = ManualClock::at_ms(NOW_MS);
    Subject {
        presence: Arc::new(MemoryStore::new(clock.clone(), 2)),
        clock,
    }
}

async fn aws(endpoint: &str) -> Subject {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config(endpoint).await);
    let table = unique("fanout-presence");
    provision::table(&client, &table).await.unwrap();
    let clock = ManualClock::at_ms(NOW_MS);
    Subject {
        presence: Arc::new(DynamoStore::new(client, table, clock.clone(), 2)),
        clock,
    }
}

fn ids() -> (TenantId, RoomId) {
    (
        TenantId::new("acme").unwrap(),
        RoomId::new("lobby").unwrap(),
    )
}

fn user(u: &str) -> UserId {
    UserId::new(u).unwrap()
}

fn conn(c: &str) -> ConnectionId {
    ConnectionId::new(c).unwrap()
}

fn state(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.into()).unwrap()
}

const TTL: i64 = NOW_MS / 1000 + 3_600;

/// Tabs of one user are one member; joins and leaves are announced once.
async fn users_not_connections(s: Subject) {
    let p = s.presence.as_ref();
    let (t, r) = ids();
    let first = p
        .enter(&t, &r, &user("alice"), &conn("a1"), None, TTL)
        .await
        .unwrap();
    assert!(matches!(first.change, PresenceChange::Joined(ref m) if m.connections == 1));
    assert_eq!(first.members, 1);
    let second = p
        .enter(&t, &r, &user("alice"), &conn("a2"), None, TTL)
        .await
        .unwrap();
    assert!(
        matches!(second.change, PresenceChange::Unchanged),
        "{:?}",
        second.change
    );
    let typing = state(r#"{"status":"busy"}"#);
    let bob = p
        .enter(&t, &r, &user("bob"), &conn("b1"), Some(&typing), TTL)
        .await
        .unwrap();
    match bob.change {
        PresenceChange::Joined(m) => assert_eq!(m.state.unwrap().get(), r#"{"status":"busy"}"#),
        other => panic!("{other:?}"),
    }
    assert_eq!(bob.members, 2);

    let away = state(r#"{"status":"away"}"#);
    let updated = p
        .set_state(&t, &r, &user("alice"), &conn("a1"), &away)
        .await
        .unwrap();
    let version = match updated.change {
        PresenceChange::Updated(m) => {
            assert_eq!(
                (m.connections, m.state.unwrap().get()),
                (2, r#"{"status":"away"}"#)
            );
            m.version
        }
        other => panic!("{other:?}"),
    };
    let stranger = p
        .set_state(&t, &r, &user("alice"), &conn("zz"), &away)
        .await
        .unwrap();
    assert!(matches!(stranger.change, PresenceChange::Unchanged));

    let page = p.presence_page(&t, &r, None, 10).await.unwrap();
    let users: Vec<_> = page
        .items
        .iter()
        .map(|m| m.user.as_str().to_string())
        .collect();
    assert_eq!(users, ["alice", "bob"]);
    assert_eq!(page.items[0].connections, 2);
    assert!(page.next.is_none());
    let one = p.presence_page(&t, &r, None, 1).await.unwrap();
    assert_eq!(one.items.len(), 1);
    let rest = p
        .presence_page(&t, &r, one.next.as_deref(), 1)
        .await
        .unwrap();
    assert_eq!(rest.items[0].user.as_str(), "bob");

    let closed_tab = p.exit(&t, &r, &user("alice"), &conn("a1")).await.unwrap();
    assert!(matches!(closed_tab.change, PresenceChange::Unchanged));
    let again = p.exit(&t, &r, &user("alice"), &conn("a1")).await.unwrap();
    assert!(matches!(again.change, PresenceChange::Unchanged));
    let last = p.exit(&t, &r, &user("alice"), &conn("a2")).await.unwrap();
    match last.change {
        PresenceChange::Left {
            user: u,
            version: v,
        } => {
            assert_eq!(u.as_str(), "alice");
            assert!(v > version, "versions move on: {v} after {version}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(last.members, 1);
    let swept_later = p.exit(&t, &r, &user("alice"), &conn("a2")).await.unwrap();
    assert!(
        matches!(swept_later.change, PresenceChange::Unchanged),
        "a second departure is silent"
    );
    assert_eq!(swept_later.members, 1);
}

/// Expired members are not listed and enter anew; count notices are
/// claimed at most once per interval.
async fn expiry_and_count_notices(s: Subject) {
    let p = s.presence.as_ref();
    let (t, r) = ids();
    p.enter(
        &t,
        &r,
        &user("carol"),
        &conn("c1"),
        None,
        NOW_MS / 1000 + 60,
    )
    .await
    .unwrap();
    assert!(p.claim_count_notice(&t, &r, NOW_MS, 5_000).await.unwrap());
    assert!(
        !p.claim_count_notice(&t, &r, NOW_MS + 1_000, 5_000)
            .await
            .unwrap()
    );
    assert!(
        p.claim_count_notice(&t, &r, NOW_MS + 5_000, 5_000)
            .await
            .unwrap()
    );
    s.clock.advance_ms(120_000);
    assert!(
        p.presence_page(&t, &r, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let back = p
        .enter(&t, &r, &user("carol"), &conn("c2"), None, TTL + 120)
        .await
        .unwrap();
    assert!(matches!(back.change, PresenceChange::Joined(ref m) if m.connections == 1));
    assert_eq!(
        back.members, 1,
        "an expired member coming back is counted once"
    );
}

contract!(presence_users: users_not_connections, embedded = embedded, aws = aws);
contract!(presence_expiry: expiry_and_count_notices, embedded = embedded, aws = aws);

/// A user who leaves and comes back (a page reload) must be seen again:
/// clients drop a notice whose version is not above the last they
/// applied, so the new `joined` must be above the `left`.
async fn a_returning_user_joins_above_their_departure(s: Subject) {
    let p = s.presence.as_ref();
    let (t, r) = ids();
    let dave = user("dave");
    p.enter(&t, &r, &dave, &conn("d1"), None, TTL)
        .await
        .unwrap();
    let left = match p.exit(&t, &r, &dave, &conn("d1")).await.unwrap().change {
        PresenceChange::Left { version, .. } => version,
        other => panic!("expected left, got {other:?}"),
    };
    s.clock.advance_ms(1);
    let back = p
        .enter(&t, &r, &dave, &conn("d2"), None, TTL)
        .await
        .unwrap();
    match back.change {
        PresenceChange::Joined(m) => assert!(
            m.version > left,
            "joined at {} after left at {left}",
            m.version
        ),
        other => panic!("expected joined, got {other:?}"),
    }
}

contract!(presence_return: a_returning_user_joins_above_their_departure, embedded = embedded, aws = aws);
