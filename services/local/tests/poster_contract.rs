//! The connection poster contract: the local gateway's registry (the
//! embedded poster) and the AWS adapter (`ApiGatewayPoster`, the real
//! aws-sdk-apigatewaymanagement client) pointed at the local stack's own
//! @connections endpoint answer every case the same way.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fanout_aws::ApiGatewayPoster;
use fanout_core::ids::{ConnectionId, TenantId, UserId};
use fanout_core::ports::{ConnectionPoster, PostError};
use fanout_core::token::{DEV_JWT_SECRET, TokenSigner};
use fanout_local::{RunningStack, StackConfig};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

async fn start() -> RunningStack {
    start_with(&[]).await
}

async fn start_with(extra: &[&str]) -> RunningStack {
    let args = ["fanout-local", "--port", "0"].iter().chain(extra);
    let config = <StackConfig as clap::Parser>::parse_from(args);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    fanout_local::start(config, listener).await.unwrap()
}

/// A shared SDK configuration as a Lambda loads one: the SDK's default
/// (standard) retry mode, which the poster must switch off itself.
async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            "test", "test", None, None, "contract",
        ))
        .load()
        .await
}

async fn aws_poster(stack: &RunningStack) -> Arc<dyn ConnectionPoster> {
    let config = sdk_config().await;
    Arc::new(ApiGatewayPoster::for_endpoint(
        &config,
        &stack.management_url(),
        Duration::from_secs(3),
    ))
}

async fn contract(stack: &RunningStack, poster: Arc<dyn ConnectionPoster>, user: &str) {
    let token = TokenSigner::new(DEV_JWT_SECRET.as_bytes())
        .mint(
            &TenantId::new("acme").unwrap(),
            &UserId::new(user).unwrap(),
            chrono::Utc::now().timestamp(),
            Duration::from_secs(600),
        )
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}?token={token}", stack.ws_url()))
        .await
        .unwrap();
    ws.send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap();
    let id = stack
        .resources
        .store
        .user_connections_page(
            &TenantId::new("acme").unwrap(),
            &UserId::new(user).unwrap(),
            None,
        )
        .await
        .unwrap()
        .items[0]
        .clone();

    // A post reaches the socket as a text frame.
    poster
        .post(&id, &Bytes::from_static(br#"{"type":"pong"}"#))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, Message::Text(r#"{"type":"pong"}"#.into()));

    let info = poster.get(&id).await.unwrap();
    assert!(info.connected_at_ms > 0);
    assert!(info.last_active_at_ms >= info.connected_at_ms);
    assert_eq!(info.source_ip, "127.0.0.1");

    // Larger than API Gateway posts: 413, and the socket stays open.
    let huge = Bytes::from(vec![b'x'; 128 * 1024 + 1]);
    assert_eq!(
        poster.post(&id, &huge).await.unwrap_err(),
        PostError::PayloadTooLarge
    );

    let unknown = ConnectionId::new("AAAAAAAAAAAAAA==").unwrap();
    assert_eq!(
        poster
            .post(&unknown, &Bytes::from_static(b"{}"))
            .await
            .unwrap_err(),
        PostError::Gone
    );
    assert_eq!(poster.get(&unknown).await.unwrap_err(), PostError::Gone);
    assert_eq!(poster.delete(&unknown).await.unwrap_err(), PostError::Gone);

    // DELETE closes the socket; afterwards the connection is gone.
    poster.delete(&id).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket closed");
    tokio::time::timeout(Duration::from_secs(5), async {
        while poster.post(&id, &Bytes::from_static(b"{}")).await != Err(PostError::Gone) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("posting to a closed connection answers 410");
}

#[tokio::test]
async fn embedded_registry() {
    let stack = start().await;
    let poster: Arc<dyn ConnectionPoster> = stack.resources.registry.clone();
    contract(&stack, poster, "alice").await;
    stack.stop().await;
}

#[tokio::test]
async fn aws_management_api_client_against_the_local_endpoint() {
    let stack = start().await;
    let poster = aws_poster(&stack).await;
    contract(&stack, poster, "bob").await;
    stack.stop().await;
}

#[tokio::test]
async fn aws_adapter_maps_a_wrong_stage_to_forbidden() {
    let stack = start().await;
    let config = sdk_config().await;
    let wrong = ApiGatewayPoster::for_endpoint(
        &config,
        &format!("{}/prod", stack.http_url()),
        Duration::from_secs(3),
    );
    let id = ConnectionId::new("AAAAAAAAAAAAAA==").unwrap();
    assert!(matches!(
        wrong.post(&id, &Bytes::from_static(b"{}")).await,
        Err(PostError::Forbidden(_))
    ));
    stack.stop().await;
}

#[tokio::test]
async fn aws_adapter_makes_one_call_per_post_whatever_the_sdk_config_retries() {
    // One call per second: the second post is throttled (429).
    let stack = start_with(&["--quota-rps", "1", "--quota-burst", "1"]).await;
    // The SDK's default retry mode: the poster must switch it off itself,
    // or a throttled post would be retried underneath the broadcaster's
    // own retries and past its rate gate.
    let config = sdk_config().await;
    let poster =
        ApiGatewayPoster::for_endpoint(&config, &stack.management_url(), Duration::from_secs(3));
    let id = ConnectionId::new("AAAAAAAAAAAAAA==").unwrap();
    assert_eq!(
        poster.post(&id, &Bytes::from_static(b"{}")).await,
        Err(PostError::Gone)
    );
    assert!(matches!(
        poster.post(&id, &Bytes::from_static(b"{}")).await,
        Err(PostError::Throttled(_))
    ));
    let calls = stack.resources.quota.as_ref().unwrap().stats();
    assert_eq!(
        (calls.accepted, calls.throttled),
        (1, 1),
        "exactly one HTTP call per post"
    );
    stack.stop().await;
}
