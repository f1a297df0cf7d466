//! The queue port (SQS on AWS), and [`send_all`], which sends any number of
//! messages in batches SQS accepts.

use super::Cause;
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::backoff::Backoff;
use crate::limits::{SQS_MAX_BATCH_BYTES, SQS_MAX_BATCH_ENTRIES};

/// Message attributes (SQS string attributes), e.g. the error EventBridge
/// records on a dead-lettered event.
pub type Attributes = BTreeMap<String, String>;

/// A message to send; `id` is unique within one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub id: String,
    pub body: String,
    pub delay: Duration,
    pub attributes: Attributes,
}

impl OutgoingMessage {
    /// A message with no delay and no attributes.
    pub fn new(id: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            body: body.into(),
            delay: Duration::ZERO,
            attributes: Attributes::new(),
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// What SQS counts against its message and batch size limits: the
    /// body plus each attribute's name, data type (`String`) and value.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + STRING_ATTRIBUTE_TYPE.len() + value.len())
                .sum::<usize>()
    }
}

/// The data type of every message attribute fanout sends.
pub const STRING_ATTRIBUTE_TYPE: &str = "String";

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// When it was first sent, ms since the epoch.
    pub sent_at_ms: i64,
    pub attributes: Attributes,
}

/// A batch entry the queue refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    pub code: String,
    pub message: String,
    /// Whether resending can succeed (SQS's `SenderFault` is false).
    pub retryable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {queue} unavailable: {message}")]
    Unavailable {
        queue: String,
        #[source]
        message: Cause,
    },
    #[error("message {id} is {size} bytes; the queue takes at most {max}")]
    TooLarge { id: String, size: usize, max: usize },
    #[error("batch refused by queue {queue}: {message}")]
    Invalid {
        queue: String,
        #[source]
        message: Cause,
    },
    #[error(
        "{failed} of {total} messages could not be sent to {queue}; first error: {code}: {message}"
    )]
    EntriesFailed {
        queue: String,
        failed: usize,
        total: usize,
        code: String,
        message: String,
    },
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// The queue's name, for logs and errors.
    fn name(&self) -> &str;

    /// The queue's ARN (event sources carry it).
    fn arn(&self) -> String;

    /// Sends at most ten messages; returns the entries that failed.
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, QueueError>;

    /// Receives up to `max` messages, waiting up to `wait` for the first,
    /// hiding each for `visibility`.
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Deletes received messages by receipt handle.
    async fn delete(&self, receipt_handles: &[String]) -> Result<(), QueueError>;

    /// Makes a received message visible again after `timeout`.
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError>;

    /// How many messages the queue holds (SQS's approximate counts).
    async fn depth(&self) -> Result<QueueDepth, QueueError>;
}

/// A queue's messages by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Ready to be received.
    pub visible: u64,
    /// Received and not yet deleted (hidden by a visibility timeout).
    pub in_flight: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
}

impl QueueDepth {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// Groups messages into SendMessageBatch calls: at most ten entries and at
/// most [`SQS_MAX_BATCH_BYTES`] per call (bodies and attributes, as SQS
/// counts them), keeping order.
pub fn send_batches<'a>(messages: &[&'a OutgoingMessage]) -> Vec<Vec<&'a OutgoingMessage>> {
    let mut batches: Vec<Vec<&OutgoingMessage>> = Vec::new();
    let mut bytes = 0;
    for &m in messages {
        let fits = batches.last().is_some_and(|b| {
            b.len() < SQS_MAX_BATCH_ENTRIES && bytes + m.size() <= SQS_MAX_BATCH_BYTES
        });
        if !fits {
            batches.push(Vec::new());
            bytes = 0;
        }
        bytes += m.size();
        batches.last_mut().expect("pushed above").push(m);
    }
    batches
}

/// Attempts per message before [`send_all`] gives up on it.
pub const SEND_ATTEMPTS: u32 = 3;

/// Wait before resending failed entries (full jitter).
pub const SEND_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(1),
};

/// Sends any number of messages in batches of at most ten entries and
/// [`SQS_MAX_BATCH_BYTES`], resending only failed entries.
pub async fn send_all(queue: &dyn Queue, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
    let mut pending: Vec<&OutgoingMessage> = messages.iter().collect();
    let mut last = (String::new(), String::new());
    for attempt in 0..SEND_ATTEMPTS {
        if pending.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            tokio::time::sleep(SEND_BACKOFF.jittered(attempt)).await;
        }
        let mut failed_ids = std::collections::HashSet::new();
        for batch in send_batches(&pending) {
            let owned: Vec<OutgoingMessage> = batch.iter().map(|m| (*m).clone()).collect();
            for failure in queue.send_batch(&owned).await? {
                if !failure.retryable {
                    return Err(QueueError::Invalid {
                        queue: queue.name().to_string(),
                        message: format!("{}: {}", failure.code, failure.message).into(),
                    });
                }
                last = (failure.code, failure.message);
                failed_ids.insert(failure.id);
            }
        }
        pending.retain(|m| failed_ids.contains(&m.id));
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(QueueError::EntriesFailed {
            queue: queue.name().to_string(),
            failed: pending.len(),
            total: messages.len(),
            code: last.0,
            message: last.1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_bytes() {
        let small: Vec<OutgoingMessage> = (0..25)
            .map(|i| OutgoingMessage::new(i.to_string(), "x"))
            .collect();
        let refs: Vec<&OutgoingMessage> = small.iter().collect();
        let sizes: Vec<usize> = send_batches(&refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);

        let big: Vec<OutgoingMessage> = (0..3)
            .map(|i| OutgoingMessage::new(i.to_string(), "x".repeat(100 * 1024)))
            .collect();
        let refs: Vec<&OutgoingMessage> = big.iter().collect();
        let sizes: Vec<usize> = send_batches(&refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 1]);
    }

    #[test]
    fn attributes_count_towards_the_batch_size() {
        let mut with_attributes = OutgoingMessage::new("a", "x".repeat(100 * 1024));
        with_attributes
            .attributes
            .insert("ERROR_MESSAGE".into(), "y".repeat(60 * 1024));
        assert_eq!(
            with_attributes.size(),
            100 * 1024 + "ERROR_MESSAGE".len() + "String".len() + 60 * 1024
        );
        let plain = OutgoingMessage::new("b", "x".repeat(100 * 1024));
        let refs = vec![&with_attributes, &plain];
        let sizes: Vec<usize> = send_batches(&refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 1], "160 KiB + 100 KiB is over 256 KiB");
    }
}
