//! The local gateway's registry of open WebSocket connections. It is the
//! embedded connection poster: the @connections endpoint and the in-process
//! broadcaster both post through it, with API Gateway's answers (410 for an
//! unknown or closed connection, 429 when a client's frame queue is full).
//!
//! Memory per connection is bounded in bytes: a post that would take a
//! connection's unsent frames past its byte limit marks it a slow consumer,
//! closes it (1008) and answers 410, so the pipeline deletes it instead of
//! retrying into a client that does not read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use fanout_core::clock::Clock;
use fanout_core::ids::ConnectionId;
use fanout_core::ports::{ConnectionInfo, ConnectionPoster, PostError};

use crate::outbound::{Outbound, Refused};
use tokio_util::sync::CancellationToken;

/// Frames queued for one socket. Generous: the byte limit
/// (`--max-outbound-bytes`) is what bounds a socket's memory.
pub const OUTBOUND_CAPACITY: usize = 65_536;

/// One open connection, as the socket task registered it.
pub struct LiveConnection {
    pub outbound: Outbound,
    /// Cancelled by DELETE @connections/{id}, or for a slow consumer: the
    /// socket task closes.
    pub kick: CancellationToken,
    /// Bytes posted and not yet written to the socket.
    pub queued_bytes: AtomicUsize,
    /// The most `queued_bytes` may reach.
    pub max_queued_bytes: usize,
    /// Set when the connection was closed for not reading.
    pub slow_consumer: AtomicBool,
    pub connected_at_ms: i64,
    pub last_active_ms: AtomicI64,
    pub source_ip: String,
    pub user_agent: Option<String>,
}

pub struct ConnectionRegistry {
    clock: Arc<dyn Clock>,
    max_post_bytes: usize,
    // RwLock from std: lookups vastly outnumber inserts and removals, and no
    // guard is held across an await.
    connections: RwLock<HashMap<ConnectionId, Arc<LiveConnection>>>,
}

impl ConnectionRegistry {
    pub fn new(clock: Arc<dyn Clock>, max_post_bytes: usize) -> Self {
        Self {
            clock,
            max_post_bytes,
            connections: RwLock::new(HashMap::new()),
        }
    }

    pub fn insert(&self, id: ConnectionId, connection: Arc<LiveConnection>) {
        self.write().insert(id, connection);
    }

    pub fn remove(&self, id: &ConnectionId) {
        self.write().remove(id);
    }

    pub fn get(&self, id: &ConnectionId) -> Option<Arc<LiveConnection>> {
        self.read().get(id).cloned()
    }

    /// Up to `max` open connections' ids (in no particular order).
    pub fn ids(&self, max: usize) -> Vec<ConnectionId> {
        self.read().keys().take(max).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ConnectionId, Arc<LiveConnection>>> {
        self.connections.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ConnectionId, Arc<LiveConnection>>> {
        self.connections.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ConnectionPoster for ConnectionRegistry {
    async fn post(&self, id: &ConnectionId, frame: &Bytes) -> Result<(), PostError> {
        if frame.len() > self.max_post_bytes {
            return Err(PostError::PayloadTooLarge);
        }
        let connection = self.get(id).ok_or(PostError::Gone)?;
        if connection.slow_consumer.load(Ordering::Relaxed) {
            return Err(PostError::Gone);
        }
        let size = frame.len();
        let queued = connection.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if queued + size > connection.max_queued_bytes {
            connection.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            connection.slow_consumer.store(true, Ordering::Relaxed);
            connection.kick.cancel();
            tracing::warn!(connection_id = %id, queued, limit = connection.max_queued_bytes,
                "closing a slow consumer: its unsent frames passed the byte limit");
            return Err(PostError::Gone);
        }
        // Text when the data is UTF-8 (every fanout frame is), else binary.
        let message = match Utf8Bytes::try_from(frame.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(frame.clone()),
        };
        match connection.outbound.push(message) {
            Ok(()) => {
                connection
                    .last_active_ms
                    .store(self.clock.now_ms(), Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                connection.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                match error {
                    Refused::Full => Err(PostError::Throttled(
                        "LimitExceededException: the client is not reading fast enough".into(),
                    )),
                    Refused::Closed => Err(PostError::Gone),
                }
            }
        }
    }

    async fn get(&self, id: &ConnectionId) -> Result<ConnectionInfo, PostError> {
        let c = ConnectionRegistry::get(self, id).ok_or(PostError::Gone)?;
        Ok(ConnectionInfo {
            connected_at_ms: c.connected_at_ms,
            last_active_at_ms: c.last_active_ms.load(Ordering::Relaxed),
            source_ip: c.source_ip.clone(),
            user_agent: c.user_agent.clone(),
        })
    }

    async fn delete(&self, id: &ConnectionId) -> Result<(), PostError> {
        let c = ConnectionRegistry::get(self, id).ok_or(PostError::Gone)?;
        c.kick.cancel();
        Ok(())
    }
}
