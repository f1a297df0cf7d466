//! The queue contract: `MemoryQueue` and `SqsQueue` behave the same —
//! batches, attributes, visibility timeout, receive counts, delay, redrive
//! to the dead-letter queue, depth, and the DLQ operations.

use std::sync::Arc;
use std::time::Duration;

use fanout_aws::dlq;
use fanout_aws::provision;
use fanout_core::ports::{OutgoingMessage, Queue, QueueError};
use fanout_embedded::{MemoryQueue, QueueSettings, Redrive};

use crate::common::{sdk_config, unique};
use crate::contract;

/// A queue that dead-letters after 2 receives, and its dead-letter queue.
pub struct Subject {
    queue: Arc<dyn Queue>,
    dlq: Arc<dyn Queue>,
}

const MAX_RECEIVES: u32 = 2;

async fn embedded() -> Subject {
    let dlq = MemoryQueue::new("contract-dlq", QueueSettings::default());
    let queue = MemoryQueue::new(
        "contract",
        QueueSettings {
            redrive: Some(Redrive {
                dead_letter: dlq.clone(),
                max_receive_count: MAX_RECEIVES,
            }),
            ..QueueSettings::default()
        },
    );
    Subject { queue, dlq }
}

async fn aws(endpoint: &str) -> Subject {
    let client = aws_sdk_sqs::Client::new(&sdk_config(endpoint).await);
    let name = unique("fanout-contract");
    let dlq = provision::queue(
        &client,
        &format!("{name}-dlq"),
        Duration::from_secs(30),
        None,
    )
    .await
    .unwrap();
    let queue = provision::queue(
        &client,
        &name,
        Duration::from_secs(30),
        Some((&dlq, MAX_RECEIVES)),
    )
    .await
    .unwrap();
    Subject {
        queue: Arc::new(queue),
        dlq: Arc::new(dlq),
    }
}

fn message(id: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage::new(id, body)
}

const HOLD: Duration = Duration::from_secs(30);

async fn send_receive_delete(s: Subject) {
    let q = s.queue.as_ref();
    let mut with_attributes = message("2", "three");
    with_attributes
        .attributes
        .insert("ERROR_CODE".into(), "Throttled".into());
    let failed = q
        .send_batch(&[message("0", "one"), message("1", "two"), with_attributes])
        .await
        .unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(q.depth().await.unwrap().visible, 3);

    let mut got = q.receive(10, Duration::from_secs(1), HOLD).await.unwrap();
    while got.len() < 3 {
        let more = q.receive(10, Duration::from_secs(1), HOLD).await.unwrap();
        assert!(!more.is_empty(), "only {} of 3 received", got.len());
        got.extend(more);
    }
    got.sort_by(|a, b| a.body.cmp(&b.body));
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["one", "three", "two"]);
    assert!(got.iter().all(|m| m.receive_count == 1 && m.sent_at_ms > 0));
    assert_eq!(got[1].attributes["ERROR_CODE"], "Throttled");
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 3));

    let handles: Vec<String> = got.iter().map(|m| m.receipt_handle.clone()).collect();
    q.delete(&handles).await.unwrap();
    assert_eq!(q.depth().await.unwrap().total(), 0);
    assert!(
        q.receive(10, Duration::ZERO, HOLD)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn refusals(s: Subject) {
    let q = s.queue.as_ref();
    let big = "x".repeat(256 * 1024 + 1);
    let failed = q
        .send_batch(&[message("ok", "fine"), message("big", &big)])
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, "big");
    assert!(!failed[0].retryable, "an oversized message never fits");
    let eleven: Vec<OutgoingMessage> = (0..11).map(|i| message(&i.to_string(), "m")).collect();
    assert!(matches!(
        q.send_batch(&eleven).await,
        Err(QueueError::Invalid { .. })
    ));
    assert_eq!(q.depth().await.unwrap().total(), 1);
}

async fn visibility_and_receive_counts(s: Subject) {
    let q = s.queue.as_ref();
    q.send_batch(&[message("0", "m")]).await.unwrap();
    let first = q
        .receive(1, Duration::from_secs(1), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        q.receive(1, Duration::ZERO, HOLD).await.unwrap().is_empty(),
        "hidden while its visibility timeout runs"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let second = q.receive(1, Duration::from_secs(2), HOLD).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message_id, first[0].message_id);
    assert_eq!(second[0].receive_count, 2);
    // Made visible again at once.
    q.change_visibility(&second[0].receipt_handle, Duration::ZERO)
        .await
        .unwrap();
    // Past maxReceiveCount (2), the next receive moves it to the DLQ.
    let third = q.receive(1, Duration::from_secs(1), HOLD).await.unwrap();
    assert!(third.is_empty(), "{third:?}");
    let dead = s
        .dlq
        .receive(1, Duration::from_secs(2), HOLD)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "m");
}

async fn delay(s: Subject) {
    let q = s.queue.as_ref();
    q.send_batch(&[message("0", "later").with_delay(Duration::from_secs(2))])
        .await
        .unwrap();
    assert!(q.receive(1, Duration::ZERO, HOLD).await.unwrap().is_empty());
    assert_eq!(q.depth().await.unwrap().delayed, 1);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let got = q.receive(1, Duration::from_secs(2), HOLD).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "later");
}

async fn dead_letter_operations(s: Subject) {
    let dead = s.dlq.as_ref();
    let mut messages = Vec::new();
    for i in 0..4 {
        let mut m = message(&i.to_string(), &format!("dead {i}"));
        m.attributes.insert("ERROR_CODE".into(), format!("E{i}"));
        messages.push(m);
    }
    dead.send_batch(&messages).await.unwrap();

    let peeked = dlq::peek(dead, 10).await.unwrap();
    assert_eq!(peeked.len(), 4);
    assert_eq!(
        dead.depth().await.unwrap().visible,
        4,
        "peeking consumes nothing"
    );

    let moved = dlq::redrive(dead, s.queue.as_ref(), 100, None)
        .await
        .unwrap();
    assert_eq!(moved, 4);
    assert_eq!(dead.depth().await.unwrap().total(), 0);
    let mut back = Vec::new();
    while back.len() < 4 {
        let got = s
            .queue
            .receive(10, Duration::from_secs(1), HOLD)
            .await
            .unwrap();
        assert!(!got.is_empty(), "only {} of 4 redriven", back.len());
        back.extend(got);
    }
    back.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(back[2].body, "dead 2");
    assert_eq!(back[2].attributes["ERROR_CODE"], "E2");
}

contract!(queue_send_receive_delete: send_receive_delete, embedded = embedded, aws = aws);
contract!(queue_refusals: refusals, embedded = embedded, aws = aws);
contract!(queue_visibility_and_receive_counts: visibility_and_receive_counts, embedded = embedded, aws = aws);
contract!(queue_delay: delay, embedded = embedded, aws = aws);
contract!(queue_dead_letter_operations: dead_letter_operations, embedded = embedded, aws = aws);
