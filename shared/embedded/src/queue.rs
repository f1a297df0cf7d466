//! An in-process queue with SQS semantics: per-message delay, visibility
//! timeout, receive counts, long polling, and redrive to a dead-letter queue
//! once a message has been received `max_receive_count` times without being
//! deleted. Time is `tokio::time`, so tests can pause and advance it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use fanout_core::limits::{
    SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY, SQS_MAX_MESSAGE_BYTES, check_sqs_receive,
};
use fanout_core::ports::{
    Attributes, FailedEntry, OutgoingMessage, Queue, QueueDepth, QueueError, ReceivedMessage,
};

/// Where messages go after too many receives.
#[derive(Clone)]
pub struct Redrive {
    pub dead_letter: Arc<MemoryQueue>,
    pub max_receive_count: u32,
}

#[derive(Clone)]
pub struct QueueSettings {
    pub max_message_bytes: usize,
    pub redrive: Option<Redrive>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: SQS_MAX_MESSAGE_BYTES,
            redrive: None,
        }
    }
}

struct Message {
    id: String,
    body: String,
    attributes: Attributes,
    receive_count: u32,
    sent_at_ms: i64,
    /// Set on every hide (delay, receive, visibility change); a heap entry
    /// from an older generation is stale.
    hidden_generation: u64,
    /// Set on every receive; a receipt handle from an older receive is stale.
    receipt_generation: u64,
}

#[derive(Default)]
struct State {
    messages: HashMap<String, Message>,
    /// Visible messages in arrival order.
    ready: VecDeque<String>,
    /// Invisible messages (delayed or in flight) by the instant they return.
    hidden: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_seq: u64,
}

impl State {
    /// Moves every hidden message whose time has come to `ready`.
    fn reveal(&mut self, now: Instant) {
        while let Some(Reverse((at, generation, id))) = self.hidden.peek().cloned() {
            if at > now {
                break;
            }
            self.hidden.pop();
            if self
                .messages
                .get(&id)
                .is_some_and(|m| m.hidden_generation == generation)
            {
                self.ready.push_back(id);
            }
        }
    }

    fn hide(&mut self, id: &str, until: Instant) -> u64 {
        self.next_seq += 1;
        let generation = self.next_seq;
        if let Some(m) = self.messages.get_mut(id) {
            m.hidden_generation = generation;
        }
        self.hidden
            .push(Reverse((until, generation, id.to_string())));
        generation
    }

    fn next_reveal(&self) -> Option<Instant> {
        self.hidden.peek().map(|Reverse((at, _, _))| *at)
    }
}

pub struct MemoryQueue {
    name: String,
    settings: QueueSettings,
    // std Mutex: critical sections are short and never span an await.
    state: Mutex<State>,
    arrived: Notify,
}

impl MemoryQueue {
    pub fn new(name: impl Into<String>, settings: QueueSettings) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            settings,
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Messages in the queue, visible or not, now (tests and stats; the
    /// port's async [`Queue::depth`] breaks this down by state).
    pub fn message_count(&self) -> usize {
        self.state().messages.len()
    }

    /// Visible messages' bodies, without receiving them (tests, DLQ peeks).
    pub fn peek_bodies(&self) -> Vec<String> {
        self.peek().into_iter().map(|(body, _)| body).collect()
    }

    /// Visible messages' bodies and attributes, without receiving them.
    pub fn peek(&self) -> Vec<(String, Attributes)> {
        let mut s = self.state();
        s.reveal(Instant::now());
        s.ready
            .iter()
            .filter_map(|id| {
                s.messages
                    .get(id)
                    .map(|m| (m.body.clone(), m.attributes.clone()))
            })
            .collect()
    }

    fn enqueue(
        &self,
        body: String,
        attributes: Attributes,
        delay: Duration,
        sent_at_ms: i64,
        receive_count: u32,
    ) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut s = self.state();
        s.messages.insert(
            id.clone(),
            Message {
                id: id.clone(),
                body,
                attributes,
                receive_count,
                sent_at_ms,
                hidden_generation: 0,
                receipt_generation: 0,
            },
        );
        if delay.is_zero() {
            s.ready.push_back(id.clone());
        } else {
            s.hide(&id, Instant::now() + delay);
        }
        drop(s);
        self.arrived.notify_waiters();
        id
    }

    /// Takes up to `max` visible messages, redriving over-received ones.
    fn take(&self, max: usize, visibility: Duration) -> (Vec<ReceivedMessage>, Vec<Message>) {
        let now = Instant::now();
        let mut s = self.state();
        s.reveal(now);
        let mut out = Vec::new();
        let mut dead = Vec::new();
        while out.len() < max {
            let Some(id) = s.ready.pop_front() else { break };
            let over_limit = match (&self.settings.redrive, s.messages.get(&id)) {
                (Some(r), Some(m)) => m.receive_count >= r.max_receive_count,
                _ => false,
            };
            if over_limit {
                if let Some(m) = s.messages.remove(&id) {
                    dead.push(m);
                }
                continue;
            }
            let generation = s.hide(&id, now + visibility);
            let Some(m) = s.messages.get_mut(&id) else {
                continue;
            };
            m.receive_count += 1;
            m.receipt_generation = generation;
            out.push(ReceivedMessage {
                message_id: m.id.clone(),
                receipt_handle: format!("{}:{generation}", m.id),
                body: m.body.clone(),
                receive_count: m.receive_count,
                sent_at_ms: m.sent_at_ms,
                attributes: m.attributes.clone(),
            });
        }
        (out, dead)
    }

    fn parse_receipt(receipt: &str) -> Option<(&str, u64)> {
        let (id, generation) = receipt.rsplit_once(':')?;
        Some((id, generation.parse().ok()?))
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn arn(&self) -> String {
        format!("arn:aws:sqs:us-east-1:000000000000:{}", self.name)
    }

    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, QueueError> {
        if messages.len() > SQS_MAX_BATCH_ENTRIES {
            return Err(QueueError::Invalid {
                queue: self.name.clone(),
                message: format!(
                    "{} entries; at most {SQS_MAX_BATCH_ENTRIES}",
                    messages.len()
                )
                .into(),
            });
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut failed = Vec::new();
        for m in messages {
            if m.size() > self.settings.max_message_bytes {
                failed.push(FailedEntry {
                    id: m.id.clone(),
                    code: "InvalidParameterValue".into(),
                    message: format!(
                        "message is {} bytes; the limit is {}",
                        m.size(),
                        self.settings.max_message_bytes
                    ),
                    retryable: false,
                });
                continue;
            }
            if m.delay > SQS_MAX_DELAY {
                failed.push(FailedEntry {
                    id: m.id.clone(),
                    code: "InvalidParameterValue".into(),
                    message: format!("delay {:?} exceeds {:?}", m.delay, SQS_MAX_DELAY),
                    retryable: false,
                });
                continue;
            }
            self.enqueue(m.body.clone(), m.attributes.clone(), m.delay, now_ms, 0);
        }
        Ok(failed)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        // Checked before anything is taken, so a refused call loses nothing.
        check_sqs_receive(wait, visibility).map_err(|message| QueueError::Invalid {
            queue: self.name.clone(),
            message: message.into(),
        })?;
        let deadline = Instant::now() + wait;
        loop {
            // Register interest before looking, so a send between the look
            // and the wait still wakes us.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();

            let (got, dead) = self.take(max.clamp(1, SQS_MAX_BATCH_ENTRIES), visibility);
            if let Some(redrive) = &self.settings.redrive {
                for m in dead {
                    tracing::warn!(queue = %self.name, message_id = %m.id, receives = m.receive_count,
                        dead_letter_queue = %redrive.dead_letter.name, "moving message to dead-letter queue after maxReceiveCount");
                    redrive.dead_letter.enqueue(
                        m.body,
                        m.attributes,
                        Duration::ZERO,
                        m.sent_at_ms,
                        m.receive_count,
                    );
                }
            }
            let now = Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let wake_at = self
                .state()
                .next_reveal()
                .map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                _ = &mut arrived => {}
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<(), QueueError> {
        let mut s = self.state();
        for receipt in receipt_handles {
            // Like SQS, deleting with a stale or unknown receipt is not an
            // error; deleting with the current one removes the message.
            if let Some((id, generation)) = Self::parse_receipt(receipt)
                && s.messages
                    .get(id)
                    .is_some_and(|m| m.receipt_generation == generation)
            {
                s.messages.remove(id);
            }
        }
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let mut s = self.state();
        s.reveal(Instant::now());
        let visible = s.ready.len() as u64;
        // A hidden message is in flight when its latest hide was a receive
        // (or a visibility change after one); otherwise it is delayed.
        let in_flight = s
            .messages
            .values()
            .filter(|m| m.receipt_generation != 0 && !s.ready.contains(&m.id))
            .count() as u64;
        let total = s.messages.len() as u64;
        Ok(QueueDepth {
            visible,
            in_flight,
            delayed: total - visible - in_flight,
        })
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        check_sqs_receive(Duration::ZERO, timeout).map_err(|message| QueueError::Invalid {
            queue: self.name.clone(),
            message: message.into(),
        })?;
        let mut s = self.state();
        let current = Self::parse_receipt(receipt_handle).filter(|(id, generation)| {
            s.messages
                .get(*id)
                .is_some_and(|m| m.receipt_generation == *generation)
        });
        let Some((id, _)) = current else {
            return Err(QueueError::Invalid {
                queue: self.name.clone(),
                message: format!("receipt handle {receipt_handle} is not current").into(),
            });
        };
        let id = id.to_string();
        // The receipt stays valid, as in SQS: only the reveal time moves.
        s.hide(&id, Instant::now() + timeout);
        drop(s);
        self.arrived.notify_waiters();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, body: &str, delay: Duration) -> OutgoingMessage {
        OutgoingMessage::new(id, body).with_delay(delay)
    }

    const VIS: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn visibility_timeout_returns_unacked_messages_with_higher_count() {
        let q = MemoryQueue::new("q", QueueSettings::default());
        q.send_batch(&[msg("1", "a", Duration::ZERO)])
            .await
            .unwrap();
        let got = q.receive(10, Duration::ZERO, VIS).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, 1);
        assert!(q.receive(10, Duration::ZERO, VIS).await.unwrap().is_empty());
        tokio::time::advance(VIS + Duration::from_millis(1)).await;
        let again = q.receive(10, Duration::ZERO, VIS).await.unwrap();
        assert_eq!(again[0].body, "a");
        assert_eq!(again[0].receive_count, 2);
        // The first receipt is stale now: deleting with it does nothing.
        q.delete(std::slice::from_ref(&got[0].receipt_handle))
            .await
            .unwrap();
        assert_eq!(q.message_count(), 1);
        q.delete(std::slice::from_ref(&again[0].receipt_handle))
            .await
            .unwrap();
        assert_eq!(q.message_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn redrives_to_the_dlq_after_max_receive_count() {
        let dlq = MemoryQueue::new("dlq", QueueSettings::default());
        let q = MemoryQueue::new(
            "q",
            QueueSettings {
                redrive: Some(Redrive {
                    dead_letter: dlq.clone(),
                    max_receive_count: 3,
                }),
                ..QueueSettings::default()
            },
        );
        q.send_batch(&[msg("1", "poison", Duration::ZERO)])
            .await
            .unwrap();
        for n in 1..=3 {
            let got = q.receive(1, Duration::ZERO, VIS).await.unwrap();
            assert_eq!(got[0].receive_count, n);
            tokio::time::advance(VIS).await;
        }
        assert!(q.receive(1, Duration::ZERO, VIS).await.unwrap().is_empty());
        assert_eq!(q.message_count(), 0);
        assert_eq!(dlq.peek_bodies(), vec!["poison".to_string()]);
        let dead = dlq.receive(1, Duration::ZERO, VIS).await.unwrap();
        assert_eq!(dead[0].receive_count, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_hides_a_message_until_due_and_long_poll_waits_for_it() {
        let q = MemoryQueue::new("q", QueueSettings::default());
        q.send_batch(&[msg("1", "later", Duration::from_secs(5))])
            .await
            .unwrap();
        assert!(q.receive(1, Duration::ZERO, VIS).await.unwrap().is_empty());
        let started = Instant::now();
        let got = q.receive(1, Duration::from_secs(20), VIS).await.unwrap();
        assert_eq!(got[0].body, "later");
        assert_eq!(Instant::now() - started, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn long_poll_wakes_on_send() {
        let q = MemoryQueue::new("q", QueueSettings::default());
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.receive(1, Duration::from_secs(20), VIS).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.send_batch(&[msg("1", "x", Duration::ZERO)])
            .await
            .unwrap();
        assert_eq!(waiter.await.unwrap().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_range_timeouts_are_refused_before_anything_is_taken() {
        let q = MemoryQueue::new("q", QueueSettings::default());
        q.send_batch(&[OutgoingMessage::new("1", "kept")])
            .await
            .unwrap();
        let too_long = Duration::from_secs(u64::MAX);
        assert!(q.receive(10, Duration::ZERO, too_long).await.is_err());
        assert!(q.receive(10, Duration::from_secs(21), VIS).await.is_err());
        let got = q.receive(10, Duration::ZERO, VIS).await.unwrap();
        assert_eq!(got.len(), 1, "the refused calls took nothing");
        assert!(
            q.change_visibility(&got[0].receipt_handle, too_long)
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn change_visibility_reveals_early_and_keeps_the_receipt() {
        let q = MemoryQueue::new("q", QueueSettings::default());
        q.send_batch(&[msg("1", "x", Duration::ZERO)])
            .await
            .unwrap();
        let got = q.receive(1, Duration::ZERO, VIS).await.unwrap();
        q.change_visibility(&got[0].receipt_handle, Duration::ZERO)
            .await
            .unwrap();
        q.delete(std::slice::from_ref(&got[0].receipt_handle))
            .await
            .unwrap();
        assert_eq!(q.message_count(), 0);
        assert!(
            q.change_visibility(&got[0].receipt_handle, VIS)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn refuses_oversized_messages_and_batches() {
        let q = MemoryQueue::new(
            "q",
            QueueSettings {
                max_message_bytes: 4,
                ..QueueSettings::default()
            },
        );
        let failed = q
            .send_batch(&[
                msg("ok", "1234", Duration::ZERO),
                msg("big", "12345", Duration::ZERO),
            ])
            .await
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].id, "big");
        assert!(!failed[0].retryable);
        let eleven: Vec<_> = (0..11)
            .map(|i| msg(&i.to_string(), "x", Duration::ZERO))
            .collect();
        assert!(q.send_batch(&eleven).await.is_err());
    }
}
