//! Event source mappings: the loops that drive a handler from a queue the
//! way Lambda's SQS event source mapping does — up to `max_concurrency`
//! concurrent invocations (one worker each, like a warm execution
//! environment), each with up to `batch_size` messages gathered for at most
//! `batching_window`, messages hidden for the visibility timeout, a
//! deadline of `function_timeout` after which the invocation is killed,
//! successes deleted, and `batchItemFailures` (or a failed, timed-out or
//! panicking invocation) left to reappear after the visibility timeout.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use fanout_core::ports::{Queue, ReceivedMessage};
use futures::future::BoxFuture;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::faults::{CrashPoint, Faults};

/// A mapping-triggered function: the event and the invocation's
/// deadline; an `Err` is a failed invocation (a bootstrap's error
/// response, crash or init error).
pub type MappingHandler<E, R> =
    Arc<dyn Fn(E, Instant) -> BoxFuture<'static, Result<R, InvocationFailure>> + Send + Sync>;

/// An SQS-triggered function.
pub type SqsHandler = MappingHandler<SqsEvent, SqsBatchResponse>;

/// How long one receive call long-polls.
const LONG_POLL: Duration = Duration::from_secs(20);

/// Why an invocation produced no response.
#[derive(Debug, thiserror::Error)]
pub enum InvocationFailure {
    #[error("invocation failed: {0}")]
    Failed(tokio::task::JoinError),
    #[error("invocation timed out")]
    TimedOut,
    /// What a bootstrap's invocation ended with instead of a response.
    #[error("{0}")]
    Bootstrap(String),
}

/// Runs one invocation as Lambda does: on a task of its own, so a
/// panicking handler is an invocation error and not the end of the
/// poller, and killed at its deadline.
pub async fn invoke_until<T: Send + 'static>(
    deadline: Instant,
    work: impl Future<Output = Result<T, InvocationFailure>> + Send + 'static,
) -> Result<T, InvocationFailure> {
    let mut task = tokio::spawn(work);
    match tokio::time::timeout_at(deadline, &mut task).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => Err(InvocationFailure::Failed(error)),
        Err(_) => {
            task.abort();
            Err(InvocationFailure::TimedOut)
        }
    }
}

#[derive(Clone)]
pub struct EventSourceMapping {
    pub function: &'static str,
    pub queue: Arc<dyn Queue>,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub max_concurrency: usize,
    pub visibility_timeout: Duration,
    /// The function's timeout: each invocation's deadline.
    pub function_timeout: Duration,
    /// Injected worker crashes (`--fault-crash`).
    pub faults: Option<Arc<Faults>>,
}

impl EventSourceMapping {
    /// Starts the pollers on `tasks`; they stop when `shutdown` fires.
    /// `handler_for` builds each worker's handler once, as an execution
    /// environment builds its clients once (e.g. its own rate limiter).
    pub fn spawn(
        &self,
        handler_for: impl Fn(usize) -> SqsHandler,
        shutdown: CancellationToken,
        tasks: &mut JoinSet<()>,
    ) {
        for worker in 0..self.max_concurrency.max(1) {
            let mapping = self.clone();
            let handler = handler_for(worker);
            let shutdown = shutdown.clone();
            tasks.spawn(async move { mapping.poll(worker, handler, shutdown).await });
        }
    }

    async fn poll(self, worker: usize, handler: SqsHandler, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return,
                batch = self.gather() => batch,
            };
            if batch.is_empty() {
                continue;
            }
            self.invoke(worker, &handler, batch).await;
        }
    }

    /// Receives until the batch is full, or the window closes after the
    /// first message.
    async fn gather(&self) -> Vec<ReceivedMessage> {
        let mut batch = Vec::new();
        let mut window_end = None;
        while batch.len() < self.batch_size {
            let wait = match window_end {
                None => LONG_POLL,
                Some(end) => {
                    let left = end - tokio::time::Instant::now().min(end);
                    if left.is_zero() {
                        break;
                    }
                    left
                }
            };
            match self
                .queue
                .receive(self.batch_size - batch.len(), wait, self.visibility_timeout)
                .await
            {
                Ok(got) if got.is_empty() && window_end.is_some() => break,
                Ok(got) => batch.extend(got),
                Err(error) => {
                    tracing::error!(function = self.function, queue = self.queue.name(), %error, "receive failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
            if window_end.is_none() && !batch.is_empty() {
                if self.batching_window.is_zero() {
                    break;
                }
                window_end = Some(tokio::time::Instant::now() + self.batching_window);
            }
        }
        batch
    }

    async fn invoke(&self, worker: usize, handler: &SqsHandler, batch: Vec<ReceivedMessage>) {
        let event = self.event(&batch);
        let deadline = Instant::now() + self.function_timeout;
        let crash = self.faults.as_ref().and_then(|f| f.crash_point());
        let work = handler(event, deadline);
        let invocation = invoke_until(deadline, async move {
            if crash == Some(CrashPoint::BeforeWork) {
                panic!("injected worker crash (--fault-crash) before the handler ran");
            }
            let response = work.await;
            if crash == Some(CrashPoint::AfterWork) {
                panic!("injected worker crash (--fault-crash) after the handler's work");
            }
            response
        });
        let response = match invocation.await {
            Ok(response) => response,
            Err(failure) => {
                tracing::error!(function = self.function, worker, %failure, timeout = ?self.function_timeout,
                    messages = batch.len(), "the batch returns after the visibility timeout");
                return;
            }
        };
        let failed: HashSet<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let done: Vec<String> = batch
            .iter()
            .filter(|m| !failed.contains(m.message_id.as_str()))
            .map(|m| m.receipt_handle.clone())
            .collect();
        if let Err(error) = self.queue.delete(&done).await {
            tracing::error!(function = self.function, %error, "could not delete processed messages; they will be processed again");
        }
    }

    fn event(&self, batch: &[ReceivedMessage]) -> SqsEvent {
        let arn = self.queue.arn();
        let mut event = SqsEvent::default();
        event.records = batch
            .iter()
            .map(|m| {
                let mut record = SqsMessage::default();
                record.message_id = Some(m.message_id.clone());
                record.receipt_handle = Some(m.receipt_handle.clone());
                record.body = Some(m.body.clone());
                record.attributes = [
                    (
                        "ApproximateReceiveCount".to_string(),
                        m.receive_count.to_string(),
                    ),
                    ("SentTimestamp".to_string(), m.sent_at_ms.to_string()),
                ]
                .into();
                record.event_source = Some("aws:sqs".into());
                record.event_source_arn = Some(arn.clone());
                record.aws_region = Some("us-east-1".into());
                record
            })
            .collect();
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::BatchItemFailure;
    use fanout_core::ports::OutgoingMessage;
    use fanout_embedded::{MemoryQueue, QueueSettings, Redrive};
    use std::sync::Mutex;

    async fn send(q: &MemoryQueue, bodies: &[&str]) {
        let msgs: Vec<OutgoingMessage> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| OutgoingMessage::new(i.to_string(), *b))
            .collect();
        q.send_batch(&msgs).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn failures_panics_and_timeouts_come_back_and_end_in_the_dlq_successes_are_deleted() {
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
        send(&q, &["ok", "fail", "panic", "slow", "error"]).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let handler: SqsHandler = Arc::new(move |event: SqsEvent, _deadline| {
            let seen = seen2.clone();
            Box::pin(async move {
                let mut response = SqsBatchResponse::default();
                for r in &event.records {
                    let body = r.body.clone().unwrap();
                    seen.lock().unwrap().push(body.clone());
                    if body == "panic" {
                        panic!("handler crashed");
                    }
                    if body == "error" {
                        // A bootstrap's error response, crash or init error.
                        return Err(InvocationFailure::Bootstrap("Runtime exited".into()));
                    }
                    if body == "slow" {
                        // Past the 5 s function timeout: killed.
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                    if body == "fail" {
                        let mut f = BatchItemFailure::default();
                        f.item_identifier = r.message_id.clone().unwrap();
                        response.batch_item_failures.push(f);
                    }
                }
                Ok(response)
            })
        });
        let mapping = EventSourceMapping {
            function: "test",
            queue: q.clone(),
            batch_size: 1,
            batching_window: Duration::ZERO,
            max_concurrency: 1,
            visibility_timeout: Duration::from_secs(30),
            function_timeout: Duration::from_secs(5),
            faults: None,
        };
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        mapping.spawn(|_| handler.clone(), shutdown.clone(), &mut tasks);
        tokio::time::sleep(Duration::from_secs(300)).await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        assert_eq!(q.message_count(), 0);
        let mut dead = dlq.peek_bodies();
        dead.sort();
        assert_eq!(dead, ["error", "fail", "panic", "slow"]);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.iter().filter(|b| *b == "ok").count(), 1);
        assert_eq!(seen.iter().filter(|b| *b == "fail").count(), 3);
        assert_eq!(seen.iter().filter(|b| *b == "panic").count(), 3);
        assert_eq!(seen.iter().filter(|b| *b == "slow").count(), 3);
        assert_eq!(seen.iter().filter(|b| *b == "error").count(), 3);
    }
}
