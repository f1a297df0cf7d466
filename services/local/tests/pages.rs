//! The development token endpoints, the demo and dashboard pages and the
//! dashboard's data, over real HTTP. (The pages themselves run in headless
//! Chromium in the client SDK's tests, `clients/js/test/browser.test.mjs`.)

mod common;

use std::time::Duration;

use common::*;
use fanout_core::protocol::ReceivedFrame;
use fanout_local::RunningStack;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 request on its own connection: (status, body).
async fn http(
    stack: &RunningStack,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        stack.addr,
        body.len()
    );
    let mut tcp = TcpStream::connect(stack.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut response))
        .await
        .expect("the response within 10 s")
        .unwrap();
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response[9..12].parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, body.to_string())
}

async fn dev_token(stack: &RunningStack, request: Value) -> (u16, String) {
    http(stack, "POST", "/_fanout/dev/token", Some(request)).await
}

async fn whoami_user(stack: &RunningStack, token: &str) -> String {
    let mut ws = connect_with(stack, token).await;
    match request(&mut ws, r#"{"action":"whoami","requestId":"w"}"#).await {
        ReceivedFrame::Whoami { user, .. } => user,
        other => panic!("expected whoami, got {other:?}"),
    }
}

#[tokio::test]
async fn development_tokens_open_connections_with_the_configured_claims() {
    let stack = start_with(&["--user-claim", "uid", "--token-audience", "chat"]).await;
    let (status, body) = dev_token(&stack, json!({"tenant": "acme", "user": "alice"})).await;
    assert_eq!(status, 200, "{body}");
    let issued: Value = serde_json::from_str(&body).unwrap();
    assert!(issued["expiresAt"].as_i64().unwrap() > 0);
    assert_eq!(
        whoami_user(&stack, issued["token"].as_str().unwrap()).await,
        "alice"
    );

    let (status, body) = dev_token(&stack, json!({"tenant": "acme"})).await;
    assert_eq!(status, 400, "a missing user: {body}");
    assert!(body.contains("user"), "{body}");
    let (status, body) = dev_token(
        &stack,
        json!({"tenant": "acme", "user": "alice", "ttlSeconds": 90_000}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("--max-token-lifetime"), "{body}");
    let (status, body) = http(
        &stack,
        "POST",
        "/_fanout/dev/grant",
        Some(json!({"tenant": "acme", "user": "alice", "room": "vip", "rights": ["subscribe"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    stack.stop().await;
}

#[tokio::test]
async fn development_tokens_are_off_when_the_stack_has_its_own_secret() {
    let stack = start_with(&["--jwt-secret", &"s".repeat(40)]).await;
    for path in ["/_fanout/dev/token", "/_fanout/dev/grant"] {
        let (status, body) = http(
            &stack,
            "POST",
            path,
            Some(json!({"tenant": "acme", "user": "alice", "room": "r", "rights": []})),
        )
        .await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("FANOUT_JWT_SECRET"), "{body}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_demo_loads_the_built_sdk_and_says_how_to_build_it_when_missing() {
    let missing = std::env::temp_dir().join(format!("fanout-no-sdk-{}", uuid::Uuid::new_v4()));
    let stack = start_with(&["--sdk-dir", missing.to_str().unwrap()]).await;
    let (status, body) = http(&stack, "GET", "/demo", None).await;
    assert_eq!(status, 503);
    assert!(body.contains("npm --prefix clients/js ci"), "{body}");
    stack.stop().await;

    let built = std::env::temp_dir().join(format!("fanout-sdk-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&built).unwrap();
    std::fs::write(built.join("index.js"), "export const built = true;\n").unwrap();
    let stack = start_with(&["--sdk-dir", built.to_str().unwrap(), "--stage", "beta"]).await;
    let (status, body) = http(&stack, "GET", "/demo", None).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"content="beta""#),
        "the page knows the stage"
    );
    assert_eq!(
        http(&stack, "GET", "/sdk/index.js", None).await,
        (200, "export const built = true;\n".to_string())
    );
    for path in [
        "/sdk/..%2F..%2Fetc%2Fpasswd",
        "/sdk/.hidden.js",
        "/sdk/index.exe",
        "/web/nope.js",
    ] {
        assert_eq!(http(&stack, "GET", path, None).await.0, 404, "{path}");
    }
    for path in [
        "/web/demo.js",
        "/web/dashboard.js",
        "/web/uPlot.iife.min.js",
        "/dashboard",
    ] {
        assert_eq!(http(&stack, "GET", path, None).await.0, 200, "{path}");
    }
    stack.stop().await;
    std::fs::remove_dir_all(built).unwrap();
}

#[tokio::test]
async fn the_dashboard_data_counts_connections_rooms_and_queues() {
    let stack = start().await;
    let mut alice = connect(&stack, "acme", "alice").await;
    let mut bob = connect(&stack, "acme", "bob").await;
    join(&mut alice, "lobby").await;
    join(&mut bob, "lobby").await;
    join(&mut bob, "ops").await;

    let (status, body) = http(&stack, "GET", "/_fanout/dashboard", None).await;
    assert_eq!(status, 200, "{body}");
    let data: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(data["connections"], 2);
    let rooms = &data["rooms"]["rooms"];
    assert_eq!(
        rooms[0],
        json!({"tenant": "acme", "room": "lobby", "connections": 2})
    );
    assert_eq!(
        rooms[1],
        json!({"tenant": "acme", "room": "ops", "connections": 1})
    );
    let dead_letter_queues: Vec<&str> = data["queues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["deadLetter"] == true)
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(dead_letter_queues.len(), 4, "{dead_letter_queues:?}");
    assert_eq!(data["series"].as_array().unwrap().len(), 150);
    assert_eq!(data["deadLetters"]["messages"], json!([]));
    stack.stop().await;
}

#[test]
fn page_paths_cannot_be_stage_names() {
    let config = config_with(&["--stage", "demo"]);
    assert!(
        config
            .validate()
            .unwrap_err()
            .contains("taken by the stack's pages")
    );
}
