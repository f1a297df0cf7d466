//! Runs the real `fanout` binary: tokens it mints open connections on the
//! local stack, `publish` reaches a room member through PutEvents (and
//! edits what it stored), and `history` reads the room back.

use std::process::Command;
use std::time::Duration;

use fanout_core::auth::TokenVerifier;
use fanout_core::protocol::ReceivedFrame;
use fanout_core::token::DEV_JWT_SECRET;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn fanout(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args(args)
        .env_remove("FANOUT_JWT_SECRET")
        .output()
        .expect("run fanout")
}

#[tokio::test]
async fn token_is_signed_with_the_development_secret_by_default() {
    let out = fanout(&[
        "token", "--tenant", "acme", "--user", "alice", "--ttl", "15m",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let principal = TokenVerifier::hs256(DEV_JWT_SECRET.as_bytes())
        .verify(token.trim(), now)
        .await
        .unwrap()
        .principal;
    assert_eq!(principal.tenant.as_str(), "acme");
    assert_eq!(principal.user.as_str(), "alice");
}

#[test]
fn bad_arguments_are_explained() {
    let out = fanout(&["token", "--tenant", "a#b", "--user", "alice"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tenant"));
    let out = fanout(&[
        "publish",
        "--endpoint",
        "http://127.0.0.1:9",
        "--tenant",
        "acme",
        "--room",
        "lobby",
        "--data",
        "{oops",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data must be valid JSON"));
    let out = fanout(&["publish", "--tenant", "acme", "--data", "1"]);
    assert!(!out.status.success(), "a target is required");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next(ws: &mut Socket) -> ReceivedFrame {
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a frame within 5 s")
        .expect("socket open")
        .expect("no socket error");
    serde_json::from_str(msg.to_text().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_reaches_a_room_member_through_the_local_stack() {
    let config =
        <fanout_local::StackConfig as clap::Parser>::parse_from(["fanout-local", "--port", "0"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stack = fanout_local::start(config, listener).await.unwrap();

    let token = String::from_utf8(fanout(&["token", "--tenant", "acme", "--user", "alice"]).stdout)
        .unwrap();
    let url = format!("{}?token={}", stack.ws_url(), token.trim());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(
        r#"{"action":"join","room":"lobby","requestId":"j"}"#.into(),
    ))
    .await
    .unwrap();
    assert!(matches!(
        next(&mut ws).await,
        ReceivedFrame::Joined { request_id: Some(ref r), seq: 0, .. } if r == "j"
    ));

    // Runs the binary off the runtime and requires it to succeed.
    let run = |args: Vec<String>| async move {
        let out = tokio::task::spawn_blocking(move || {
            fanout(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let endpoint = stack.http_url();
    let to_lobby = [
        "publish",
        "--endpoint",
        &endpoint,
        "--tenant",
        "acme",
        "--room",
        "lobby",
    ];
    let mut publish: Vec<String> = to_lobby.iter().map(|a| a.to_string()).collect();
    publish.extend(["--data", r#"{"text":"hi"}"#].map(String::from));
    let out = run(publish).await;
    let printed = String::from_utf8(out.stdout).unwrap();
    let event_id = printed
        .trim()
        .strip_prefix("published event ")
        .expect("prints the event id")
        .to_string();

    match next(&mut ws).await {
        ReceivedFrame::Message { id, data, room, .. } => {
            assert_eq!(id, event_id);
            assert_eq!(room.as_deref(), Some("lobby"));
            assert_eq!(data, serde_json::json!({"text": "hi"}));
        }
        other => panic!("expected the message, got {other:?}"),
    }

    // A service edits it, then reads the room's history.
    let mut update: Vec<String> = to_lobby.iter().map(|a| a.to_string()).collect();
    update.extend(["--update", "1", "--data", r#"{"text":"edited"}"#].map(String::from));
    run(update).await;
    assert!(matches!(
        next(&mut ws).await,
        ReceivedFrame::MessageUpdated { seq: 2, of: 1, .. }
    ));
    let out = run([
        "history",
        "--stack-url",
        &endpoint,
        "--tenant",
        "acme",
        "--room",
        "lobby",
    ]
    .map(String::from)
    .to_vec())
    .await;
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["data"], serde_json::json!({"text": "edited"}));
    assert!(lines[0]["updatedAt"].is_string());
    assert_eq!(lines[1]["type"], "message.updated");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 messages, seq 1–2"));
    stack.stop().await;
}

#[test]
fn short_or_empty_secrets_are_refused() {
    for secret in ["", "too-short"] {
        let out = Command::new(env!("CARGO_BIN_EXE_fanout"))
            .args(["token", "--tenant", "acme", "--user", "alice"])
            .env("FANOUT_JWT_SECRET", secret)
            .output()
            .expect("run fanout");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if secret.is_empty() {
            // Unset and empty are the same: the development secret.
            assert!(out.status.success(), "{stderr}");
            continue;
        }
        assert!(!out.status.success());
        assert!(stderr.contains("at least 32"), "{stderr}");
        assert!(out.stdout.is_empty(), "no token is printed");
    }
}

#[test]
fn endpoint_and_connection_errors_are_one_clear_line() {
    for args in [
        vec!["dlq", "--endpoint", "127.0.0.1:3001", "list"],
        vec![
            "publish",
            "--endpoint",
            "127.0.0.1:1",
            "--tenant",
            "acme",
            "--room",
            "lobby",
            "--data",
            "1",
        ],
    ] {
        let out = fanout(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("has no scheme"), "{stderr}");
        assert!(stderr.contains("http://127.0.0.1"), "{stderr}");
    }
    // Nothing listens on port 1: the error names the call and the cause,
    // and carries no debug structures.
    let out = fanout(&["dlq", "--endpoint", "http://127.0.0.1:1", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ListQueues:"), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!stderr.contains("DispatchFailure {"), "{stderr}");
}

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    // `fanout token … | head -c 0`: the reader is gone before we write.
    let mut child = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args(["token", "--tenant", "acme", "--user", "alice"])
        .env_remove("FANOUT_JWT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}
