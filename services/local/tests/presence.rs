//! Presence end to end: real WebSocket clients against the local stack
//! (and, with `FANOUT_E2E_BACKEND=aws`, on DynamoDB and the rest in moto):
//! users rather than connections, multi-tab, state updates, paging, the
//! count-only threshold, and the presence right.

use std::time::Duration;

use fanout_core::auth::Right;
use fanout_core::protocol::{ErrorCode, ReceivedFrame};
use fanout_core::token::{Claims, DEV_JWT_SECRET, TokenSigner};
use serde_json::json;

mod common;
use common::*;

async fn join_present(ws: &mut Socket, room: &str, state: Option<&str>) {
    let state = state
        .map(|s| format!(r#","state":{s}"#))
        .unwrap_or_default();
    send(
        ws,
        &format!(r#"{{"action":"join","room":"{room}","presence":true{state}}}"#),
    )
    .await;
    // The room's notice of this very join travels through the bus and
    // the planner, and may reach the member before its reply does.
    loop {
        match next(ws).await {
            ReceivedFrame::Joined { .. } => return,
            ReceivedFrame::PresenceJoined(_) | ReceivedFrame::PresenceCount(_) => {}
            other => panic!("expected joined, got {other:?}"),
        }
    }
}

/// Reads and drops whatever `ws` receives until it has been quiet a while.
async fn drain(ws: &mut Socket) {
    use futures::StreamExt;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(300), ws.next()).await {}
}

async fn whoami_id(ws: &mut Socket) -> String {
    match request(ws, r#"{"action":"whoami"}"#).await {
        ReceivedFrame::Whoami { connection_id, .. } => connection_id,
        other => panic!("expected whoami, got {other:?}"),
    }
}

/// The next presence notice `ws` receives, skipping nothing else.
async fn notice(ws: &mut Socket) -> ReceivedFrame {
    let frame = next(ws).await;
    assert!(
        matches!(
            frame,
            ReceivedFrame::PresenceJoined(_)
                | ReceivedFrame::PresenceLeft(_)
                | ReceivedFrame::PresenceUpdated(_)
                | ReceivedFrame::PresenceCount(_)
        ),
        "expected a presence notice, got {frame:?}"
    );
    frame
}

#[tokio::test]
async fn two_tabs_are_one_member_joined_once_and_left_once() {
    let stack = start().await;
    let mut bob = connect(&stack, "acme", "bob").await;
    join(&mut bob, "lobby").await;

    let mut tab1 = connect(&stack, "acme", "alice").await;
    join_present(&mut tab1, "lobby", Some(r#"{"status":"online"}"#)).await;
    let joined = notice(&mut bob).await;
    let ReceivedFrame::PresenceJoined(j) = joined else {
        panic!("{joined:?}")
    };
    assert_eq!(j.user.as_deref(), Some("alice"));
    assert_eq!(j.state, Some(json!({"status":"online"})));
    let mut tab2 = connect(&stack, "acme", "alice").await;
    join_present(&mut tab2, "lobby", None).await;
    // tab1 hears its own join; drain it so the room is quiet.
    notice(&mut tab1).await;
    silent(&mut bob, Duration::from_millis(400)).await;

    match request(&mut bob, r#"{"action":"presence","room":"lobby"}"#).await {
        ReceivedFrame::Presence { count, members, .. } => {
            assert_eq!(count, 1);
            assert_eq!(members.len(), 1);
            assert_eq!(
                (members[0].user.as_str(), members[0].connections),
                ("alice", 2)
            );
        }
        other => panic!("expected presence, got {other:?}"),
    }

    // Closing one of two tabs tells the room nothing.
    drop(tab1);
    silent(&mut bob, Duration::from_millis(600)).await;

    // The last one goes away server-side: presence.left, once.
    let id = whoami_id(&mut tab2).await;
    let management = aws_sdk_apigatewaymanagement::Client::new(
        &local_sdk_config(stack.management_url()).load().await,
    );
    management
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("DELETE @connections");
    let left = notice(&mut bob).await;
    let ReceivedFrame::PresenceLeft(l) = left else {
        panic!("{left:?}")
    };
    assert_eq!(l.user.as_deref(), Some("alice"));
    assert!(l.version.unwrap() > j.version.unwrap());
    silent(&mut bob, Duration::from_millis(500)).await;
    match request(&mut bob, r#"{"action":"presence","room":"lobby"}"#).await {
        ReceivedFrame::Presence { count, members, .. } => {
            assert_eq!((count, members.len()), (0, 0));
        }
        other => panic!("expected presence, got {other:?}"),
    }
    stack.stop().await;
}

#[tokio::test]
async fn state_updates_paging_the_threshold_and_the_presence_right() {
    let stack = start_with(&["--presence-max-members", "3"]).await;
    let mut watcher = connect(&stack, "acme", "watcher").await;
    join(&mut watcher, "room").await;
    let mut users = Vec::new();
    for name in ["u1", "u2", "u3"] {
        let mut ws = connect(&stack, "acme", name).await;
        join_present(&mut ws, "room", None).await;
        assert!(matches!(
            notice(&mut watcher).await,
            ReceivedFrame::PresenceJoined(_)
        ));
        users.push(ws);
    }
    // Members hear each other's joins too.
    for ws in &mut users {
        drain(ws).await;
    }
    let reply = request(
        &mut users[0],
        r#"{"action":"presence.update","room":"room","state":{"typing":false}}"#,
    )
    .await;
    assert!(matches!(reply, ReceivedFrame::Ack { .. }), "{reply:?}");
    match notice(&mut watcher).await {
        ReceivedFrame::PresenceUpdated(u) => {
            assert_eq!(u.user.as_deref(), Some("u1"));
            assert_eq!(u.state, Some(json!({"typing": false})));
        }
        other => panic!("{other:?}"),
    }
    let not_present = request(
        &mut watcher,
        r#"{"action":"presence.update","room":"room","state":1}"#,
    )
    .await;
    assert!(matches!(
        not_present,
        ReceivedFrame::Error {
            code: ErrorCode::NotMember,
            ..
        }
    ));

    // Paged two at a time.
    let first = request(
        &mut watcher,
        r#"{"action":"presence","room":"room","limit":2}"#,
    )
    .await;
    let ReceivedFrame::Presence {
        members,
        next,
        count,
        ..
    } = first
    else {
        panic!("{first:?}")
    };
    assert_eq!((members.len(), count), (2, 3));
    let cursor = next.expect("a second page");
    let second = request(
        &mut watcher,
        &format!(r#"{{"action":"presence","room":"room","limit":2,"cursor":"{cursor}"}}"#),
    )
    .await;
    let ReceivedFrame::Presence {
        members: rest,
        next,
        ..
    } = second
    else {
        panic!("{second:?}")
    };
    assert_eq!((rest.len(), next), (1, None));

    // Past 3 members the room hears a count, not each join.
    let mut u4 = connect(&stack, "acme", "u4").await;
    join_present(&mut u4, "room", None).await;
    match notice(&mut watcher).await {
        ReceivedFrame::PresenceCount(c) => assert_eq!(c.members, Some(4)),
        other => panic!("expected a count, got {other:?}"),
    }
    let mut u5 = connect(&stack, "acme", "u5").await;
    join_present(&mut u5, "room", None).await;
    silent(&mut watcher, Duration::from_millis(400)).await; // coalesced

    // Entering presence and listing it need the presence right.
    let now = chrono::Utc::now().timestamp();
    let token = TokenSigner::new(DEV_JWT_SECRET.as_bytes())
        .sign(&Claims {
            tenant: "acme".into(),
            sub: "quiet".into(),
            exp: now + 600,
            nbf: None,
            iat: Some(now),
            capabilities: Some(json!({"room": ["subscribe"]})),
        })
        .unwrap();
    let mut quiet = connect_with(&stack, &token).await;
    for frame in [
        r#"{"action":"join","room":"room","presence":true}"#,
        r#"{"action":"presence","room":"room"}"#,
    ] {
        match request(&mut quiet, frame).await {
            ReceivedFrame::Error {
                code: ErrorCode::Forbidden,
                right: Some(Right::Presence),
                ..
            } => {}
            other => panic!("expected forbidden, got {other:?}"),
        }
    }
    stack.stop().await;
}

/// A cursor no page gave is the caller's mistake: 400, not 503.
#[tokio::test]
async fn a_bad_presence_cursor_is_a_bad_request() {
    let stack = start().await;
    let url = format!(
        "{}/_fanout/presence?tenant=acme&room=lobby&cursor=not%20a%20user",
        stack.http_url().replacen("http://", "ws://", 1)
    );
    // A GET (an upgrade request, which the endpoint answers as any GET).
    assert_eq!(http_status(&url).await, 400);
    stack.stop().await;
}
