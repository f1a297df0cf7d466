//! In-process connections: registered in the gateway's registry and the
//! store exactly as `$connect` and `join` would register a socket, but with
//! the outbound frames left in their queue instead of written to a socket.
//! The pipeline tests and the quota benchmark use them to exercise
//! planning and delivery at sizes and speeds where sockets and paused time
//! do not mix; everything after the registry is the real path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize};

use axum::extract::ws::Message;
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::limits::connection_ttl_secs;
use fanout_core::ports::{ConnectionRecord, StoreError};
use fanout_core::settings::GatewaySettings;
use tokio_util::sync::CancellationToken;

use crate::outbound::Outbound;
use crate::registry::LiveConnection;
use crate::stack::Resources;

pub struct InProcessClient {
    pub id: ConnectionId,
    live: Arc<LiveConnection>,
}

impl InProcessClient {
    /// Registers a connection of `user` in `tenant` and joins it to
    /// `room`. Its buffer holds `capacity` frames; a client created
    /// `stuck` has a full buffer it never reads, so every post to it
    /// answers 429 like a client that stopped reading.
    pub async fn join(
        resources: &Resources,
        id: ConnectionId,
        tenant: &TenantId,
        user: UserId,
        room: &RoomId,
        capacity: usize,
        stuck: bool,
    ) -> Result<Self, StoreError> {
        let now = chrono::Utc::now().timestamp_millis();
        let live = Arc::new(LiveConnection {
            outbound: Outbound::new(capacity),
            kick: CancellationToken::new(),
            queued_bytes: AtomicUsize::new(0),
            // In-process clients bound their queue by frames only, so a
            // stuck one answers 429 like API Gateway's LimitExceeded.
            max_queued_bytes: usize::MAX,
            slow_consumer: AtomicBool::new(false),
            connected_at_ms: now,
            last_active_ms: AtomicI64::new(now),
            source_ip: "127.0.0.1".into(),
            user_agent: None,
        });
        if stuck {
            while live.outbound.push(Message::Text("unread".into())).is_ok() {}
        }
        resources.registry.insert(id.clone(), live.clone());
        let ttl = connection_ttl_secs(now, GatewaySettings::default().max_connection_duration);
        let record = ConnectionRecord {
            id: id.clone(),
            tenant: tenant.clone(),
            user,
            connected_at_ms: now,
            last_seen_ms: now,
            ttl,
            // Socketless connections send no heartbeats; they live as long
            // as a connection can.
            idle_until: ttl,
            token_expires_at: ttl,
            capabilities: None,
        };
        resources.store.put_connection(&record).await?;
        resources
            .store
            .join_room(&record, room, fanout_core::auth::Rights::NONE)
            .await?;
        Ok(Self { id, live })
    }

    /// Event ids of the message frames received since the last call.
    pub fn received(&mut self) -> Vec<String> {
        let mut ids = Vec::new();
        while let Some(message) = self.live.outbound.pop() {
            let Message::Text(text) = message else {
                continue;
            };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && v["type"] == "message"
                && let Some(id) = v["id"].as_str()
            {
                ids.push(id.to_string());
            }
        }
        ids
    }
}
