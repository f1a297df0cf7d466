//! Auth and abuse limits end to end: real WebSocket clients against the
//! local stack (and, with `FANOUT_E2E_BACKEND=aws`, on DynamoDB and the
//! rest in moto): capabilities, grants, refresh and expiry, sender identity,
//! rate limits, the Origin allow-list, and JWKS-signed tokens.

use std::time::Duration;

use fanout_core::auth::Right;
use fanout_core::ids::{RoomId, TenantId, UserId};
use fanout_core::protocol::{ErrorCode, ReceivedFrame, TOKEN_EXPIRED_CLOSE_CODE};
use fanout_core::token::{Claims, DEV_JWT_SECRET, TokenSigner};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

mod common;
use common::*;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A dev-secret token for acme/`user` valid for `ttl_secs`, with
/// `capabilities` when given.
fn token_with(user: &str, ttl_secs: i64, capabilities: Option<Value>) -> String {
    TokenSigner::new(DEV_JWT_SECRET.as_bytes())
        .sign(&Claims {
            tenant: "acme".into(),
            sub: user.into(),
            exp: now() + ttl_secs,
            nbf: None,
            iat: Some(now()),
            capabilities,
        })
        .unwrap()
}

fn grant(user: &str, room: &str, rights: &[Right], ttl_secs: i64) -> String {
    let start = now();
    TokenSigner::new(DEV_JWT_SECRET.as_bytes())
        .mint_grant(
            &TenantId::new("acme").unwrap(),
            &UserId::new(user).unwrap(),
            &RoomId::new(room).unwrap(),
            rights,
            if ttl_secs < 0 { start - 600 } else { start },
            Duration::from_secs(ttl_secs.unsigned_abs()),
        )
        .unwrap()
}

/// Asserts a `forbidden` refusal naming `room` and `right`.
fn assert_forbidden(reply: ReceivedFrame, want_room: &str, want_right: Option<Right>) {
    match reply {
        ReceivedFrame::Error {
            code: ErrorCode::Forbidden,
            room,
            right,
            message,
            ..
        } => {
            assert_eq!(room.as_deref(), Some(want_room), "{message}");
            assert_eq!(right, want_right, "{message}");
        }
        other => panic!("expected forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn capabilities_decide_join_and_publish_and_refusals_keep_the_connection() {
    let stack = start_with(&["--default-policy", "deny"]).await;
    let caps = json!({"lobby": ["subscribe", "publish"], "news:*": ["subscribe"]});
    let mut alice = connect_with(&stack, &token_with("alice", 600, Some(caps))).await;
    join(&mut alice, "lobby").await;
    join(&mut alice, "news:today").await;
    let reply = request(&mut alice, r#"{"action":"join","room":"secret"}"#).await;
    assert_forbidden(reply, "secret", Some(Right::Subscribe));
    let reply = request(
        &mut alice,
        r#"{"action":"publish","room":"news:today","data":1}"#,
    )
    .await;
    assert_forbidden(reply, "news:today", Some(Right::Publish));

    // Without the claim, the deny policy lets it nowhere.
    let mut bob = connect_with(&stack, &token_with("bob", 600, None)).await;
    let reply = request(&mut bob, r#"{"action":"join","room":"lobby"}"#).await;
    assert_forbidden(reply, "lobby", Some(Right::Subscribe));

    // Still usable after the refusals.
    let reply = request(
        &mut alice,
        r#"{"action":"publish","room":"lobby","data":"hi","requestId":"p"}"#,
    )
    .await;
    assert_eq!(
        reply,
        ReceivedFrame::Ack {
            request_id: Some("p".into())
        }
    );
    assert!(matches!(
        next(&mut alice).await,
        ReceivedFrame::Message { .. }
    ));
    stack.stop().await;
}

#[tokio::test]
async fn grants_let_a_connected_client_into_a_room_only_as_granted() {
    let stack = start_with(&["--default-policy", "deny"]).await;
    let mut alice = connect_with(&stack, &token_with("alice", 600, None)).await;
    let join_with = |room: &str, grant: &str| {
        json!({"action": "join", "room": room, "grant": grant, "requestId": "g"}).to_string()
    };
    let reply = request(
        &mut alice,
        &join_with("vip", &grant("alice", "vip", &[Right::Subscribe], 60)),
    )
    .await;
    assert!(
        matches!(reply, ReceivedFrame::Joined { request_id: Some(ref r), .. } if r == "g"),
        "{reply:?}"
    );
    // The grant gave subscribe, not publish.
    let reply = request(&mut alice, r#"{"action":"publish","room":"vip","data":1}"#).await;
    assert_forbidden(reply, "vip", Some(Right::Publish));
    let both = grant("alice", "vip", &[Right::Subscribe, Right::Publish], 60);
    assert!(matches!(
        request(&mut alice, &join_with("vip", &both)).await,
        ReceivedFrame::Joined { .. }
    ));
    assert!(matches!(
        request(&mut alice, r#"{"action":"publish","room":"vip","data":1}"#).await,
        ReceivedFrame::Ack { .. }
    ));
    assert!(matches!(
        next(&mut alice).await,
        ReceivedFrame::Message { .. }
    ));

    // Expired, for another room, for another user, forged.
    let refused = [
        ("vip2", grant("alice", "vip2", &[Right::Subscribe], -60)),
        ("vip3", grant("alice", "vip", &[Right::Subscribe], 60)),
        ("vip", grant("mallory", "vip", &[Right::Subscribe], 60)),
        (
            "vip",
            TokenSigner::new(b"not-the-secret-not-the-secret-!!")
                .mint_grant(
                    &TenantId::new("acme").unwrap(),
                    &UserId::new("alice").unwrap(),
                    &RoomId::new("vip").unwrap(),
                    &[Right::Subscribe],
                    now(),
                    Duration::from_secs(60),
                )
                .unwrap(),
        ),
    ];
    for (room, grant) in refused {
        let reply = request(&mut alice, &join_with(room, &grant)).await;
        assert_forbidden(reply, room, None);
    }
    stack.stop().await;
}

#[tokio::test]
async fn refresh_extends_a_connection_and_an_unrefreshed_one_is_closed_at_expiry() {
    let stack = start().await;
    let mut kept = connect_with(&stack, &token_with("alice", 3, None)).await;
    let mut lapsed = connect_with(&stack, &token_with("bob", 3, None)).await;
    join(&mut kept, "lobby").await;
    join(&mut lapsed, "lobby").await;

    // A token for someone else is refused; one for alice is taken.
    let other = json!({"action": "refresh", "token": token_with("mallory", 600, None)});
    assert!(matches!(
        request(&mut kept, &other.to_string()).await,
        ReceivedFrame::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
    let fresh = token_with("alice", 600, None);
    let refresh = json!({"action": "refresh", "token": fresh, "requestId": "r"});
    match request(&mut kept, &refresh.to_string()).await {
        ReceivedFrame::Refreshed {
            request_id,
            expires_at,
        } => {
            assert_eq!(request_id.as_deref(), Some("r"));
            assert!(expires_at >= now() + 590);
        }
        other => panic!("expected refreshed, got {other:?}"),
    }

    // bob's token runs out: a last frame says why, then the close.
    match next(&mut lapsed).await {
        ReceivedFrame::Error { code, .. } => assert_eq!(code, ErrorCode::TokenExpired),
        other => panic!("expected token_expired, got {other:?}"),
    }
    assert_eq!(
        close_code_within(&mut lapsed, Duration::from_secs(5)).await,
        CloseCode::from(TOKEN_EXPIRED_CLOSE_CODE)
    );

    // alice, refreshed, still receives what is published to the room.
    let reply = request(
        &mut kept,
        r#"{"action":"publish","room":"lobby","data":"still here","requestId":"p"}"#,
    )
    .await;
    assert!(matches!(reply, ReceivedFrame::Ack { .. }), "{reply:?}");
    match next(&mut kept).await {
        ReceivedFrame::Message { data, .. } => assert_eq!(data, "still here"),
        other => panic!("expected the message, got {other:?}"),
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_server_sets_the_sender_and_a_spoofed_one_is_ignored() {
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;
    let stack = start().await;
    let mut alice = connect(&stack, "acme", "alice").await;
    let mut bob = connect(&stack, "acme", "bob").await;
    join(&mut alice, "lobby").await;
    join(&mut bob, "lobby").await;
    let alice_id = match request(&mut alice, r#"{"action":"whoami"}"#).await {
        ReceivedFrame::Whoami { connection_id, .. } => connection_id,
        other => panic!("{other:?}"),
    };
    send(
        &mut alice,
        r#"{"action":"publish","room":"lobby","data":1,"from":{"user":"mallory","connection":"x"}}"#,
    )
    .await;
    let expected = json!({"user": "alice", "connection": alice_id});
    let mut seen = 0;
    while seen < 1 {
        if let ReceivedFrame::Message { from, .. } = next(&mut bob).await {
            assert_eq!(serde_json::to_value(from).unwrap(), expected);
            seen += 1;
        }
    }

    // A service claiming to be a client is shown as the service it is.
    let client = aws_sdk_eventbridge::Client::new(&local_sdk_config(stack.http_url()).load().await);
    client
        .put_events()
        .entries(
            PutEventsRequestEntry::builder()
                .event_bus_name("fanout")
                .source("acme.orders")
                .detail_type("fanout.broadcast")
                .detail(r#"{"tenant":"acme","target":{"room":"lobby"},"data":2,"from":{"user":"alice","connection":"x"}}"#)
                .build(),
        )
        .send()
        .await
        .expect("PutEvents");
    loop {
        if let ReceivedFrame::Message { data, from, .. } = next(&mut bob).await
            && data == 2
        {
            assert_eq!(
                serde_json::to_value(from).unwrap(),
                json!({"service": "acme.orders"})
            );
            break;
        }
    }
    stack.stop().await;
}

/// Sends `count` pings at once; returns the rate_limited replies'
/// retry-after values.
async fn burst_of_pings(ws: &mut Socket, count: usize) -> Vec<i64> {
    for i in 0..count {
        send(ws, &format!(r#"{{"action":"ping","requestId":"{i}"}}"#)).await;
    }
    let mut limited = Vec::new();
    for _ in 0..count {
        match next(ws).await {
            ReceivedFrame::Pong { .. } => {}
            ReceivedFrame::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms,
                ..
            } => limited.push(retry_after_ms.expect("a retry-after")),
            other => panic!("unexpected {other:?}"),
        }
    }
    limited
}

#[tokio::test]
async fn frame_and_tenant_publish_rates_are_limited_and_recover() {
    let stack = start_with(&[
        "--client-frame-rate",
        "2",
        "--client-frame-burst",
        "3",
        "--tenant-publish-rate",
        "1",
        "--tenant-publish-burst",
        "2",
    ])
    .await;
    let mut alice = connect(&stack, "acme", "alice").await;
    // A burst of three, refilling at 2 per second while the pings are
    // carried: the bound comes from the time measured, not a guess of it.
    let started = std::time::Instant::now();
    let limited = burst_of_pings(&mut alice, 6).await;
    let refills = (started.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    assert!(
        !limited.is_empty() && limited.len() + refills >= 3 && limited.len() <= 3,
        "{} of six limited over a burst of three with {refills} refills",
        limited.len()
    );
    assert!(
        limited.iter().all(|ms| (1..=1_500).contains(ms)),
        "{limited:?}"
    );
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert!(matches!(
        request(&mut alice, r#"{"action":"ping"}"#).await,
        ReceivedFrame::Pong { .. }
    ));

    // Publishes of the whole tenant share one budget; another tenant's
    // clients are not affected.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let mut bob = connect(&stack, "acme", "bob").await;
    let mut zed = connect(&stack, "globex", "zed").await;
    for ws in [&mut alice, &mut bob, &mut zed] {
        join(ws, "lobby").await;
    }
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let publish = r#"{"action":"publish","room":"lobby","data":0}"#;
    // alice and bob take turns until the tenant's budget (a burst of 2,
    // refilling at 1 per second) refuses one.
    let started = std::time::Instant::now();
    let mut acked = 0;
    let refusal = loop {
        let ws = if acked % 2 == 1 { &mut bob } else { &mut alice };
        send(ws, publish).await;
        let reply = loop {
            match next(ws).await {
                ReceivedFrame::Message { .. } => continue,
                reply => break reply,
            }
        };
        match reply {
            ReceivedFrame::Ack { .. } => acked += 1,
            other => break other,
        }
        assert!(acked <= 50, "publishes were never limited");
    };
    let refills = started.elapsed().as_secs_f64().ceil() as usize;
    assert!(
        (2..=2 + refills).contains(&acked),
        "{acked} publishes acked for a burst of 2 and {refills} refills"
    );
    assert!(
        matches!(
            refusal,
            ReceivedFrame::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms: Some(_),
                ..
            }
        ),
        "{refusal:?}"
    );
    assert!(matches!(
        request(&mut zed, publish).await,
        ReceivedFrame::Ack { .. }
    ));
    stack.stop().await;
}

#[tokio::test]
async fn connections_from_origins_outside_the_allow_list_are_refused() {
    let stack = start_with(&["--allowed-origins", "https://app.example.com"]).await;
    let status = |origin: Option<&'static str>| {
        let url = format!("{}?token={}", stack.ws_url(), token("acme", "alice"));
        async move {
            let mut request = url.into_client_request().unwrap();
            if let Some(origin) = origin {
                request
                    .headers_mut()
                    .insert("Origin", origin.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
                Err(other) => panic!("{other}"),
            }
        }
    };
    assert_eq!(status(Some("https://app.example.com")).await, 101);
    assert_eq!(status(Some("https://evil.example")).await, 403);
    assert_eq!(status(None).await, 403);
    stack.stop().await;
}

#[tokio::test]
async fn tokens_signed_by_an_oidc_key_connect_through_a_jwks_file() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use jsonwebtoken::{Algorithm, EncodingKey, jwk::Jwk};
    let der = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .unwrap()
        .to_pkcs8v1()
        .unwrap();
    let key = EncodingKey::from_ec_der(der.as_ref());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("issuer-1".into());
    let dir = std::env::temp_dir().join(format!("fanout-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, json!({"keys": [jwk]}).to_string()).unwrap();

    let stack = start_with(&[
        "--jwks-file",
        path.to_str().unwrap(),
        "--token-issuer",
        "https://issuer.example",
        "--tenant-claim",
        "custom:tenant",
    ])
    .await;
    let signer = TokenSigner::with_key(key, Algorithm::ES256, "issuer-1");
    let token = signer
        .sign(&json!({"iss": "https://issuer.example", "sub": "alice",
            "custom:tenant": "acme", "exp": now() + 600}))
        .unwrap();
    let mut alice = connect_with(&stack, &token).await;
    match request(&mut alice, r#"{"action":"whoami"}"#).await {
        ReceivedFrame::Whoami { tenant, user, .. } => {
            assert_eq!((tenant.as_str(), user.as_str()), ("acme", "alice"));
        }
        other => panic!("{other:?}"),
    }
    let wrong_issuer = signer
        .sign(&json!({"iss": "https://other.example", "sub": "alice",
            "custom:tenant": "acme", "exp": now() + 600}))
        .unwrap();
    let url = format!("{}?token={wrong_issuer}", stack.ws_url());
    assert_eq!(http_status(&url).await, 403);
    stack.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// The reply to `frame`, skipping the presence notices and messages the
/// connection's rooms send meanwhile.
async fn reply_skipping_room_traffic(ws: &mut Socket, frame: &str) -> ReceivedFrame {
    send(ws, frame).await;
    loop {
        match next(ws).await {
            ReceivedFrame::PresenceJoined(_)
            | ReceivedFrame::PresenceLeft(_)
            | ReceivedFrame::PresenceUpdated(_)
            | ReceivedFrame::PresenceCount(_)
            | ReceivedFrame::Message { .. } => {}
            reply => return reply,
        }
    }
}

#[tokio::test]
async fn a_refresh_with_narrower_capabilities_ends_what_it_no_longer_allows() {
    let stack = start().await;
    let all = json!({"lobby": ["subscribe", "publish", "presence"],
                     "news": ["subscribe", "publish", "presence"]});
    let mut alice = connect_with(&stack, &token_with("alice", 600, Some(all))).await;
    for room in ["lobby", "news"] {
        let join = format!(r#"{{"action":"join","room":"{room}","presence":true}}"#);
        let reply = reply_skipping_room_traffic(&mut alice, &join).await;
        assert!(matches!(reply, ReceivedFrame::Joined { .. }), "{reply:?}");
    }
    // The new token keeps lobby without presence and drops news.
    let narrower = json!({"lobby": ["subscribe", "publish"]});
    let refresh = json!({"action": "refresh", "token": token_with("alice", 600, Some(narrower))});
    let reply = reply_skipping_room_traffic(&mut alice, &refresh.to_string()).await;
    assert!(
        matches!(reply, ReceivedFrame::Refreshed { .. }),
        "{reply:?}"
    );

    let id = match reply_skipping_room_traffic(&mut alice, r#"{"action":"whoami"}"#).await {
        ReceivedFrame::Whoami { connection_id, .. } => connection_id,
        other => panic!("expected whoami, got {other:?}"),
    };
    let id = fanout_core::ids::ConnectionId::new(id).unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let store = &stack.resources.store;
    let news = RoomId::new("news").unwrap();
    let lobby = RoomId::new("lobby").unwrap();
    assert!(
        !store.is_member(&id, &tenant, &news).await.unwrap(),
        "news still joined"
    );
    assert!(store.is_member(&id, &tenant, &lobby).await.unwrap());
    for room in ["news", "lobby"] {
        let update = format!(r#"{{"action":"presence.update","room":"{room}","state":1}}"#);
        match reply_skipping_room_traffic(&mut alice, &update).await {
            ReceivedFrame::Error { code, .. } => assert_eq!(code, ErrorCode::NotMember, "{room}"),
            other => panic!("{room}: presence outlived the refresh: {other:?}"),
        }
    }
    let publish = r#"{"action":"publish","room":"news","data":1}"#;
    match reply_skipping_room_traffic(&mut alice, publish).await {
        ReceivedFrame::Error { code, .. } => assert_eq!(code, ErrorCode::NotMember),
        other => panic!("still a member of news: {other:?}"),
    }
    stack.stop().await;
}
