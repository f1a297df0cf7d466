//! Signals end to end (typing indicators): real WebSocket clients against
//! the local stack (and, with `FANOUT_E2E_BACKEND=aws`, on moto): delivered
//! to the room's other members only, never stored, refused without the
//! signal right, and rate-limited per connection.

use std::time::Duration;

use fanout_core::auth::Right;
use fanout_core::protocol::{ErrorCode, ReceivedFrame};
use fanout_core::token::{Claims, DEV_JWT_SECRET, TokenSigner};
use serde_json::json;

mod common;
use common::*;

#[tokio::test]
async fn a_signal_reaches_the_other_members_only_and_is_never_stored() {
    let stack = start().await;
    let mut alice = connect(&stack, "acme", "alice").await;
    let mut bob = connect(&stack, "acme", "bob").await;
    let mut carol = connect(&stack, "acme", "carol").await; // not a member
    join(&mut alice, "lobby").await;
    join(&mut bob, "lobby").await;

    let reply = request(
        &mut alice,
        r#"{"action":"signal","room":"lobby","data":{"typing":true},"requestId":"s"}"#,
    )
    .await;
    assert!(matches!(reply, ReceivedFrame::Ack { .. }), "{reply:?}");
    match next(&mut bob).await {
        ReceivedFrame::Signal {
            room, from, data, ..
        } => {
            assert_eq!(room, "lobby");
            assert_eq!(data, json!({"typing": true}));
            assert!(
                matches!(from, Some(fanout_core::event::Sender::Client { ref user, .. }) if user.as_str() == "alice")
            );
        }
        other => panic!("expected a signal, got {other:?}"),
    }
    silent(&mut alice, Duration::from_millis(300)).await;
    silent(&mut carol, Duration::from_millis(10)).await;
    match request(&mut bob, r#"{"action":"history","room":"lobby"}"#).await {
        ReceivedFrame::History { messages, .. } => assert!(messages.is_empty()),
        other => panic!("expected history, got {other:?}"),
    }
    let not_member = request(&mut carol, r#"{"action":"signal","room":"lobby","data":1}"#).await;
    assert!(
        matches!(
            not_member,
            ReceivedFrame::Error {
                code: ErrorCode::NotMember,
                ..
            }
        ),
        "{not_member:?}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn signals_need_the_signal_right_and_are_limited_per_connection() {
    let stack = start_with(&["--client-signal-rate", "2", "--client-signal-burst", "3"]).await;
    let now = chrono::Utc::now().timestamp();
    let reader = TokenSigner::new(DEV_JWT_SECRET.as_bytes())
        .sign(&Claims {
            tenant: "acme".into(),
            sub: "dave".into(),
            exp: now + 600,
            nbf: None,
            iat: Some(now),
            capabilities: Some(json!({"lobby": ["subscribe", "publish"]})),
        })
        .unwrap();
    let mut dave = connect_with(&stack, &reader).await;
    join(&mut dave, "lobby").await;
    match request(&mut dave, r#"{"action":"signal","room":"lobby","data":1}"#).await {
        ReceivedFrame::Error {
            code: ErrorCode::Forbidden,
            right: Some(Right::Signal),
            ..
        } => {}
        other => panic!("expected forbidden, got {other:?}"),
    }

    let mut alice = connect(&stack, "acme", "alice").await;
    join(&mut alice, "lobby").await;
    // The bucket holds the burst (3) and refills at 2 per second while the
    // signals go out, however long a busy machine takes to carry them:
    // the acks are bounded by the time measured, not by a guess of it.
    let started = std::time::Instant::now();
    let mut acked = 0;
    let refusal = loop {
        match request(&mut alice, r#"{"action":"signal","room":"lobby","data":1}"#).await {
            ReceivedFrame::Ack { .. } => acked += 1,
            other => break other,
        }
        assert!(acked <= 50, "signals were never limited");
    };
    let refills = (started.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    assert!(
        (3..=3 + refills).contains(&acked),
        "{acked} acks for a burst of 3 and {refills} refills"
    );
    match &refusal {
        ReceivedFrame::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms: Some(wait),
            ..
        } => assert!(*wait > 0 && *wait <= 500, "{wait}"),
        other => panic!("expected rate_limited, got {other:?}"),
    }
    // Publishing is not held back by the signal limit.
    assert!(matches!(
        request(
            &mut alice,
            r#"{"action":"publish","room":"lobby","data":1}"#
        )
        .await,
        ReceivedFrame::Ack { .. }
    ));
    stack.stop().await;
}
