//! An in-process event bus with EventBridge semantics: PutEvents validates
//! each entry, wraps it in the EventBridge envelope, and every rule whose
//! event pattern matches sends the envelope to its target queue. A target
//! that refuses is retried in the background with backoff under the rule's
//! retry policy; an event that still fails (or fails for a reason retrying
//! cannot fix) goes to the rule's dead-letter queue with the error in its
//! message attributes, as EventBridge does.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::value::RawValue;

use crate::pattern::Pattern;
use fanout_core::backoff::Backoff;
use fanout_core::clock::Clock;
use fanout_core::event::EventEnvelope;
use fanout_core::limits::{EVENTBRIDGE_MAX_ENTRIES, EVENTBRIDGE_MAX_ENTRY_BYTES};
use fanout_core::ports::{
    Attributes, BusEntry, BusError, EntryOutcome, EventBus, OutgoingMessage, Queue, QueueError,
    check_entry_sizes, send_all,
};

/// A target's retry policy (EventBridge's `RetryPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (0 – 185).
    pub maximum_retry_attempts: u32,
    /// An event older than this is not retried (60 s – 24 h).
    pub maximum_event_age: Duration,
}

impl Default for RetryPolicy {
    /// EventBridge's defaults when a target sets none.
    fn default() -> Self {
        Self {
            maximum_retry_attempts: 185,
            maximum_event_age: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// Delays between a target's retries.
const TARGET_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(60),
};

/// A rule: events matching `pattern` go to `target`.
pub struct BusRule {
    pub name: String,
    pub pattern: Pattern,
    pub target: Arc<dyn Queue>,
    pub retry: RetryPolicy,
    /// Where events go that could not be delivered (the target's
    /// `DeadLetterConfig`). Without one they are dropped, as in EventBridge.
    pub dead_letter: Option<Arc<dyn Queue>>,
}

impl BusRule {
    /// A rule with EventBridge's default retry policy and no dead-letter
    /// queue.
    pub fn new(name: impl Into<String>, pattern: Pattern, target: Arc<dyn Queue>) -> Self {
        Self {
            name: name.into(),
            pattern,
            target,
            retry: RetryPolicy::default(),
            dead_letter: None,
        }
    }
}

pub struct MemoryBus {
    name: String,
    clock: Arc<dyn Clock>,
    rules: Vec<Arc<BusRule>>,
}

/// Why one delivery to a target failed, and whether retrying can help.
struct TargetError {
    code: String,
    message: String,
    retryable: bool,
}

impl MemoryBus {
    pub fn new(name: impl Into<String>, clock: Arc<dyn Clock>, rules: Vec<BusRule>) -> Self {
        Self {
            name: name.into(),
            clock,
            rules: rules.into_iter().map(Arc::new).collect(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why EventBridge would refuse this entry, if it would; else the
    /// parsed detail, which pattern matching needs.
    fn check(entry: &BusEntry) -> Result<serde_json::Value, (String, String)> {
        let invalid = |m: String| Err(("InvalidArgument".to_string(), m));
        if entry.source.is_empty() || entry.detail_type.is_empty() {
            return invalid("Source and DetailType are required".into());
        }
        if entry.source.starts_with("aws.") {
            return Err((
                "NotAuthorizedForSourceException".into(),
                format!("source '{}' is reserved for AWS services", entry.source),
            ));
        }
        match serde_json::from_str::<serde_json::Value>(&entry.detail) {
            Ok(detail @ serde_json::Value::Object(_)) => Ok(detail),
            _ => Err((
                "MalformedDetail".into(),
                "Detail must be a JSON object".into(),
            )),
        }
    }

    /// The envelope as JSON text (what targets receive) and as a value
    /// (what patterns match), built without parsing the text again.
    fn envelope(
        &self,
        entry: &BusEntry,
        detail: serde_json::Value,
        id: &str,
    ) -> Result<(String, serde_json::Value), serde_json::Error> {
        // Millisecond precision (EventBridge sends whole seconds) so the
        // publish-to-post latency metric is meaningful locally.
        let time = fanout_core::clock::rfc3339_ms(self.clock.now_ms());
        let envelope = EventEnvelope {
            version: "0".into(),
            id: id.to_string(),
            detail_type: entry.detail_type.clone(),
            source: entry.source.clone(),
            account: "000000000000".into(),
            time,
            region: "us-east-1".into(),
            resources: entry.resources.clone(),
            detail: RawValue::from_string(entry.detail.clone())?,
        };
        let text = serde_json::to_string(&envelope)?;
        let value = serde_json::json!({
            "version": envelope.version,
            "id": envelope.id,
            "detail-type": envelope.detail_type,
            "source": envelope.source,
            "account": envelope.account,
            "time": envelope.time,
            "region": envelope.region,
            "resources": envelope.resources,
            "detail": detail,
        });
        Ok((text, value))
    }

    /// Sends the event to every matching rule's target. A failed send is
    /// retried in the background, so PutEvents never waits on a target.
    async fn route(&self, envelope: &str, as_value: &serde_json::Value, id: &str) {
        for rule in self.rules.iter().filter(|r| r.pattern.matches(as_value)) {
            let Err(error) = send_to_target(rule.target.as_ref(), envelope).await else {
                continue;
            };
            let delivery = TargetDelivery {
                bus: self.name.clone(),
                rule: rule.clone(),
                event_id: id.to_string(),
                envelope: envelope.to_string(),
                first_try: tokio::time::Instant::now(),
            };
            if error.retryable && rule.retry.maximum_retry_attempts > 0 {
                tracing::warn!(bus = %self.name, rule = %rule.name, event_id = %id,
                    code = %error.code, message = %error.message, "rule target refused the event; retrying");
                tokio::spawn(delivery.retry());
            } else {
                delivery.dead_letter(error, 0).await;
            }
        }
    }
}

/// One event on its way to one rule's target, after the first try failed.
struct TargetDelivery {
    bus: String,
    rule: Arc<BusRule>,
    event_id: String,
    envelope: String,
    first_try: tokio::time::Instant,
}

impl TargetDelivery {
    async fn retry(self) {
        let policy = self.rule.retry;
        let mut retries = 0;
        loop {
            retries += 1;
            tokio::time::sleep(TARGET_BACKOFF.jittered(retries)).await;
            let error = match send_to_target(self.rule.target.as_ref(), &self.envelope).await {
                Ok(()) => return,
                Err(error) => error,
            };
            let too_old = self.first_try.elapsed() >= policy.maximum_event_age;
            if !error.retryable || retries >= policy.maximum_retry_attempts || too_old {
                self.dead_letter(error, retries).await;
                return;
            }
        }
    }

    async fn dead_letter(&self, error: TargetError, retries: u32) {
        let Some(dlq) = &self.rule.dead_letter else {
            tracing::error!(bus = %self.bus, rule = %self.rule.name, event_id = %self.event_id,
                code = %error.code, message = %error.message, retries,
                "event dropped: its rule target refused it and the rule has no dead-letter queue");
            return;
        };
        let attributes: Attributes = [
            ("ERROR_CODE", error.code.clone()),
            ("ERROR_MESSAGE", error.message.clone()),
            (
                "RULE_ARN",
                format!(
                    "arn:aws:events:us-east-1:000000000000:rule/{}/{}",
                    self.bus, self.rule.name
                ),
            ),
            ("TARGET_ARN", self.rule.target.arn()),
            ("RETRY_ATTEMPTS", retries.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut message = OutgoingMessage::new("0", self.envelope.clone());
        message.attributes = attributes;
        match send_all(dlq.as_ref(), &[message]).await {
            Ok(()) => {
                tracing::error!(bus = %self.bus, rule = %self.rule.name, event_id = %self.event_id,
                code = %error.code, message = %error.message, retries, dead_letter_queue = dlq.name(),
                "event moved to the rule's dead-letter queue")
            }
            Err(dlq_error) => {
                tracing::error!(bus = %self.bus, rule = %self.rule.name, event_id = %self.event_id,
                code = %error.code, message = %error.message, %dlq_error,
                "event dropped: neither its target nor its dead-letter queue took it")
            }
        }
    }
}

/// One try at putting the event on a rule's target queue.
async fn send_to_target(target: &dyn Queue, envelope: &str) -> Result<(), TargetError> {
    match target
        .send_batch(&[OutgoingMessage::new("0", envelope)])
        .await
    {
        Ok(failed) => match failed.into_iter().next() {
            None => Ok(()),
            Some(f) => Err(TargetError {
                code: f.code,
                message: f.message,
                retryable: f.retryable,
            }),
        },
        Err(error) => Err(TargetError {
            code: match &error {
                QueueError::Unavailable { .. } => "SQS.ServiceUnavailable",
                _ => "SQS.InvalidRequest",
            }
            .into(),
            retryable: matches!(error, QueueError::Unavailable { .. }),
            message: error.to_string(),
        }),
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryOutcome>, BusError> {
        if entries.is_empty() || entries.len() > EVENTBRIDGE_MAX_ENTRIES {
            return Err(BusError::Invalid(
                format!(
                    "PutEvents takes 1 to {EVENTBRIDGE_MAX_ENTRIES} entries, got {}",
                    entries.len()
                )
                .into(),
            ));
        }
        check_entry_sizes(entries, EVENTBRIDGE_MAX_ENTRY_BYTES)?;
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            let detail = match Self::check(entry) {
                Ok(detail) => detail,
                Err((code, message)) => {
                    outcomes.push(EntryOutcome::Failed { code, message });
                    continue;
                }
            };
            let id = uuid::Uuid::new_v4().to_string();
            match self.envelope(entry, detail, &id) {
                Ok((text, value)) => {
                    self.route(&text, &value, &id).await;
                    outcomes.push(EntryOutcome::Accepted { event_id: id });
                }
                Err(e) => outcomes.push(EntryOutcome::Failed {
                    code: "MalformedDetail".into(),
                    message: e.to_string(),
                }),
            }
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryQueue, QueueSettings};
    use fanout_core::clock::SystemClock;

    fn bus() -> (MemoryBus, Arc<MemoryQueue>) {
        let q = MemoryQueue::new("plan", QueueSettings::default());
        let rule = BusRule::new(
            "broadcasts",
            Pattern::parse(r#"{"detail-type":["fanout.broadcast"],"source":[{"anything-but":{"prefix":"test."}}]}"#).unwrap(),
            q.clone(),
        );
        (
            MemoryBus::new("fanout", Arc::new(SystemClock), vec![rule]),
            q,
        )
    }

    #[tokio::test]
    async fn routes_matching_events_in_an_eventbridge_envelope() {
        let (bus, q) = bus();
        let out = bus
            .put_events(&[
                BusEntry::new("acme.orders", "fanout.broadcast", r#"{"tenant":"acme"}"#),
                BusEntry::new("acme.orders", "fanout.room.joined", r#"{"tenant":"acme"}"#),
                BusEntry::new("test.x", "fanout.broadcast", r#"{"tenant":"acme"}"#),
            ])
            .await
            .unwrap();
        assert!(
            out.iter()
                .all(|o| matches!(o, EntryOutcome::Accepted { .. }))
        );
        let bodies = q.peek_bodies();
        assert_eq!(bodies.len(), 1);
        let env: EventEnvelope = serde_json::from_str(&bodies[0]).unwrap();
        assert_eq!(env.source, "acme.orders");
        assert_eq!(env.version, "0");
        let EntryOutcome::Accepted { event_id } = &out[0] else {
            unreachable!()
        };
        assert_eq!(&env.id, event_id);
        assert_eq!(env.detail.get(), r#"{"tenant":"acme"}"#);
    }

    #[tokio::test]
    async fn refuses_bad_entries_one_by_one() {
        let (bus, q) = bus();
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(EVENTBRIDGE_MAX_ENTRY_BYTES));
        let out = bus
            .put_events(&[
                BusEntry::new("aws.events", "fanout.broadcast", "{}"),
                BusEntry::new("acme", "fanout.broadcast", "[1]"),
                BusEntry::new("acme", "fanout.broadcast", "{}"),
            ])
            .await
            .unwrap();
        let codes: Vec<_> = out
            .iter()
            .map(|o| match o {
                EntryOutcome::Failed { code, .. } => code.as_str(),
                EntryOutcome::Accepted { .. } => "ok",
            })
            .collect();
        assert_eq!(
            codes,
            ["NotAuthorizedForSourceException", "MalformedDetail", "ok"]
        );
        assert_eq!(q.message_count(), 1);
        assert!(bus.put_events(&[]).await.is_err());
        // An oversized entry refuses the whole call, before anything is sent.
        let err = bus
            .put_events(&[
                BusEntry::new("acme", "fanout.broadcast", "{}"),
                BusEntry::new("acme", "fanout.broadcast", big),
            ])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("entry 1"), "{err}");
        assert_eq!(q.message_count(), 1);
    }

    /// A target queue that refuses its first `refusals` sends as SQS does
    /// when throttled, then behaves like the queue it wraps.
    struct RefusingQueue {
        inner: Arc<MemoryQueue>,
        refusals: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl Queue for RefusingQueue {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn arn(&self) -> String {
            self.inner.arn()
        }
        async fn send_batch(
            &self,
            messages: &[OutgoingMessage],
        ) -> Result<Vec<fanout_core::ports::FailedEntry>, QueueError> {
            use std::sync::atomic::Ordering;
            let left = self.refusals.load(Ordering::SeqCst);
            if left > 0 {
                self.refusals.store(left - 1, Ordering::SeqCst);
                return Err(QueueError::Unavailable {
                    queue: self.name().into(),
                    message: "ThrottlingException".into(),
                });
            }
            self.inner.send_batch(messages).await
        }
        async fn receive(
            &self,
            max: usize,
            wait: Duration,
            visibility: Duration,
        ) -> Result<Vec<fanout_core::ports::ReceivedMessage>, QueueError> {
            self.inner.receive(max, wait, visibility).await
        }
        async fn delete(&self, receipt_handles: &[String]) -> Result<(), QueueError> {
            self.inner.delete(receipt_handles).await
        }
        async fn change_visibility(
            &self,
            receipt_handle: &str,
            timeout: Duration,
        ) -> Result<(), QueueError> {
            self.inner.change_visibility(receipt_handle, timeout).await
        }
        async fn depth(&self) -> Result<fanout_core::ports::QueueDepth, QueueError> {
            Queue::depth(self.inner.as_ref()).await
        }
    }

    fn bus_with_dlq(target: Arc<dyn Queue>, retries: u32) -> (MemoryBus, Arc<MemoryQueue>) {
        let dlq = MemoryQueue::new("bus-dlq", QueueSettings::default());
        let mut rule = BusRule::new(
            "broadcasts",
            Pattern::parse(r#"{"detail-type":["fanout.broadcast"]}"#).unwrap(),
            target,
        );
        rule.retry = RetryPolicy {
            maximum_retry_attempts: retries,
            maximum_event_age: Duration::from_secs(3600),
        };
        rule.dead_letter = Some(dlq.clone());
        (
            MemoryBus::new("fanout", Arc::new(SystemClock), vec![rule]),
            dlq,
        )
    }

    fn entry() -> BusEntry {
        BusEntry::new("acme.orders", "fanout.broadcast", r#"{"tenant":"acme"}"#)
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusing_target_is_retried_until_it_takes_the_event() {
        let q = MemoryQueue::new("plan", QueueSettings::default());
        let target = Arc::new(RefusingQueue {
            inner: q.clone(),
            refusals: 3.into(),
        });
        let (bus, dlq) = bus_with_dlq(target, 5);
        bus.put_events(&[entry()]).await.unwrap();
        assert_eq!(
            q.message_count(),
            0,
            "PutEvents does not wait for the retries"
        );
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(q.message_count(), 1);
        assert_eq!(dlq.message_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_exhausted_go_to_the_dead_letter_queue_with_the_error() {
        let q = MemoryQueue::new("plan", QueueSettings::default());
        let target = Arc::new(RefusingQueue {
            inner: q.clone(),
            refusals: 1_000.into(),
        });
        let (bus, dlq) = bus_with_dlq(target, 4);
        let out = bus.put_events(&[entry()]).await.unwrap();
        let EntryOutcome::Accepted { event_id } = &out[0] else {
            panic!("{out:?}")
        };
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(q.message_count(), 0);
        let dead = dlq.peek();
        assert_eq!(dead.len(), 1);
        let (body, attributes) = &dead[0];
        let envelope: EventEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(&envelope.id, event_id);
        assert_eq!(attributes["ERROR_CODE"], "SQS.ServiceUnavailable");
        assert_eq!(attributes["RETRY_ATTEMPTS"], "4");
        assert!(attributes["RULE_ARN"].ends_with("rule/fanout/broadcasts"));
        assert!(attributes["TARGET_ARN"].ends_with(":plan"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_retrying_cannot_fix_goes_to_the_dead_letter_queue_at_once() {
        let tiny = MemoryQueue::new(
            "plan",
            QueueSettings {
                max_message_bytes: 10,
                ..QueueSettings::default()
            },
        );
        let (bus, dlq) = bus_with_dlq(tiny.clone(), 185);
        bus.put_events(&[entry()]).await.unwrap();
        let dead = dlq.peek();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].1["ERROR_CODE"], "InvalidParameterValue");
        assert_eq!(dead[0].1["RETRY_ATTEMPTS"], "0");
        assert_eq!(tiny.message_count(), 0);
    }
}
