//! Every frame the server sends, with every optional field set, decodes
//! as what clients decode (`ReceivedFrame`, which the TypeScript SDK's
//! types are generated from) and loses nothing on the way: a field added
//! to a server frame but not to `ReceivedFrame` fails here, and one added
//! to `ReceivedFrame` without regenerating `wire.ts` fails `wire_types`.

use fanout_core::auth::Right;
use fanout_core::event::Sender;
use fanout_core::ids::{ConnectionId, UserId};
use fanout_core::protocol::{ErrorCode, PresenceFrame, PresentUser, ReceivedFrame, ServerFrame};
use serde_json::Value;
use serde_json::value::RawValue;

const AT: &str = "2026-12-02T09:00:00.000Z";

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.into()).unwrap()
}

/// Each server frame, named by its variant so a new one cannot be missed.
fn covers(frame: &ServerFrame<'_>) -> &'static str {
    match frame {
        ServerFrame::Ack { .. } => "ack",
        ServerFrame::Pong { .. } => "pong",
        ServerFrame::Error { .. } => "error",
        ServerFrame::Refreshed { .. } => "refreshed",
        ServerFrame::Whoami { .. } => "whoami",
        ServerFrame::Message { .. } => "message",
        ServerFrame::Signal { .. } => "signal",
        ServerFrame::MessageUpdated { .. } => "message.updated",
        ServerFrame::MessageDeleted { .. } => "message.deleted",
        ServerFrame::Joined { .. } => "joined",
        ServerFrame::History { .. } => "history",
        ServerFrame::Presence { .. } => "presence",
        ServerFrame::Replay { .. } => "replay",
    }
}

/// Drops `null` fields, which `ReceivedFrame` writes for what is absent.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

fn assert_round_trip(sent: &str) {
    let received: ReceivedFrame =
        serde_json::from_str(sent).unwrap_or_else(|e| panic!("{sent} does not decode: {e}"));
    let sent_value: Value = serde_json::from_str(sent).unwrap();
    let back = serde_json::to_value(&received).unwrap();
    assert_eq!(without_nulls(back), without_nulls(sent_value), "{sent}");
}

/// A stored message with every field set, as history and replays carry it.
fn message<'a>(from: &'a Sender, data: &'a RawValue) -> ServerFrame<'a> {
    ServerFrame::Message {
        id: "e1",
        room: Some("lobby"),
        seq: Some(7),
        from: Some(from),
        data: Some(data),
        sent_at: AT,
        updated_at: Some(AT),
        deleted: true,
    }
}

#[test]
fn every_server_frame_decodes_whole_as_what_clients_decode() {
    let data = raw(r#"{"text":"hi","n":[1,2]}"#);
    let state = raw(r#"{"status":"away"}"#);
    let client = Sender::Client {
        user: UserId::new("alice").unwrap(),
        connection: ConnectionId::new("c1").unwrap(),
    };
    let stored = raw(&message(&client, &data).to_json());
    let frames = [
        ServerFrame::Ack {
            request_id: Some("r1"),
        },
        ServerFrame::Pong {
            request_id: Some("r2"),
        },
        ServerFrame::Error {
            request_id: Some("r3"),
            code: ErrorCode::Forbidden,
            message: "no",
            room: Some("lobby"),
            right: Some(Right::Publish),
            retry_after_ms: Some(250),
        },
        ServerFrame::Refreshed {
            request_id: Some("r4"),
            expires_at: 1_800_000_000,
        },
        ServerFrame::Whoami {
            request_id: Some("r5"),
            connection_id: "c1",
            tenant: "acme",
            user: "alice",
            expires_at: 1_800_000_000,
        },
        message(&client, &data),
        ServerFrame::Signal {
            id: "s1",
            room: "lobby",
            from: Some(&client),
            data: &data,
            sent_at: AT,
        },
        ServerFrame::MessageUpdated {
            id: "e2",
            room: "lobby",
            seq: 8,
            of: 7,
            from: Some(&Sender::Service {
                service: "orders".into(),
            }),
            data: &data,
            sent_at: AT,
        },
        ServerFrame::MessageDeleted {
            id: "e3",
            room: "lobby",
            seq: 9,
            of: 7,
            from: Some(&client),
            sent_at: AT,
        },
        ServerFrame::Joined {
            request_id: Some("r6"),
            room: "lobby",
            seq: 9,
            recovered: Some(false),
            oldest: Some(3),
        },
        ServerFrame::History {
            request_id: Some("r7"),
            room: "lobby",
            messages: vec![&stored],
            more: true,
        },
        ServerFrame::Presence {
            request_id: Some("r8"),
            room: "lobby",
            count: 1,
            members: vec![PresentUser {
                user: "alice",
                connections: 2,
                state: Some(&state),
                version: 4,
            }],
            next: Some("cursor"),
        },
        ServerFrame::Replay {
            room: "lobby",
            messages: vec![&stored],
        },
    ];
    let mut seen: Vec<&str> = frames.iter().map(covers).collect();
    seen.dedup();
    assert_eq!(seen.len(), 13, "one sample per server frame");
    for frame in &frames {
        assert_round_trip(&frame.to_json());
    }
}

#[test]
fn every_presence_notice_decodes_whole() {
    let state = raw(r#"{"status":"away"}"#);
    for kind in [
        "presence.joined",
        "presence.left",
        "presence.updated",
        "presence.count",
    ] {
        let notice = PresenceFrame {
            kind,
            room: "lobby",
            user: Some("alice"),
            state: Some(&state),
            version: Some(3),
            connections: Some(2),
            members: Some(40),
            sent_at: AT,
        };
        assert_round_trip(&serde_json::to_string(&notice).unwrap());
    }
}
