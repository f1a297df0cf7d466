//! The event bus contract: `MemoryBus` and `EventBridgeBus` (with a rule
//! targeting a queue) behave the same.

use std::sync::Arc;
use std::time::Duration;

use fanout_aws::{EventBridgeBus, provision};
use fanout_core::clock::SystemClock;
use fanout_core::event::EventEnvelope;
use fanout_core::ports::{BusEntry, BusError, EventBus, Queue, publish};
use fanout_embedded::pattern::Pattern;
use fanout_embedded::{BusRule, MemoryBus, MemoryQueue, QueueSettings};

use crate::common::{sdk_config, unique};
use crate::contract;

const PATTERN: &str = r#"{"detail-type":["fanout.broadcast"]}"#;

/// A bus whose rule sends broadcasts to `target`.
pub struct Subject {
    bus: Arc<dyn EventBus>,
    target: Arc<dyn Queue>,
}

async fn embedded() -> Subject {
    let target = MemoryQueue::new("plan", QueueSettings::default());
    let rule = BusRule::new(
        "broadcasts",
        Pattern::parse(PATTERN).unwrap(),
        target.clone(),
    );
    Subject {
        bus: Arc::new(MemoryBus::new("fanout", Arc::new(SystemClock), vec![rule])),
        target,
    }
}

async fn aws(endpoint: &str) -> Subject {
    let config = sdk_config(endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = unique("fanout-contract");
    let target = provision::queue(&sqs, &name, Duration::from_secs(30), None)
        .await
        .unwrap();
    let dlq = provision::queue(&sqs, &format!("{name}-dlq"), Duration::from_secs(30), None)
        .await
        .unwrap();
    let eventbridge = aws_sdk_eventbridge::Client::new(&config);
    provision::bus_rule(
        &eventbridge,
        &provision::RuleSpec {
            bus: &name,
            rule: "broadcasts",
            pattern: PATTERN,
            target: &target,
            maximum_retry_attempts: 3,
            maximum_event_age: Duration::from_secs(3_600),
            dead_letter: &dlq,
        },
    )
    .await
    .unwrap();
    Subject {
        bus: Arc::new(EventBridgeBus::new(eventbridge, name)),
        target: Arc::new(target),
    }
}

async fn routes_matching_events_in_an_envelope(s: Subject) {
    let ids = publish(
        s.bus.as_ref(),
        &[
            BusEntry::new(
                "acme.orders",
                "fanout.broadcast",
                r#"{"tenant":"acme","n":1}"#,
            ),
            BusEntry::new("acme.orders", "fanout.room.joined", r#"{"tenant":"acme"}"#),
        ],
    )
    .await
    .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|id| !id.is_empty()));
    // Delivery to a target is asynchronous on AWS: wait for it.
    let got = s
        .target
        .receive(10, Duration::from_secs(10), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "only the matching event arrives");
    let envelope: EventEnvelope = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(envelope.id, ids[0]);
    assert_eq!(envelope.detail_type, "fanout.broadcast");
    assert_eq!(envelope.source, "acme.orders");
    let detail: serde_json::Value = serde_json::from_str(envelope.detail.get()).unwrap();
    assert_eq!(detail, serde_json::json!({"tenant":"acme","n":1}));
    assert!(
        s.target
            .receive(10, Duration::from_secs(2), Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn refuses_bad_calls_before_sending(s: Subject) {
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(256 * 1024));
    let err = s
        .bus
        .put_events(&[
            BusEntry::new("acme", "fanout.broadcast", r#"{"tenant":"acme"}"#),
            BusEntry::new("acme", "fanout.broadcast", big),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("entry 1"), "{err}");
    let eleven: Vec<BusEntry> = (0..11)
        .map(|_| BusEntry::new("acme", "fanout.broadcast", "{}"))
        .collect();
    assert!(matches!(
        s.bus.put_events(&eleven).await,
        Err(BusError::Invalid(_))
    ));
    assert!(matches!(
        s.bus.put_events(&[]).await,
        Err(BusError::Invalid(_))
    ));
    assert!(
        s.target
            .receive(10, Duration::from_secs(2), Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "nothing of a refused call is delivered"
    );
}

contract!(bus_routes_matching_events: routes_matching_events_in_an_envelope, embedded = embedded, aws = aws);
contract!(bus_refuses_bad_calls: refuses_bad_calls_before_sending, embedded = embedded, aws = aws);
