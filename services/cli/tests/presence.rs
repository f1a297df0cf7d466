//! `fanout presence` with the real binary: from the local stack's presence
//! endpoint, and from a DynamoDB table on moto's server.

use std::process::Command;
use std::sync::Arc;

use fanout_aws::{DynamoStore, provision};
use fanout_core::clock::SystemClock;
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::ports::{ConnectionRecord, ConnectionStore, PresenceStore};
use fanout_core::protocol::ReceivedFrame;
use fanout_core::token::{DEV_JWT_SECRET, TokenSigner};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

mod common;

fn fanout(args: Vec<String>) -> (bool, Vec<serde_json::Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run fanout");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn presence_lists_a_rooms_users_and_a_tenants_online_users_from_the_local_stack() {
    let config =
        <fanout_local::StackConfig as clap::Parser>::parse_from(["fanout-local", "--port", "0"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stack = fanout_local::start(config, listener).await.unwrap();
    let mut sockets = Vec::new();
    for (user, present) in [("alice", true), ("alice", true), ("bob", false)] {
        let token = TokenSigner::new(DEV_JWT_SECRET.as_bytes())
            .mint(
                &TenantId::new("acme").unwrap(),
                &UserId::new(user).unwrap(),
                chrono::Utc::now().timestamp(),
                std::time::Duration::from_secs(600),
            )
            .unwrap();
        let url = format!("{}?token={token}", stack.ws_url());
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let join = format!(r#"{{"action":"join","room":"lobby","presence":{present}}}"#);
        ws.send(Message::Text(join.into())).await.unwrap();
        loop {
            let frame = ws.next().await.unwrap().unwrap();
            let frame: ReceivedFrame = serde_json::from_str(frame.to_text().unwrap()).unwrap();
            if matches!(frame, ReceivedFrame::Joined { .. }) {
                break;
            }
        }
        sockets.push(ws);
    }
    let url = stack.http_url();
    let room = args(&[
        "presence",
        "--stack-url",
        &url,
        "--tenant",
        "acme",
        "--room",
        "lobby",
    ]);
    let (ok, users, err) = tokio::task::spawn_blocking(move || fanout(room))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(
        (users[0]["user"].as_str(), users[0]["connections"].as_u64()),
        (Some("alice"), Some(2))
    );
    assert!(err.contains("1 users present in lobby"), "{err}");
    let tenant = args(&["presence", "--stack-url", &url, "--tenant", "acme"]);
    let (ok, users, err) = tokio::task::spawn_blocking(move || fanout(tenant))
        .await
        .unwrap();
    assert!(ok, "{err}");
    let online: Vec<_> = users
        .iter()
        .map(|u| {
            (
                u["user"].as_str().unwrap().to_string(),
                u["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(online, [("alice".to_string(), 2), ("bob".to_string(), 1)]);
    drop(sockets);
    stack.stop().await;
}

#[tokio::test]
async fn presence_reads_a_deployments_table() {
    let Some(endpoint) = common::moto_endpoint() else {
        return;
    };
    let config = common::moto_config(&endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("cli{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    provision::table(&client, &table).await.unwrap();
    let store = DynamoStore::new(client, &table, Arc::new(SystemClock), 4);
    let acme = TenantId::new("acme").unwrap();
    let lobby = RoomId::new("lobby").unwrap();
    let ttl = chrono::Utc::now().timestamp() + 600;
    for (id, user) in [("c1", "alice"), ("c2", "alice"), ("c3", "carol")] {
        let record = ConnectionRecord {
            id: ConnectionId::new(id).unwrap(),
            tenant: acme.clone(),
            user: UserId::new(user).unwrap(),
            connected_at_ms: 0,
            last_seen_ms: 0,
            ttl,
            idle_until: ttl,
            token_expires_at: ttl,
            capabilities: None,
        };
        store.put_connection(&record).await.unwrap();
        if user == "alice" {
            store
                .enter(&acme, &lobby, &record.user, &record.id, None, ttl)
                .await
                .unwrap();
        }
    }
    let base = [
        "--table",
        table.as_str(),
        "--dynamodb-endpoint",
        endpoint.as_str(),
        "--tenant",
        "acme",
    ];
    let mut room = args(&["presence"]);
    room.extend(args(&base));
    room.extend(args(&["--room", "lobby"]));
    let (ok, users, err) = tokio::task::spawn_blocking(move || fanout(room))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["connections"], 2);
    let mut tenant = args(&["presence"]);
    tenant.extend(args(&base));
    let (ok, users, err) = tokio::task::spawn_blocking(move || fanout(tenant))
        .await
        .unwrap();
    assert!(ok, "{err}");
    let names: Vec<_> = users
        .iter()
        .map(|u| u["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["alice", "carol"]);
}
