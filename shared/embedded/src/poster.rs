//! An @connections stand-in for connections with no socket behind them:
//! every post is kept per connection in order, a deleted connection is
//! closed and answers 410 Gone from then on, as API Gateway's does.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use fanout_core::ids::ConnectionId;
use fanout_core::ports::{ConnectionInfo, ConnectionPoster, PostError};

#[derive(Default)]
pub struct MemoryPoster {
    state: Mutex<Posted>,
}

#[derive(Default)]
struct Posted {
    frames: HashMap<ConnectionId, Vec<Bytes>>,
    closed: HashSet<ConnectionId>,
}

impl MemoryPoster {
    pub fn new() -> Self {
        Self::default()
    }

    /// What was posted to `id`, in order, as text.
    pub fn frames(&self, id: &ConnectionId) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .frames
            .get(id)
            .map(|frames| {
                frames
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `id` was closed through DELETE.
    pub fn is_closed(&self, id: &ConnectionId) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.closed.contains(id)
    }
}

#[async_trait]
impl ConnectionPoster for MemoryPoster {
    async fn post(&self, id: &ConnectionId, frame: &Bytes) -> Result<(), PostError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed.contains(id) {
            return Err(PostError::Gone);
        }
        state
            .frames
            .entry(id.clone())
            .or_default()
            .push(frame.clone());
        Ok(())
    }

    async fn get(&self, id: &ConnectionId) -> Result<ConnectionInfo, PostError> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed.contains(id) {
            return Err(PostError::Gone);
        }
        Ok(ConnectionInfo {
            connected_at_ms: 0,
            last_active_at_ms: 0,
            source_ip: "127.0.0.1".into(),
            user_agent: None,
        })
    }

    async fn delete(&self, id: &ConnectionId) -> Result<(), PostError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed.insert(id.clone()) {
            Ok(())
        } else {
            Err(PostError::Gone)
        }
    }
}
