//! The event source mapping of the table's change records, as Lambda runs
//! one on a DynamoDB stream: one invocation at a time per shard (the feed
//! is one shard), in order, up to `batch_size` records; records outside
//! the sweeper's filter never invoke it (Lambda's `FilterCriteria`). A
//! batch that fails is retried from the first failed record
//! (`ReportBatchItemFailures`), halved when the whole invocation failed
//! (`BisectBatchOnFunctionError`), with backoff; after
//! `max_retry_attempts` it is described in the on-failure queue (Lambda's
//! OnFailure destination gets the batch's position, not its records) and
//! skipped, so one poison record cannot stop the shard.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use fanout_core::backoff::Backoff;
use fanout_core::changes::{SWEEPER_FILTER_PATTERN, is_connection_removal};
use fanout_core::ports::{ChangeFeed, OutgoingMessage, Queue};

use crate::esm::{MappingHandler, invoke_until};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A stream-triggered function.
pub type StreamHandler = MappingHandler<Event, DynamoDbEventResponse>;

/// How long one read of the feed waits for a first record.
const READ_WAIT: Duration = Duration::from_secs(1);
/// Backoff between retries of a failing batch.
const RETRY_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(5),
};

#[derive(Clone)]
pub struct StreamMapping {
    pub function: &'static str,
    pub feed: Arc<dyn ChangeFeed>,
    pub batch_size: usize,
    pub max_retry_attempts: u32,
    pub function_timeout: Duration,
    /// Where exhausted batches are described.
    pub on_failure: Arc<dyn Queue>,
}

/// What one invocation left to do.
enum Attempt {
    /// Every record is done.
    Done,
    /// The records before this index are done; retry from it.
    FailedAt(usize),
    /// The invocation itself failed (error, panic, timeout).
    FunctionError,
}

impl StreamMapping {
    /// Starts the poller on `tasks`; it stops when `shutdown` fires.
    pub fn spawn(
        &self,
        handler: StreamHandler,
        shutdown: CancellationToken,
        tasks: &mut JoinSet<()>,
    ) {
        let mapping = self.clone();
        tasks.spawn(async move { mapping.poll(handler, shutdown).await });
    }

    async fn poll(self, handler: StreamHandler, shutdown: CancellationToken) {
        let mut retries = 0u32;
        let mut size = self.batch_size.max(1);
        while !shutdown.is_cancelled() {
            let records = tokio::select! {
                _ = shutdown.cancelled() => return,
                read = self.feed.read(size, READ_WAIT) => read,
            };
            let records = match records {
                Ok(records) if records.is_empty() => continue,
                Ok(records) => records,
                Err(error) => {
                    tracing::error!(function = self.function, %error, "could not read the change feed");
                    tokio::time::sleep(READ_WAIT).await;
                    continue;
                }
            };
            // The filter: records it drops are passed over, uninvoked.
            let passed = records
                .iter()
                .take_while(|r| is_connection_removal(r))
                .count();
            if passed == 0 {
                let dropped = records
                    .iter()
                    .take_while(|r| !is_connection_removal(r))
                    .count();
                self.feed.acknowledge(dropped).await;
                continue;
            }
            let batch = &records[..passed];
            match self.invoke(&handler, batch).await {
                Attempt::Done => {
                    self.feed.acknowledge(batch.len()).await;
                    (retries, size) = (0, self.batch_size.max(1));
                    continue;
                }
                Attempt::FailedAt(index) => {
                    // What came before the failed record is done.
                    self.feed.acknowledge(index).await;
                }
                Attempt::FunctionError if batch.len() > 1 => size = batch.len().div_ceil(2),
                Attempt::FunctionError => {}
            }
            retries += 1;
            if retries > self.max_retry_attempts {
                self.give_up(batch).await;
                (retries, size) = (0, self.batch_size.max(1));
                continue;
            }
            tokio::time::sleep(RETRY_BACKOFF.jittered(retries)).await;
        }
    }

    async fn invoke(&self, handler: &StreamHandler, batch: &[EventRecord]) -> Attempt {
        let mut event = Event::default();
        event.records = batch.to_vec();
        let deadline = Instant::now() + self.function_timeout;
        let response = match invoke_until(deadline, handler(event, deadline)).await {
            Ok(response) => response,
            Err(failure) => {
                tracing::error!(function = self.function, %failure, timeout = ?self.function_timeout,
                    records = batch.len(), "the batch is retried");
                return Attempt::FunctionError;
            }
        };
        let Some(failure) = response.batch_item_failures.first() else {
            return Attempt::Done;
        };
        // An identifier that names no record of the batch fails it all, as
        // Lambda treats it.
        let index = batch.iter().position(|r| {
            r.change.sequence_number.is_some()
                && r.change.sequence_number == failure.item_identifier
        });
        Attempt::FailedAt(index.unwrap_or(0))
    }

    /// Describes an exhausted batch in the on-failure queue (as Lambda's
    /// OnFailure destination does) and skips it.
    async fn give_up(&self, batch: &[EventRecord]) {
        let sequence = |r: Option<&EventRecord>| {
            r.and_then(|r| r.change.sequence_number.clone())
                .unwrap_or_default()
        };
        let body = serde_json::json!({
            "requestContext": {
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": self.max_retry_attempts + 1,
                "functionArn": format!("arn:aws:lambda:us-east-1:000000000000:function:{}", self.function),
            },
            "responseContext": {"functionError": "Unhandled"},
            "DDBStreamBatchInfo": {
                "startSequenceNumber": sequence(batch.first()),
                "endSequenceNumber": sequence(batch.last()),
                "batchSize": batch.len(),
                "filter": SWEEPER_FILTER_PATTERN,
            },
        });
        let message = OutgoingMessage::new("0", body.to_string());
        if let Err(error) = self.on_failure.send_batch(&[message]).await {
            tracing::error!(function = self.function, %error, "could not report an exhausted batch");
        }
        tracing::error!(
            function = self.function,
            records = batch.len(),
            queue = self.on_failure.name(),
            "batch failed past its retries; skipped and reported"
        );
        self.feed.acknowledge(batch.len()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::streams::DynamoDbBatchItemFailure;
    use fanout_core::clock::ManualClock;
    use fanout_core::ids::{ConnectionId, TenantId, UserId};
    use fanout_core::ports::{ConnectionRecord, ConnectionStore};
    use fanout_embedded::{MemoryQueue, MemoryStore, QueueSettings};
    use std::sync::Mutex;

    fn record(id: &str) -> ConnectionRecord {
        ConnectionRecord {
            id: ConnectionId::new(id).unwrap(),
            tenant: TenantId::new("acme").unwrap(),
            user: UserId::new("u").unwrap(),
            connected_at_ms: 0,
            last_seen_ms: 0,
            ttl: i64::MAX,
            idle_until: i64::MAX,
            token_expires_at: i64::MAX,
            capabilities: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_from_the_failed_record_bisects_and_reports_a_poison_record() {
        let store = Arc::new(MemoryStore::new(ManualClock::at_ms(1_000), 1));
        for id in ["a", "b", "poison", "c"] {
            store.put_connection(&record(id)).await.unwrap();
        }
        for id in ["a", "b", "poison", "c"] {
            store
                .delete_connection(&ConnectionId::new(id).unwrap())
                .await
                .unwrap();
        }
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen2 = seen.clone();
        let handler: StreamHandler = Arc::new(move |event: Event, _| {
            let seen = seen2.clone();
            Box::pin(async move {
                let mut response = DynamoDbEventResponse::default();
                for r in &event.records {
                    let id = fanout_core::changes::connection_from_image(&r.change.old_image)
                        .unwrap()
                        .id
                        .to_string();
                    seen.lock().unwrap().push(id.clone());
                    if id == "poison" {
                        let mut f = DynamoDbBatchItemFailure::default();
                        f.item_identifier = r.change.sequence_number.clone();
                        response.batch_item_failures.push(f);
                        break;
                    }
                }
                Ok(response)
            })
        });
        let dlq = MemoryQueue::new("sweeper-dlq", QueueSettings::default());
        let mapping = StreamMapping {
            function: "sweeper",
            feed: store.clone(),
            batch_size: 10,
            max_retry_attempts: 2,
            function_timeout: Duration::from_secs(5),
            on_failure: dlq.clone(),
        };
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        mapping.spawn(handler, shutdown.clone(), &mut tasks);
        tokio::time::sleep(Duration::from_secs(60)).await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        let seen = seen.lock().unwrap().clone();
        // a and b once; the poison record three times (first try and two
        // retries, each starting from it); then the retried batch (poison
        // and c) is reported and skipped, as Lambda does.
        assert_eq!(seen, ["a", "b", "poison", "poison", "poison"]);
        let reports = dlq.peek_bodies();
        assert_eq!(reports.len(), 1);
        let report: serde_json::Value = serde_json::from_str(&reports[0]).unwrap();
        assert_eq!(report["DDBStreamBatchInfo"]["batchSize"], 2);
        assert!(store.read(10, Duration::ZERO).await.unwrap().is_empty());
    }
}
