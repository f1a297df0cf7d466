//! The message function, frame by frame, on the embedded adapters: each
//! script in `fixtures/message/` seeds connections, sends frames as they
//! would arrive from API Gateway, and records what came back — the reply,
//! every event put on the bus and every frame posted to a connection —
//! as an insta snapshot per script.
//!
//! A script's lines:
//! - `connect NAME TENANT USER [CAPABILITIES]`: a registered connection
//!   (`c-NAME`) with a token for two hours; capabilities as in a token,
//!   or none (the default policy, `tenant`).
//! - `NAME FRAME`: NAME sends FRAME (the text as it is, one line).
//! - `stored NAME ROOM DATA`: a message from NAME stored in ROOM's stream
//!   as the planner stores one (the next `seq`).
//! - `advance SECONDS`: the clock moves on.
//! - `# ...`: a comment, kept in the transcript.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use fanout_core::auth::{Capabilities, TokenVerifier};
use fanout_core::clock::{Clock, ManualClock};
use fanout_core::event::Sender;
use fanout_core::handlers::AbuseSettings;
use fanout_core::handlers::message::{self, MessageDeps};
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::ports::{ConnectionRecord, ConnectionStore, EntryKind, Queue, StreamEntry};
use fanout_core::settings::defaults;
use fanout_core::token::DEV_JWT_SECRET;
use fanout_embedded::{MemoryPoster, MemoryQueue, MemoryStore};
use serde_json::json;
use serde_json::value::RawValue;

mod common;

const START_MS: i64 = 1_800_000_000_000;
const TOKEN_LIFE_SECS: i64 = 7_200;

struct World {
    deps: MessageDeps,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    poster: Arc<MemoryPoster>,
    /// Every event put on the bus.
    events: Arc<MemoryQueue>,
    connections: Vec<(String, ConnectionRecord)>,
}

fn world() -> World {
    let common::Gateway {
        deps: gateway,
        store,
        clock,
        events,
    } = common::gateway(START_MS);
    let poster = Arc::new(MemoryPoster::new());
    let deps = MessageDeps {
        gateway,
        verifier: Arc::new(TokenVerifier::hs256(DEV_JWT_SECRET.as_bytes())),
        poster: poster.clone(),
        streams: store.clone(),
        stream: defaults(),
        abuse: defaults::<AbuseSettings>(),
    };
    World {
        deps,
        store,
        clock,
        poster,
        events,
        connections: Vec::new(),
    }
}

impl World {
    async fn connect(&mut self, name: &str, tenant: &str, user: &str, capabilities: Option<&str>) {
        let now_ms = self.clock.now_ms();
        let record = ConnectionRecord {
            id: ConnectionId::new(format!("c-{name}")).unwrap(),
            tenant: TenantId::new(tenant).unwrap(),
            user: UserId::new(user).unwrap(),
            connected_at_ms: now_ms,
            last_seen_ms: now_ms,
            ttl: now_ms / 1000 + TOKEN_LIFE_SECS,
            idle_until: self.deps.gateway.settings.idle_until(now_ms),
            token_expires_at: now_ms / 1000 + TOKEN_LIFE_SECS,
            capabilities: capabilities.map(|c| Capabilities::from_json(c).unwrap()),
        };
        self.store.put_connection(&record).await.unwrap();
        self.connections.push((name.to_owned(), record));
    }

    /// Stores a message from `name` in `room`'s stream.
    async fn stored(&self, name: &str, room: &str, data: &str) -> String {
        let record = self.record(name);
        let room = RoomId::new(room).unwrap();
        let streams = self.deps.streams.as_ref();
        let seq = streams.next_seq(&record.tenant, &room).await.unwrap();
        let entry = StreamEntry {
            seq,
            kind: EntryKind::Message,
            event_id: format!("e{seq}"),
            dedupe_key: format!("k{seq}"),
            from: Some(Sender::Client {
                user: record.user.clone(),
                connection: record.id.clone(),
            }),
            data: Some(RawValue::from_string(data.into()).unwrap()),
            sent_at_ms: self.clock.now_ms(),
            updated_at_ms: None,
            deleted: false,
            ttl: self.clock.now_ms() / 1000 + TOKEN_LIFE_SECS,
        };
        streams
            .put_entry(&record.tenant, &room, &entry)
            .await
            .unwrap();
        format!("stored {room} seq {seq} from {name}: {data}")
    }

    fn record(&self, name: &str) -> &ConnectionRecord {
        let found = self.connections.iter().find(|(n, _)| n == name);
        &found
            .unwrap_or_else(|| panic!("no connection named {name}"))
            .1
    }

    /// The request API Gateway hands the message function.
    fn request(&self, name: &str, body: &str) -> ApiGatewayWebsocketProxyRequest {
        let record = self.record(name);
        serde_json::from_value(json!({
            "requestContext": {
                "routeKey": "$default",
                "authorizer": { "tenant": record.tenant.as_str(), "user": record.user.as_str() },
                "eventType": "MESSAGE",
                "connectedAt": record.connected_at_ms,
                "connectionId": record.id.as_str(),
                "requestTimeEpoch": self.clock.now_ms(),
                "identity": { "sourceIp": "203.0.113.7" },
                "stage": "test",
                "apiId": "test",
            },
            "body": body,
            "isBase64Encoded": false,
        }))
        .unwrap()
    }

    /// Sends one frame; the transcript lines it caused.
    async fn send(&mut self, name: &str, body: &str) -> Vec<String> {
        let posted_before: Vec<usize> = self
            .connections
            .iter()
            .map(|(n, _)| self.posts(n).len())
            .collect();
        let response = message::handle(&self.request(name, body), &self.deps).await;
        let mut out = vec![format!("{name} > {body}")];
        match response.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => out.push(format!("  < {text}")),
            None => out.push("  < (no reply)".into()),
            Some(other) => out.push(format!("  < {other:?}")),
        }
        out.extend(self.bus_events().await);
        for ((n, _), before) in self.connections.iter().zip(posted_before) {
            for frame in &self.posts(n)[before..] {
                out.push(format!("  post {n}: {frame}"));
            }
        }
        if self.poster.is_closed(&self.record(name).id) {
            out.push(format!("  closed {name}"));
        }
        out
    }

    fn posts(&self, name: &str) -> Vec<String> {
        self.poster.frames(&self.record(name).id)
    }

    async fn bus_events(&self) -> Vec<String> {
        let received = self
            .events
            .receive(100, Duration::ZERO, Duration::from_secs(30))
            .await
            .unwrap();
        let handles: Vec<String> = received.iter().map(|m| m.receipt_handle.clone()).collect();
        self.events.delete(&handles).await.unwrap();
        received
            .iter()
            .map(|m| {
                let event: serde_json::Value = serde_json::from_str(&m.body).unwrap();
                format!(
                    "  bus {} {}: {}",
                    event["source"].as_str().unwrap_or("?"),
                    event["detail-type"].as_str().unwrap_or("?"),
                    event["detail"]
                )
            })
            .collect()
    }
}

/// Longest transcript line kept whole; longer ones are cut, with their
/// length (a payload over the limit is 128 KB).
const MAX_LINE: usize = 600;

fn shorten(line: String) -> String {
    if line.len() <= MAX_LINE {
        return line;
    }
    let cut = (0..=120)
        .rev()
        .find(|&i| line.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}… ({} bytes)", &line[..cut], line.len())
}

/// Runs `fixtures/message/{script}.txt`; its transcript.
async fn run(script: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/message/{script}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut w = world();
    let mut transcript = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
        match head {
            "#" => transcript.push(line.to_owned()),
            "connect" => {
                let mut parts = rest.splitn(4, ' ');
                let (name, tenant, user) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                w.connect(name, tenant, user, parts.next()).await;
            }
            "stored" => {
                let mut parts = rest.splitn(3, ' ');
                let (name, room, data) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                transcript.push(w.stored(name, room, data).await);
            }
            "advance" => w.clock.advance_ms(rest.parse::<i64>().unwrap() * 1000),
            name => transcript.extend(w.send(name, rest).await),
        }
    }
    let lines: Vec<String> = transcript.into_iter().map(shorten).collect();
    lines.join("\n") + "\n"
}

macro_rules! scripts {
    ($($script:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $script() {
            insta::assert_snapshot!(stringify!($script), run(stringify!($script)).await);
        }
    )*};
}

scripts!(
    bad_input, join, leave, send, edit, history, presence, connection, expiry
);
