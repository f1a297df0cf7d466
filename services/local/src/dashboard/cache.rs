//! The dashboard's slow reads (the room count, the dead-letter peek),
//! each kept for a while so a page polling every second does not repeat
//! them.

use std::time::Duration;

use tokio::time::Instant;

/// The dashboard's slow reads, each reused for a while: the room count and
/// the last look at the dead-letter queues.
#[derive(Default)]
pub struct DashboardCache {
    pub(super) rooms: Cached<serde_json::Value>,
    pub(super) dead_letters: Cached<serde_json::Value>,
}

/// A value and when it was read.
pub(super) struct Cached<T> {
    last: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Self {
            last: tokio::sync::Mutex::new(None),
        }
    }
}

impl<T: Clone> Cached<T> {
    /// The value read less than `fresh` ago, or a new one from `read`
    /// (kept when `keep` says it is worth keeping). Concurrent polls wait
    /// for one read rather than each reading.
    pub(super) async fn get<F: Future<Output = T>>(
        &self,
        fresh: Duration,
        read: impl FnOnce() -> F,
        keep: impl FnOnce(&T) -> bool,
    ) -> T {
        let mut last = self.last.lock().await;
        if let Some((at, value)) = last.as_ref()
            && at.elapsed() < fresh
        {
            return value.clone();
        }
        let value = read().await;
        if keep(&value) {
            *last = Some((Instant::now(), value.clone()));
        }
        value
    }
}
