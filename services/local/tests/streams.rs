//! Room streams end to end: real WebSocket clients against the local stack
//! (and, with `FANOUT_E2E_BACKEND=aws`, on DynamoDB and the rest in moto):
//! per-room `seq`, resume with `since` across a server-side close, replays
//! cut by retention and by the replay cap, concurrent planners, history,
//! edits and deletes, and events kept out of the stream.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use fanout_core::auth::Right;
use fanout_core::protocol::{ErrorCode, ReceivedFrame};
use fanout_core::token::{Claims, DEV_JWT_SECRET, TokenSigner};
use fanout_local::RunningStack;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::*;

/// Publishes `data` to `room` of tenant acme as a product service, 10
/// entries per PutEvents call.
async fn publish_all(client: &aws_sdk_eventbridge::Client, room: &str, data: &[Value]) {
    for chunk in data.chunks(10) {
        let mut put = client.put_events();
        for d in chunk {
            put = put.entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name("fanout")
                    .source("acme.chat")
                    .detail_type("fanout.broadcast")
                    .detail(json!({"tenant":"acme","target":{"room":room},"data":d}).to_string())
                    .build(),
            );
        }
        let out = put.send().await.expect("PutEvents");
        assert_eq!(out.failed_entry_count(), 0);
    }
}

async fn events(stack: &RunningStack) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(&local_sdk_config(stack.http_url()).load().await)
}

/// What a client restores from the frames it got: stream messages by
/// `seq` (duplicates dropped and counted), and its other frames in order.
#[derive(Default)]
struct Restored {
    by_seq: BTreeMap<u64, Value>,
    duplicates: usize,
    others: Vec<ReceivedFrame>,
}

impl Restored {
    fn take(&mut self, frame: ReceivedFrame) {
        match frame {
            ReceivedFrame::Replay { messages, .. } => {
                for m in messages {
                    self.take(m);
                }
            }
            ReceivedFrame::Message {
                seq: Some(seq),
                data,
                ..
            } => {
                if self.by_seq.insert(seq, data).is_some() {
                    self.duplicates += 1;
                }
            }
            other => self.others.push(other),
        }
    }

    /// The last `seq` of the run with no gap from 1.
    fn contiguous(&self) -> u64 {
        let mut last = 0;
        for &seq in self.by_seq.keys() {
            if seq != last + 1 {
                break;
            }
            last = seq;
        }
        last
    }

    /// Reads `ws` until `done` holds, failing after `wait`.
    async fn read_until(
        &mut self,
        ws: &mut Socket,
        wait: Duration,
        done: impl Fn(&Restored) -> bool,
    ) {
        tokio::time::timeout(wait, async {
            while !done(self) {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        self.take(serde_json::from_str(&text).expect("a frame"));
                    }
                    Some(Ok(_)) => {}
                    other => panic!("socket ended: {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out with {} messages (contiguous to {}), others {:?}",
                self.by_seq.len(),
                self.contiguous(),
                self.others
            )
        });
    }

    fn joined(&self) -> Option<(u64, Option<bool>, Option<u64>)> {
        self.others.iter().find_map(|f| match f {
            ReceivedFrame::Joined {
                seq,
                recovered,
                oldest,
                ..
            } => Some((*seq, *recovered, *oldest)),
            _ => None,
        })
    }
}

fn whoami_id(frame: ReceivedFrame) -> String {
    match frame {
        ReceivedFrame::Whoami { connection_id, .. } => connection_id,
        other => panic!("expected whoami, got {other:?}"),
    }
}

#[tokio::test]
async fn a_member_closed_mid_stream_resumes_with_since_and_gets_every_message_once_in_order() {
    let stack = start_with(&["--planner-concurrency", "4"]).await;
    let mut alice = connect(&stack, "acme", "alice").await;
    assert_eq!(join(&mut alice, "lobby").await, 0);
    let first_id = whoami_id(request(&mut alice, r#"{"action":"whoami"}"#).await);

    let client = events(&stack).await;
    let data: Vec<Value> = (0..200).map(|n| json!({ "n": n })).collect();
    let publisher = {
        let client = client.clone();
        let data = data.clone();
        tokio::spawn(async move {
            for part in data.chunks(20) {
                publish_all(&client, "lobby", part).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let mut got = Restored::default();
    got.read_until(&mut alice, Duration::from_secs(20), |r| {
        r.by_seq.len() >= 40
    })
    .await;
    // API Gateway's forced close: the server ends the connection.
    let management = aws_sdk_apigatewaymanagement::Client::new(
        &local_sdk_config(stack.management_url()).load().await,
    );
    management
        .delete_connection()
        .connection_id(&first_id)
        .send()
        .await
        .expect("DELETE @connections");
    while let Some(Ok(frame)) = alice.next().await {
        if let Message::Text(text) = frame {
            got.take(serde_json::from_str(&text).unwrap());
        }
    }
    // Messages keep coming while it is away.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut alice = connect(&stack, "acme", "alice").await;
    let second_id = whoami_id(request(&mut alice, r#"{"action":"whoami"}"#).await);
    assert_ne!(first_id, second_id, "a reconnect is a new connection");
    let since = got.contiguous();
    assert!(since < 200, "the close came before the end of the stream");
    send(
        &mut alice,
        &format!(r#"{{"action":"join","room":"lobby","since":{since},"requestId":"j"}}"#),
    )
    .await;
    publisher.await.unwrap();
    got.read_until(&mut alice, Duration::from_secs(30), |r| {
        r.by_seq.len() >= 200 && r.joined().is_some()
    })
    .await;

    let (_, recovered, oldest) = got.joined().unwrap();
    assert_eq!((recovered, oldest), (Some(true), None));
    assert_eq!(
        got.by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>(),
        "every seq once, no gap"
    );
    let mut payloads: Vec<Value> = got.by_seq.values().cloned().collect();
    payloads.sort_by_key(|v| v["n"].as_i64());
    assert_eq!(payloads, data, "every message exactly once");
    silent(&mut alice, Duration::from_millis(300)).await;
    stack.stop().await;
}

#[tokio::test]
async fn a_resume_past_retention_or_the_replay_cap_says_not_recovered_with_the_oldest_seq() {
    // Long enough for the later events to outlive the test's steps on
    // moto, short enough to wait out the first ones.
    let stack = start_with(&["--stream-retention", "6s", "--replay-max-events", "3"]).await;
    let client = events(&stack).await;
    let mut watcher = connect(&stack, "acme", "watcher").await;
    join(&mut watcher, "lobby").await;
    let mut seen = Restored::default();

    publish_all(&client, "lobby", &[json!(1), json!(2), json!(3)]).await;
    seen.read_until(&mut watcher, Duration::from_secs(10), |r| {
        r.by_seq.len() == 3
    })
    .await;
    // Seqs 1–3 pass their retention.
    tokio::time::sleep(Duration::from_millis(7_200)).await;
    let later: Vec<Value> = (4..=8).map(|n| json!(n)).collect();
    publish_all(&client, "lobby", &later).await;
    seen.read_until(&mut watcher, Duration::from_secs(10), |r| {
        r.by_seq.len() == 8
    })
    .await;

    // Missed 2..8: 2 and 3 are gone, and the cap replays 4, 5, 6 only.
    let mut late = connect(&stack, "acme", "late").await;
    send(
        &mut late,
        r#"{"action":"join","room":"lobby","since":1,"requestId":"j"}"#,
    )
    .await;
    let mut got = Restored::default();
    got.read_until(&mut late, Duration::from_secs(10), |r| r.joined().is_some())
        .await;
    assert_eq!(got.joined(), Some((8, Some(false), Some(4))));
    assert_eq!(
        got.by_seq.keys().copied().collect::<Vec<_>>(),
        vec![4, 5, 6]
    );

    // The rest comes from history; a resume within reach is recovered.
    match request(
        &mut late,
        r#"{"action":"history","room":"lobby","after":6,"requestId":"h"}"#,
    )
    .await
    {
        ReceivedFrame::History { messages, more, .. } => {
            assert_eq!(
                messages.iter().map(|m| m.seq()).collect::<Vec<_>>(),
                vec![Some(7), Some(8)]
            );
            assert!(!more);
        }
        other => panic!("expected history, got {other:?}"),
    }
    let mut other = connect(&stack, "acme", "other").await;
    send(
        &mut other,
        r#"{"action":"join","room":"lobby","since":6,"requestId":"j"}"#,
    )
    .await;
    let mut got = Restored::default();
    got.read_until(&mut other, Duration::from_secs(10), |r| {
        r.joined().is_some()
    })
    .await;
    assert_eq!(got.joined(), Some((8, Some(true), None)));
    assert_eq!(got.by_seq.keys().copied().collect::<Vec<_>>(), vec![7, 8]);
    stack.stop().await;
}

#[tokio::test]
async fn concurrent_planners_number_a_room_without_gaps_and_history_pages_in_order() {
    let stack = start_with(&["--planner-concurrency", "6", "--planner-batch-size", "3"]).await;
    let mut member = connect(&stack, "acme", "member").await;
    join(&mut member, "busy").await;
    let client = events(&stack).await;
    let data: Vec<Value> = (0..300).map(|n| json!({ "n": n })).collect();
    futures::future::join_all(
        data.chunks(30)
            .map(|part| publish_all(&client, "busy", part)),
    )
    .await;
    let mut got = Restored::default();
    got.read_until(&mut member, Duration::from_secs(30), |r| {
        r.by_seq.len() >= 300
    })
    .await;
    assert_eq!(
        got.by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=300).collect::<Vec<_>>()
    );

    // History pages back from the newest, 100 at a time, in order.
    let mut pages = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let frame = match before {
            None => json!({"action":"history","room":"busy","limit":100}),
            Some(b) => json!({"action":"history","room":"busy","before":b,"limit":100}),
        };
        match request(&mut member, &frame.to_string()).await {
            ReceivedFrame::History { messages, more, .. } => {
                let seqs: Vec<u64> = messages.iter().filter_map(ReceivedFrame::seq).collect();
                assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
                before = seqs.first().copied();
                pages.push(seqs);
                if !more {
                    break;
                }
            }
            other => panic!("expected history, got {other:?}"),
        }
    }
    assert_eq!(pages.len(), 3);
    pages.reverse();
    assert_eq!(pages.concat(), (1..=300).collect::<Vec<_>>());
    stack.stop().await;
}

/// A dev-secret token for acme/`user` with `capabilities`.
fn token_with_caps(user: &str, capabilities: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    TokenSigner::new(DEV_JWT_SECRET.as_bytes())
        .sign(&Claims {
            tenant: "acme".into(),
            sub: user.into(),
            exp: now + 600,
            nbf: None,
            iat: Some(now),
            capabilities: Some(capabilities),
        })
        .unwrap()
}

fn assert_error(reply: ReceivedFrame, want: ErrorCode) {
    match reply {
        ReceivedFrame::Error { code, .. } if code == want => {}
        other => panic!("expected {want:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn senders_edit_and_delete_their_own_messages_and_history_shows_the_current_version() {
    let stack = start_with(&["--ephemeral-rooms", "typing:*"]).await;
    let mut alice = connect(&stack, "acme", "alice").await;
    let mut bob = connect(&stack, "acme", "bob").await;
    join(&mut alice, "lobby").await;
    join(&mut bob, "lobby").await;

    let reply = request(
        &mut alice,
        r#"{"action":"publish","room":"lobby","data":{"text":"v1"}}"#,
    )
    .await;
    assert!(matches!(reply, ReceivedFrame::Ack { .. }), "{reply:?}");
    for ws in [&mut alice, &mut bob] {
        assert!(matches!(
            next(ws).await,
            ReceivedFrame::Message { seq: Some(1), .. }
        ));
    }

    let edit = r#"{"action":"update","room":"lobby","seq":1,"data":{"text":"v2"}}"#;
    let refused = request(&mut bob, edit).await;
    assert_error(refused, ErrorCode::Forbidden);
    assert!(matches!(
        request(&mut alice, edit).await,
        ReceivedFrame::Ack { .. }
    ));
    for ws in [&mut alice, &mut bob] {
        match next(ws).await {
            ReceivedFrame::MessageUpdated { seq, of, data, .. } => {
                assert_eq!((seq, of), (2, 1));
                assert_eq!(data, json!({"text":"v2"}));
            }
            other => panic!("expected message.updated, got {other:?}"),
        }
    }
    let missing = request(&mut alice, r#"{"action":"delete","room":"lobby","seq":9}"#).await;
    assert_error(missing, ErrorCode::NotFound);
    let not_a_message = request(&mut alice, r#"{"action":"delete","room":"lobby","seq":2}"#).await;
    assert_error(not_a_message, ErrorCode::NotFound);
    assert!(matches!(
        request(&mut alice, r#"{"action":"delete","room":"lobby","seq":1}"#).await,
        ReceivedFrame::Ack { .. }
    ));
    for ws in [&mut alice, &mut bob] {
        assert!(matches!(
            next(ws).await,
            ReceivedFrame::MessageDeleted { seq: 3, of: 1, .. }
        ));
    }
    assert_error(request(&mut alice, edit).await, ErrorCode::NotFound);

    // A service's event kept out of the stream, and an ephemeral room.
    let client = events(&stack).await;
    client
        .put_events()
        .entries(
            PutEventsRequestEntry::builder()
                .event_bus_name("fanout")
                .source("acme.chat")
                .detail_type("fanout.broadcast")
                .detail(r#"{"tenant":"acme","target":{"room":"lobby"},"data":"live only","stream":false}"#)
                .build(),
        )
        .send()
        .await
        .unwrap();
    match next(&mut bob).await {
        ReceivedFrame::Message { seq, data, .. } => {
            assert_eq!((seq, data), (None, json!("live only")));
        }
        other => panic!("expected a message, got {other:?}"),
    }
    join(&mut bob, "typing:doc-1").await;
    request(
        &mut bob,
        r#"{"action":"publish","room":"typing:doc-1","data":"..."}"#,
    )
    .await;
    assert!(matches!(
        next(&mut bob).await,
        ReceivedFrame::Message { seq: None, .. }
    ));

    match request(&mut bob, r#"{"action":"history","room":"lobby"}"#).await {
        ReceivedFrame::History { messages, more, .. } => {
            assert!(!more);
            assert_eq!(messages.len(), 3, "{messages:?}");
            match &messages[0] {
                ReceivedFrame::Message {
                    seq: Some(1),
                    deleted: Some(true),
                    updated_at: Some(_),
                    data: Value::Null,
                    ..
                } => {}
                other => panic!("expected the deleted message, got {other:?}"),
            }
            assert!(matches!(
                messages[1],
                ReceivedFrame::MessageUpdated { seq: 2, .. }
            ));
            assert!(matches!(
                messages[2],
                ReceivedFrame::MessageDeleted { seq: 3, .. }
            ));
        }
        other => panic!("expected history, got {other:?}"),
    }
    let empty = request(&mut bob, r#"{"action":"history","room":"typing:doc-1"}"#).await;
    assert!(
        matches!(empty, ReceivedFrame::History { ref messages, more: false, .. } if messages.is_empty())
    );

    // History needs the history right.
    let mut carol = connect_with(
        &stack,
        &token_with_caps("carol", json!({"lobby": ["subscribe"]})),
    )
    .await;
    join(&mut carol, "lobby").await;
    match request(&mut carol, r#"{"action":"history","room":"lobby"}"#).await {
        ReceivedFrame::Error {
            code: ErrorCode::Forbidden,
            right: Some(Right::History),
            ..
        } => {}
        other => panic!("expected forbidden, got {other:?}"),
    }
    stack.stop().await;
}
