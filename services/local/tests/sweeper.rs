//! Connections that vanish without `$disconnect`, end to end over real
//! sockets (and, with `FANOUT_E2E_BACKEND=aws`, on DynamoDB and its stream
//! in moto): a connection that stops heartbeating passes its deadline on
//! the stack's clock (moved by the test), is removed, and the sweeper ends
//! its presence (the room hears `presence.left`) and memberships. On the
//! embedded store the stack's TTL process removes it and the sweeper
//! closes its socket; moto runs no TTL, so there the test deletes the
//! expired item as DynamoDB's TTL would.

use std::sync::Arc;
use std::time::Duration;

use fanout_core::clock::{Clock, ManualClock};
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::protocol::ReceivedFrame;
use fanout_core::token::{DEV_JWT_SECRET, TokenSigner};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

mod common;
use common::*;

/// A token that outlives the minutes the test moves the clock on.
fn long_token(user: &str) -> String {
    TokenSigner::new(DEV_JWT_SECRET.as_bytes())
        .mint(
            &TenantId::new("acme").unwrap(),
            &UserId::new(user).unwrap(),
            chrono::Utc::now().timestamp(),
            Duration::from_secs(3 * 3600),
        )
        .unwrap()
}

async fn whoami(ws: &mut Socket) -> ConnectionId {
    match request(ws, r#"{"action":"whoami"}"#).await {
        ReceivedFrame::Whoami { connection_id, .. } => ConnectionId::new(&connection_id).unwrap(),
        other => panic!("expected whoami, got {other:?}"),
    }
}

#[tokio::test]
async fn a_connection_that_stops_heartbeating_is_swept() {
    if on_lambdas() {
        // The test moves the stack's clock twelve minutes on; bootstraps
        // are other processes on the system clock, so bob's heartbeat
        // would be stamped twelve minutes in the stack's past. The other
        // two modes run it.
        eprintln!(
            "skipped with --lambdas: it moves the stack's clock, which the bootstraps do not share"
        );
        return;
    }
    let clock = ManualClock::at_ms(chrono::Utc::now().timestamp_millis());
    let stack = start_on_clock(
        &["--expiry-scan-interval", "200ms"],
        clock.clone() as Arc<dyn Clock>,
    )
    .await;
    let store = stack.resources.store.clone();
    let (acme, lobby) = (
        TenantId::new("acme").unwrap(),
        RoomId::new("lobby").unwrap(),
    );

    let mut bob = connect_with(&stack, &long_token("bob")).await;
    join(&mut bob, "lobby").await;
    let mut alice = connect_with(&stack, &long_token("alice")).await;
    let alice_id = whoami(&mut alice).await;
    let reply = request(
        &mut alice,
        r#"{"action":"join","room":"lobby","presence":true}"#,
    )
    .await;
    assert!(matches!(reply, ReceivedFrame::Joined { .. }), "{reply:?}");
    assert!(matches!(
        next(&mut bob).await,
        ReceivedFrame::PresenceJoined(_)
    ));

    // Six minutes on, bob heartbeats; alice stays silent.
    clock.advance_ms(6 * 60_000);
    assert!(matches!(
        request(&mut bob, r#"{"action":"ping"}"#).await,
        ReceivedFrame::Pong { .. }
    ));
    // Twelve minutes on: alice is past her 11-minute deadline.
    clock.advance_ms(6 * 60_000);
    assert!(
        eventually(|| async { store.get_connection(&alice_id).await.unwrap().is_none() }).await,
        "reads no longer find a connection past its heartbeat deadline"
    );
    if on_aws() {
        // What DynamoDB's TTL does (moto does not run it).
        assert!(store.delete_connection(&alice_id).await.unwrap());
    }

    match next(&mut bob).await {
        ReceivedFrame::PresenceLeft(left) => assert_eq!(left.user.as_deref(), Some("alice")),
        other => panic!("expected presence.left, got {other:?}"),
    }
    assert!(
        eventually(|| async { !store.is_member(&alice_id, &acme, &lobby).await.unwrap() }).await,
        "her membership is swept"
    );
    if !on_aws() {
        // Removed by TTL with its socket still open: the sweeper closes it
        // so the client reconnects and resumes.
        assert_eq!(
            close_code_within(&mut alice, Duration::from_secs(5)).await,
            CloseCode::Normal
        );
    }
    // bob is still there, and still hears the room.
    assert!(
        store
            .get_connection(&whoami(&mut bob).await)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(stack.resources.dead_letters().await.unwrap(), 0);
    stack.stop().await;
}
