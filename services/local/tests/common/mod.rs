//! What the end-to-end suites share: the local stack on port 0 (on the
//! AWS adapters against moto when `FANOUT_E2E_BACKEND=aws`, and with the
//! built bootstraps as its functions when `FANOUT_E2E_LAMBDAS` names
//! them), real WebSocket clients, and small helpers to talk to it.

#![allow(dead_code)] // each suite uses its own subset

use std::time::Duration;

use fanout_core::ids::{TenantId, UserId};
use fanout_core::protocol::ReceivedFrame;
use fanout_core::token::{DEV_JWT_SECRET, TokenSigner};
use fanout_local::{RunningStack, StackConfig};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Starts the stack on port 0 with `extra` flags. With
/// `FANOUT_E2E_BACKEND=aws` it runs on the AWS adapters against
/// `FANOUT_TEST_AWS_ENDPOINT` (moto's server in `./scripts/test.sh`), each
/// test with its own resources.
pub async fn start_with(extra: &[&str]) -> RunningStack {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    fanout_local::start(config_with(extra), listener)
        .await
        .unwrap()
}

/// [`start_with`] on a clock the test moves.
pub async fn start_on_clock(
    extra: &[&str],
    clock: std::sync::Arc<dyn fanout_core::clock::Clock>,
) -> RunningStack {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    fanout_local::start_with_clock(config_with(extra), listener, clock)
        .await
        .unwrap()
}

/// The stack's flags: port 0, the backend `FANOUT_E2E_BACKEND` asks for,
/// and `extra`.
pub fn config_with(extra: &[&str]) -> StackConfig {
    let mut args: Vec<String> = ["fanout-local", "--port", "0"].map(String::from).to_vec();
    if std::env::var("FANOUT_E2E_BACKEND").as_deref() == Ok("aws") {
        let endpoint = std::env::var("FANOUT_TEST_AWS_ENDPOINT")
            .expect("FANOUT_E2E_BACKEND=aws needs FANOUT_TEST_AWS_ENDPOINT");
        let prefix = format!("e2e{}-", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        args.extend(
            [
                "--backend",
                "aws",
                "--endpoint-url",
                &endpoint,
                "--resource-prefix",
                &prefix,
            ]
            .map(String::from),
        );
    }
    if let Some(dir) = lambdas_dir() {
        args.extend([
            "--lambdas".into(),
            dir,
            "--lambda-log-level".into(),
            "warn".into(),
        ]);
        args.extend(role_flags());
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    <StackConfig as clap::Parser>::parse_from(args)
}

/// `FANOUT_E2E_LAMBDAS`: the directory of built bootstraps the stack runs
/// instead of its in-process handlers (with `FANOUT_E2E_BACKEND=aws`).
fn lambdas_dir() -> Option<String> {
    std::env::var("FANOUT_E2E_LAMBDAS")
        .ok()
        .filter(|d| !d.is_empty())
}

/// `FANOUT_E2E_LAMBDA_ROLES` (a role per function, which the stack
/// assumes for it) and `FANOUT_E2E_CALL_LOG` (a directory; each stack
/// records its functions' AWS calls in a file of its own there), as
/// `./scripts/test.sh` sets them on moto with IAM enforced.
fn role_flags() -> Vec<String> {
    let mut flags = Vec::new();
    if let Ok(roles) = std::env::var("FANOUT_E2E_LAMBDA_ROLES") {
        flags.extend(["--lambda-roles".to_string(), roles]);
    }
    if let Ok(dir) = std::env::var("FANOUT_E2E_CALL_LOG") {
        let file = format!("{dir}/{}.jsonl", uuid::Uuid::new_v4().simple());
        flags.extend(["--lambda-call-log".to_string(), file]);
    }
    flags
}

/// Whether the functions run as bootstraps (child processes on the system
/// clock, with their own limiters and caches).
pub fn on_lambdas() -> bool {
    lambdas_dir().is_some()
}

/// Whether the suite runs on the AWS adapters (moto).
pub fn on_aws() -> bool {
    std::env::var("FANOUT_E2E_BACKEND").as_deref() == Ok("aws")
}

/// Live connections of tenant `acme` (every test's tenant), from the store.
pub async fn connections(stack: &RunningStack) -> usize {
    let acme = TenantId::new("acme").unwrap();
    stack.resources.connection_count(&acme).await.unwrap()
}

/// Polls `check` until it holds, for at most 10 s (a departure is carried
/// out by the sweeper, from the store's change records: on moto that takes
/// a stream poll and a few requests). Returns whether it held.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Waits until tenant `acme` has no live connection left.
pub async fn until_no_connections(stack: &RunningStack) {
    assert!(
        eventually(|| async { connections(stack).await == 0 }).await,
        "{} connections left",
        connections(stack).await
    );
}

pub async fn start() -> RunningStack {
    start_with(&[]).await
}

pub fn token(tenant: &str, user: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    TokenSigner::new(DEV_JWT_SECRET.as_bytes())
        .mint(
            &TenantId::new(tenant).unwrap(),
            &UserId::new(user).unwrap(),
            now,
            Duration::from_secs(600),
        )
        .unwrap()
}

pub async fn connect(stack: &RunningStack, tenant: &str, user: &str) -> Socket {
    connect_with(stack, &token(tenant, user)).await
}

/// Connects with a given token (which must be accepted).
pub async fn connect_with(stack: &RunningStack, token: &str) -> Socket {
    let url = format!("{}?token={token}", stack.ws_url());
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

pub async fn send(ws: &mut Socket, frame: &str) {
    ws.send(Message::Text(frame.into())).await.unwrap();
}

/// The next text frame, parsed; panics after 5 s.
pub async fn next(ws: &mut Socket) -> ReceivedFrame {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad frame {text}: {e}"));
        }
    }
}

/// Asserts nothing arrives for `wait`.
pub async fn silent(ws: &mut Socket, wait: Duration) {
    if let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(wait, ws.next()).await {
        panic!("unexpected frame {t}");
    }
}

pub async fn request(ws: &mut Socket, frame: &str) -> ReceivedFrame {
    send(ws, frame).await;
    next(ws).await
}

/// Joins `room`; returns the room's last `seq` from the `joined` reply.
pub async fn join(ws: &mut Socket, room: &str) -> u64 {
    let reply = request(
        ws,
        &format!(r#"{{"action":"join","room":"{room}","requestId":"j-{room}"}}"#),
    )
    .await;
    match reply {
        ReceivedFrame::Joined {
            request_id,
            room: joined,
            seq,
            recovered: None,
            oldest: None,
        } if request_id.as_deref() == Some(&format!("j-{room}")) && joined == room => seq,
        other => panic!("expected joined for {room}, got {other:?}"),
    }
}

pub fn message_id(frame: &ReceivedFrame) -> String {
    match frame {
        ReceivedFrame::Message { id, .. } => id.clone(),
        other => panic!("expected a message, got {other:?}"),
    }
}

pub async fn http_status(url: &str) -> u16 {
    // A plain upgrade request, to read the refusal's status code.
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

pub async fn close_code_within(ws: &mut Socket, wait: Duration) -> CloseCode {
    tokio::time::timeout(wait, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return frame.code,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time")
}

/// SDK configuration for the stack's own AWS-compatible endpoints.
pub fn local_sdk_config(endpoint: String) -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
}
