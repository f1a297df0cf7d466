//! What on-call does with a dead-letter queue, on any [`Queue`]: look at
//! messages without consuming them, and move them back to their source
//! queue (the equivalent of SQS's `StartMessageMoveTask`, which also works
//! on the embedded queues and on AWS-compatible servers without it).

use std::collections::HashSet;
use std::time::Duration;

use fanout_core::limits::SQS_MAX_BATCH_ENTRIES;
use fanout_core::ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage};

/// How long peeked messages are held while a peek collects them.
const PEEK_HOLD: Duration = Duration::from_secs(30);
/// How long a message being moved stays hidden in the DLQ; if the move
/// dies midway it reappears there, never lost.
const MOVE_HOLD: Duration = Duration::from_secs(60);

/// Up to `max` messages, left in the queue and visible again at once. Each
/// peek counts as a receive (as in SQS), so only peek queues without a
/// redrive policy of their own — dead-letter queues.
pub async fn peek(queue: &dyn Queue, max: usize) -> Result<Vec<ReceivedMessage>, QueueError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while out.len() < max {
        let batch = queue
            .receive(
                (max - out.len()).min(SQS_MAX_BATCH_ENTRIES),
                Duration::ZERO,
                PEEK_HOLD,
            )
            .await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            if seen.insert(m.message_id.clone()) {
                out.push(m);
            }
        }
    }
    for m in &out {
        queue
            .change_visibility(&m.receipt_handle, Duration::ZERO)
            .await?;
    }
    Ok(out)
}

/// Moves up to `max` messages (bodies and attributes) from `from` to `to`,
/// at most `per_second` a second when given. A message is deleted from
/// `from` only after `to` accepted it. Returns how many moved.
pub async fn redrive(
    from: &dyn Queue,
    to: &dyn Queue,
    max: usize,
    per_second: Option<u32>,
) -> Result<usize, QueueError> {
    let mut moved = 0;
    while moved < max {
        let started = tokio::time::Instant::now();
        let batch = from
            .receive(
                (max - moved).min(SQS_MAX_BATCH_ENTRIES),
                Duration::ZERO,
                MOVE_HOLD,
            )
            .await?;
        if batch.is_empty() {
            break;
        }
        let outgoing: Vec<OutgoingMessage> = batch
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut o = OutgoingMessage::new(i.to_string(), m.body.clone());
                o.attributes = m.attributes.clone();
                o
            })
            .collect();
        let failed: HashSet<String> = to
            .send_batch(&outgoing)
            .await?
            .into_iter()
            .map(|f| f.id)
            .collect();
        let done: Vec<String> = batch
            .iter()
            .enumerate()
            .filter(|(i, _)| !failed.contains(&i.to_string()))
            .map(|(_, m)| m.receipt_handle.clone())
            .collect();
        from.delete(&done).await?;
        moved += done.len();
        if !failed.is_empty() {
            return Err(QueueError::EntriesFailed {
                queue: to.name().to_string(),
                failed: failed.len(),
                total: batch.len(),
                code: "SendMessageBatch".into(),
                message: "some messages were not accepted; they stay in the dead-letter queue"
                    .into(),
            });
        }
        if let Some(rate) = per_second.filter(|r| *r > 0) {
            let budget = Duration::from_secs_f64(done.len() as f64 / f64::from(rate));
            tokio::time::sleep_until(started + budget).await;
        }
    }
    Ok(moved)
}
