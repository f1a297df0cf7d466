//! The event bus port (EventBridge PutEvents on AWS), and [`publish`],
//! which sends any number of entries in calls EventBridge accepts.

use super::Cause;
use async_trait::async_trait;

use crate::backoff::Backoff;
use crate::limits::EVENTBRIDGE_MAX_ENTRIES;

/// One PutEvents entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    pub source: String,
    pub detail_type: String,
    /// JSON object text.
    pub detail: String,
    pub resources: Vec<String>,
}

impl BusEntry {
    pub fn new(
        source: impl Into<String>,
        detail_type: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            source: source.into(),
            detail_type: detail_type.into(),
            detail: detail.into(),
            resources: Vec::new(),
        }
    }

    /// EventBridge's entry size: 14 bytes for Time plus the UTF-8 bytes of
    /// Source, DetailType, Detail and each Resources entry.
    pub fn size(&self) -> usize {
        14 + self.source.len()
            + self.detail_type.len()
            + self.detail.len()
            + self.resources.iter().map(String::len).sum::<usize>()
    }
}

/// The per-entry outcome of PutEvents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    Accepted { event_id: String },
    Failed { code: String, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event bus throttled the request: {0}")]
    Throttled(#[source] Cause),
    #[error("event bus refused the request: {0}")]
    Invalid(#[source] Cause),
    #[error("event bus unavailable: {0}")]
    Unavailable(#[source] Cause),
    #[error("{failed} of {total} entries failed after retries; first error: {code}: {message}")]
    EntriesFailed {
        failed: usize,
        total: usize,
        code: String,
        message: String,
    },
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Puts at most [`EVENTBRIDGE_MAX_ENTRIES`] entries; one
    /// outcome per entry, in order.
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryOutcome>, BusError>;
}

/// Refuses a PutEvents call with an entry over EventBridge's size limit,
/// naming the entry, before anything is sent (every bus adapter does this,
/// so no adapter sends half a batch of a request AWS would refuse).
pub fn check_entry_sizes(entries: &[BusEntry], max: usize) -> Result<(), BusError> {
    match entries.iter().position(|e| e.size() > max) {
        Some(i) => Err(BusError::Invalid(
            format!(
                "entry {i} ({} / {}) is {} bytes; EventBridge takes at most {max} per entry",
                entries[i].source,
                entries[i].detail_type,
                entries[i].size()
            )
            .into(),
        )),
        None => Ok(()),
    }
}

/// Attempts per entry before [`publish`] gives up on it.
pub const PUBLISH_ATTEMPTS: u32 = 3;

/// Wait before resending failed entries: full jitter, so many publishers
/// that failed together do not resend together.
pub const PUBLISH_BACKOFF: Backoff = Backoff {
    base: std::time::Duration::from_millis(100),
    cap: std::time::Duration::from_secs(1),
};

/// Publishes any number of entries in calls of at most ten, resending only
/// the failed entries. Returns the event ids in input order.
pub async fn publish(bus: &dyn EventBus, entries: &[BusEntry]) -> Result<Vec<String>, BusError> {
    let mut ids = vec![String::new(); entries.len()];
    let mut pending: Vec<usize> = (0..entries.len()).collect();
    let mut last_failure = (String::new(), String::new());
    for attempt in 0..PUBLISH_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(PUBLISH_BACKOFF.jittered(attempt)).await;
        }
        let mut still_failing = Vec::new();
        for chunk in pending.chunks(EVENTBRIDGE_MAX_ENTRIES) {
            let batch: Vec<BusEntry> = chunk.iter().map(|&i| entries[i].clone()).collect();
            let outcomes = bus.put_events(&batch).await?;
            for (&i, outcome) in chunk.iter().zip(outcomes) {
                match outcome {
                    EntryOutcome::Accepted { event_id } => ids[i] = event_id,
                    EntryOutcome::Failed { code, message } => {
                        last_failure = (code, message);
                        still_failing.push(i);
                    }
                }
            }
        }
        pending = still_failing;
    }
    if pending.is_empty() {
        Ok(ids)
    } else {
        Err(BusError::EntriesFailed {
            failed: pending.len(),
            total: entries.len(),
            code: last_failure.0,
            message: last_failure.1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_size_follows_eventbridge() {
        let mut e = BusEntry::new("a", "bb", "{}");
        e.resources.push("r".into());
        assert_eq!(e.size(), 14 + 1 + 2 + 2 + 1);
    }
}
