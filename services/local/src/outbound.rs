//! The frames posted to one connection and not yet taken by its socket
//! task. A deque behind a short lock and a `Notify`, not a channel: an
//! idle connection's empty deque allocates nothing (a Tokio channel
//! allocates its first block of 32 slots, about 1.5 KiB, when created),
//! and the socket task takes everything queued in one turn.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use axum::extract::ws::Message;
use tokio::sync::Notify;

/// A deque that grew past this many slots is given back once empty, so
/// a burst does not stay allocated on a connection that goes quiet.
const KEEP_EMPTY_SLOTS: usize = 16;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds its most frames.
    Full,
    /// The socket task has ended.
    Closed,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Message>,
    closed: bool,
}

pub struct Outbound {
    queue: Mutex<Queue>,
    capacity: usize,
    ready: Notify,
}

impl Outbound {
    /// A queue of at most `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `frame` and wakes the socket task.
    pub fn push(&self, frame: Message) -> Result<(), Refused> {
        {
            let mut queue = self.lock();
            if queue.closed {
                return Err(Refused::Closed);
            }
            if queue.frames.len() >= self.capacity {
                return Err(Refused::Full);
            }
            queue.frames.push_back(frame);
        }
        // A permit is kept when the task is not waiting, so no wake-up
        // is lost between its last `pop` and its next `ready`.
        self.ready.notify_one();
        Ok(())
    }

    /// The oldest queued frame.
    pub fn pop(&self) -> Option<Message> {
        let mut queue = self.lock();
        let frame = queue.frames.pop_front();
        if queue.frames.is_empty() && queue.frames.capacity() > KEEP_EMPTY_SLOTS {
            queue.frames = VecDeque::new();
        }
        frame
    }

    /// Resolves when frames may have been queued since the last call.
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Wakes the task again: it stopped taking frames before the queue
    /// was empty.
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// Refuses every later frame (the socket task has ended) and drops
    /// those queued.
    pub fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        queue.frames = VecDeque::new();
    }

    pub fn len(&self) -> usize {
        self.lock().frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_come_out_in_order_and_a_push_wakes_the_reader() {
        let outbound = Outbound::new(3);
        for text in ["a", "b", "c"] {
            outbound.push(Message::Text(text.into())).unwrap();
        }
        assert_eq!(outbound.push(Message::Text("d".into())), Err(Refused::Full));
        // The pushes left a permit: ready resolves at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), outbound.ready())
            .await
            .unwrap();
        let texts: Vec<_> = std::iter::from_fn(|| outbound.pop())
            .map(|m| m.into_text().unwrap().to_string())
            .collect();
        assert_eq!(texts, ["a", "b", "c"]);
        assert!(outbound.is_empty());
    }

    #[tokio::test]
    async fn a_closed_queue_refuses_and_holds_nothing() {
        let outbound = Outbound::new(8);
        outbound.push(Message::Text("a".into())).unwrap();
        outbound.close();
        assert_eq!(outbound.pop(), None);
        assert_eq!(
            outbound.push(Message::Text("b".into())),
            Err(Refused::Closed)
        );
    }

    #[test]
    fn a_burst_is_given_back_once_drained() {
        let outbound = Outbound::new(1_000);
        for _ in 0..100 {
            outbound.push(Message::Text("x".into())).unwrap();
        }
        while outbound.pop().is_some() {}
        assert!(outbound.lock().frames.capacity() <= KEEP_EMPTY_SLOTS);
    }
}
