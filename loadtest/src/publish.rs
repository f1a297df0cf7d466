//! Publishing the scenario's messages: through EventBridge's PutEvents (a
//! product service), a client's `publish` action, or — `direct` mode —
//! straight from the gateway's registry to every member, skipping the
//! pipeline (the machine's upper bound).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use fanout_aws::EventBridgeBus;
use fanout_core::event::{BROADCAST, Target};
use fanout_core::handlers::planner::resolve;
use fanout_core::ids::{RoomId, TenantId};
use fanout_core::ports::{BusEntry, ConnectionPoster};
use fanout_core::protocol::ServerFrame;
use fanout_local::stack::Resources;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use crate::clients::Socket;

/// Posts in flight at once in direct mode.
const DIRECT_IN_FLIGHT: usize = 256;

pub enum Publisher {
    Events {
        bus: EventBridgeBus,
        tenant: String,
        /// Whether events are stored in their rooms' streams.
        streams: bool,
    },
    /// One joined publisher connection per room; their incoming frames are
    /// drained (and ignored) by a task each.
    Client {
        senders: Vec<SplitSink<Socket, Message>>,
    },
    Direct {
        resources: Resources,
        tenant: TenantId,
        /// The stack's runtime: the posts are the stack's work, and run
        /// (and count) there, each message's beside the others' as the
        /// broadcasters' would.
        runtime: tokio::runtime::Handle,
        /// Posts that failed (counted as they finish).
        failures: Arc<AtomicU64>,
    },
}

/// The room name of room `k`.
pub fn room_name(k: usize) -> String {
    format!("room{k}")
}

/// The data of message `seq`, padded to about `payload_bytes`.
pub fn data(seq: u32, payload_bytes: usize) -> String {
    format!(r#"{{"seq":{seq},"pad":"{}"}}"#, "x".repeat(payload_bytes))
}

impl Publisher {
    /// Direct posts that failed so far (0 for the other publishers, whose
    /// failures are their publishes').
    pub fn failed_posts(&self) -> u64 {
        match self {
            Self::Direct { failures, .. } => failures.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// Wraps publisher connections (already joined to their rooms).
    pub fn clients(sockets: Vec<Socket>) -> Self {
        let senders = sockets
            .into_iter()
            .map(|ws| {
                let (sink, mut stream) = ws.split();
                tokio::spawn(async move { while stream.next().await.is_some() {} });
                sink
            })
            .collect();
        Self::Client { senders }
    }

    pub async fn publish(&mut self, seq: u32, room: usize, payload: &str) -> Result<(), String> {
        match self {
            Self::Events {
                bus,
                tenant,
                streams,
            } => {
                let unstored = if *streams { "" } else { r#","stream":false"# };
                let detail = format!(
                    r#"{{"tenant":"{tenant}","target":{{"room":"{}"}},"data":{payload}{unstored}}}"#,
                    room_name(room)
                );
                let entry = BusEntry::new(format!("{tenant}.loadtest"), BROADCAST, detail);
                fanout_core::ports::publish(&*bus, &[entry])
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("PutEvents: {e}"))
            }
            Self::Client { senders } => {
                let request = format!(
                    r#"{{"action":"publish","room":"{}","data":{payload},"requestId":"p{seq}"}}"#,
                    room_name(room)
                );
                senders[room]
                    .send(Message::Text(request.into()))
                    .await
                    .map_err(|e| format!("publish over the socket: {e}"))
            }
            Self::Direct {
                resources,
                tenant,
                runtime,
                failures,
            } => {
                let room_id = RoomId::new(room_name(room)).map_err(|e| e.to_string())?;
                let members = resolve(
                    tenant,
                    &Target::Room(room_id.clone()),
                    resources.store.as_ref(),
                )
                .await
                .map_err(|e| e.to_string())?
                .connections;
                let data = RawValue::from_string(payload.to_string()).map_err(|e| e.to_string())?;
                let id = format!("direct-{seq}");
                let sent_at = fanout_core::clock::rfc3339_ms(chrono::Utc::now().timestamp_millis());
                let frame = Bytes::from(
                    ServerFrame::Message {
                        id: &id,
                        room: Some(room_id.as_str()),
                        seq: None,
                        from: None,
                        data: Some(&data),
                        sent_at: &sent_at,
                        updated_at: None,
                        deleted: false,
                    }
                    .to_json(),
                );
                let registry = resources.registry.clone();
                let posts: Vec<_> = members
                    .into_iter()
                    .map(|member| {
                        let (registry, frame) = (registry.clone(), frame.clone());
                        async move { registry.post(&member, &frame).await }
                    })
                    .collect();
                let failures = failures.clone();
                runtime.spawn(async move {
                    let failed = futures::stream::iter(posts)
                        .buffer_unordered(DIRECT_IN_FLIGHT)
                        .filter(|r| futures::future::ready(r.is_err()))
                        .count()
                        .await;
                    failures.fetch_add(failed as u64, Ordering::Relaxed);
                });
                Ok(())
            }
        }
    }
}

/// An EventBridge client for `endpoint`: the local stack or another
/// endpoint takes dummy credentials; "aws" uses the SDK's defaults.
pub async fn eventbridge(endpoint: &str) -> aws_sdk_eventbridge::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if endpoint != "aws" {
        loader = loader
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
                "loadtest",
                "loadtest",
                None,
                None,
                "fanout-loadtest",
            ));
    }
    aws_sdk_eventbridge::Client::new(&loader.load().await)
}

/// Direct mode's publisher.
pub fn direct(
    resources: Resources,
    tenant: TenantId,
    runtime: tokio::runtime::Handle,
) -> Publisher {
    Publisher::Direct {
        resources,
        tenant,
        runtime,
        failures: Arc::new(AtomicU64::new(0)),
    }
}
