//! Property tests: what fanout writes, it reads back unchanged — client
//! frames, broadcast events, delivery jobs, message frames and tokens —
//! and the parsers never panic on arbitrary input.

use std::time::Duration;

use fanout_core::auth::TokenVerifier;
use fanout_core::event::{AllOfTenant, BroadcastEvent, Target};
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::limits::MAX_PAYLOAD_BYTES;
use fanout_core::plan::{DeliveryJob, JobHead, cut_jobs};
use fanout_core::protocol::{
    ClientRequest, Delete, History, Join, Leave, Presence, PresenceUpdate, Publish, ReceivedFrame,
    ServerFrame, Signal, Update, parse_request,
};
use fanout_core::token::{DEV_JWT_SECRET, TokenSigner};
use proptest::prelude::*;
use serde_json::value::RawValue;

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:@-]{1,64}"
}

fn connection_id() -> impl Strategy<Value = ConnectionId> {
    "[A-Za-z0-9+/=_.-]{1,40}".prop_map(|s| ConnectionId::new(s).unwrap())
}

/// Plain JSON values a client might send as `data`.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e300f64..1e300).prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        name().prop_map(|r| Target::Room(RoomId::new(r).unwrap())),
        name().prop_map(|u| Target::User(UserId::new(u).unwrap())),
        connection_id().prop_map(Target::Connection),
        Just(Target::Tenant(AllOfTenant)),
    ]
}

proptest! {
    #[test]
    fn client_frames_parse_back_to_what_was_sent(
        room in name(),
        data in json(),
        request_id in proptest::option::of("[a-z0-9]{1,20}"),
        action in 0..9usize,
        seq in 1..u64::MAX,
    ) {
        let mut frame = serde_json::json!({ "room": room, "data": data, "seq": seq });
        frame["action"] =
            ["join", "leave", "publish", "ping", "whoami", "history", "update", "delete", "signal"][action]
                .into();
        if let Some(id) = &request_id {
            frame["requestId"] = id.clone().into();
        }
        let envelope = parse_request(&frame.to_string(), MAX_PAYLOAD_BYTES).unwrap();
        prop_assert_eq!(&envelope.request_id, &request_id);
        match envelope.request {
            ClientRequest::Join(Join { room: r, .. }) | ClientRequest::Leave(Leave { room: r }) => {
                prop_assert_eq!(r.as_str(), room.as_str());
            }
            ClientRequest::Publish(Publish { room: r, data: d }) | ClientRequest::Signal(Signal { room: r, data: d }) => {
                prop_assert_eq!(r.as_str(), room.as_str());
                let back: serde_json::Value = serde_json::from_str(d.get()).unwrap();
                prop_assert_eq!(back, data);
            }
            ClientRequest::Update(Update { room: r, seq: s, data: d }) => {
                prop_assert_eq!(r.as_str(), room.as_str());
                prop_assert_eq!(s, seq);
                let back: serde_json::Value = serde_json::from_str(d.get()).unwrap();
                prop_assert_eq!(back, data);
            }
            ClientRequest::Delete(Delete { room: r, seq: s }) => {
                prop_assert_eq!(r.as_str(), room.as_str());
                prop_assert_eq!(s, seq);
            }
            ClientRequest::History(History { room: r, .. })
            | ClientRequest::PresenceUpdate(PresenceUpdate { room: r, .. })
            | ClientRequest::Presence(Presence { room: r, .. }) => {
                prop_assert_eq!(r.as_str(), room.as_str());
            }
            ClientRequest::Ping(_) | ClientRequest::WhoAmI(_) | ClientRequest::Refresh(_) => {}
        }
    }

    #[test]
    fn the_client_frame_parser_never_panics(body in ".{0,200}") {
        let _ = parse_request(&body, 1024);
    }

    #[test]
    fn broadcast_events_round_trip(
        tenant in name(),
        target in target(),
        data in json(),
        exclude in prop::collection::vec(connection_id(), 0..3),
        key in proptest::option::of("[a-z0-9-]{1,40}"),
    ) {
        let event = BroadcastEvent {
            tenant: TenantId::new(tenant).unwrap(),
            target: target.clone(),
            data: RawValue::from_string(data.to_string()).unwrap(),
            exclude: exclude.clone(),
            idempotency_key: key.clone(),
            from: None,
            stream: true,
            update: None,
            delete: None,
            signal: false,
            presence: None,
        };
        let text = serde_json::to_string(&event).unwrap();
        let back: BroadcastEvent = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back.tenant, event.tenant);
        prop_assert_eq!(back.target, target);
        prop_assert_eq!(back.exclude, exclude);
        prop_assert_eq!(back.idempotency_key, key);
        prop_assert_eq!(back.data.get(), event.data.get());
    }

    #[test]
    fn the_broadcast_event_parser_never_panics(body in ".{0,200}") {
        let _ = serde_json::from_str::<BroadcastEvent>(&body);
    }

    #[test]
    fn message_frames_read_back_as_sent(
        id in "[a-z0-9-]{1,36}",
        room in proptest::option::of(name()),
        data in json(),
        seq in proptest::option::of(1..u64::MAX),
    ) {
        let raw = RawValue::from_string(data.to_string()).unwrap();
        let frame = ServerFrame::Message {
            id: &id,
            room: room.as_deref(),
            seq,
            from: None,
            data: Some(&raw),
            sent_at: "2026-11-23T00:00:00.000Z",
            updated_at: None,
            deleted: false,
        }
        .to_json();
        match serde_json::from_str::<ReceivedFrame>(&frame).unwrap() {
            ReceivedFrame::Message { id: i, room: r, data: d, seq: s, .. } => {
                prop_assert_eq!(i, id);
                prop_assert_eq!(r, room);
                prop_assert_eq!(d, data);
                prop_assert_eq!(s, seq);
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn delivery_jobs_carry_every_connection_once(
        ids in prop::collection::vec(connection_id(), 0..300),
        frame_bytes in 0..2_000usize,
        per_job in 1..100usize,
    ) {
        let frame = RawValue::from_string(format!("\"{}\"", "x".repeat(frame_bytes))).unwrap();
        let bodies = cut_jobs(&JobHead::new("e", Some(1)), &frame, &ids, 16 * 1024, per_job).unwrap();
        let mut seen = Vec::new();
        for body in &bodies {
            prop_assert!(body.len() <= 16 * 1024);
            let job: DeliveryJob = serde_json::from_str(body).unwrap();
            prop_assert!(job.connections.len() <= per_job);
            prop_assert_eq!(job.frame.get(), frame.get());
            seen.extend(job.connections);
        }
        prop_assert_eq!(seen, ids);
    }

    #[test]
    fn tokens_verify_as_minted(tenant in name(), user in name()) {
        let (tenant, user) = (TenantId::new(tenant).unwrap(), UserId::new(user).unwrap());
        let now = chrono::Utc::now().timestamp();
        let token = TokenSigner::new(DEV_JWT_SECRET.as_bytes())
            .mint(&tenant, &user, now, Duration::from_secs(60))
            .unwrap();
        let verifier = TokenVerifier::hs256(DEV_JWT_SECRET.as_bytes());
        let principal = block_on(verifier.verify(&token, now)).unwrap().principal;
        prop_assert_eq!(principal.tenant, tenant);
        prop_assert_eq!(principal.user, user);
    }

    #[test]
    fn the_token_parser_never_panics(token in ".{0,300}") {
        let verifier = TokenVerifier::hs256(DEV_JWT_SECRET.as_bytes());
        let _ = block_on(verifier.verify(&token, chrono::Utc::now().timestamp()));
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(future)
}
