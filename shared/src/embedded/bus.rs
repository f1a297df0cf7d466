//! An in-process event bus with EventBridge semantics: PutEvents validates
//! each entry, wraps it in the EventBridge envelope, and every rule whose
//! event pattern matches sends the envelope to its target queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::value::RawValue;

use crate::clock::Clock;
use crate::event::EventEnvelope;
use crate::limits::{EVENTBRIDGE_MAX_ENTRIES, EVENTBRIDGE_MAX_ENTRY_BYTES};
use crate::pattern::Pattern;
use crate::ports::{BusEntry, BusError, EntryOutcome, EventBus, OutgoingMessage, Queue, send_all};

/// A rule: events matching `pattern` go to `target`.
pub struct BusRule {
    pub name: String,
    pub pattern: Pattern,
    pub target: Arc<dyn Queue>,
}

pub struct MemoryBus {
    name: String,
    clock: Arc<dyn Clock>,
    rules: Vec<BusRule>,
}

impl MemoryBus {
    pub fn new(name: impl Into<String>, clock: Arc<dyn Clock>, rules: Vec<BusRule>) -> Self {
        Self {
            name: name.into(),
            clock,
            rules,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why EventBridge would refuse this entry, if it would.
    fn check(entry: &BusEntry) -> Result<(), (String, String)> {
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
        if entry.size() > EVENTBRIDGE_MAX_ENTRY_BYTES {
            return invalid(format!(
                "entry is {} bytes; the limit is {EVENTBRIDGE_MAX_ENTRY_BYTES}",
                entry.size()
            ));
        }
        match serde_json::from_str::<serde_json::Value>(&entry.detail) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            _ => Err((
                "MalformedDetail".into(),
                "Detail must be a JSON object".into(),
            )),
        }
    }

    fn envelope(&self, entry: &BusEntry, id: &str) -> Result<String, serde_json::Error> {
        let envelope = EventEnvelope {
            version: "0".into(),
            id: id.to_string(),
            detail_type: entry.detail_type.clone(),
            source: entry.source.clone(),
            account: "000000000000".into(),
            time: chrono::DateTime::from_timestamp_millis(self.clock.now_ms())
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            region: "us-east-1".into(),
            resources: entry.resources.clone(),
            detail: RawValue::from_string(entry.detail.clone())?,
        };
        serde_json::to_string(&envelope)
    }

    async fn deliver(&self, envelope: String, id: &str) {
        let as_value: serde_json::Value = match serde_json::from_str(&envelope) {
            Ok(v) => v,
            Err(_) => return,
        };
        for rule in self.rules.iter().filter(|r| r.pattern.matches(&as_value)) {
            let message = OutgoingMessage {
                id: "0".into(),
                body: envelope.clone(),
                delay: Duration::ZERO,
            };
            if let Err(error) = send_all(rule.target.as_ref(), &[message]).await {
                // EventBridge would retry and then dead-letter; the
                // in-process queues only refuse oversized messages, which
                // the entry size check already rules out.
                tracing::error!(bus = %self.name, rule = %rule.name, event_id = %id, %error,
                    "could not deliver event to rule target");
            }
        }
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryOutcome>, BusError> {
        if entries.is_empty() || entries.len() > EVENTBRIDGE_MAX_ENTRIES {
            return Err(BusError::Invalid(format!(
                "PutEvents takes 1 to {EVENTBRIDGE_MAX_ENTRIES} entries, got {}",
                entries.len()
            )));
        }
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Err((code, message)) = Self::check(entry) {
                outcomes.push(EntryOutcome::Failed { code, message });
                continue;
            }
            let id = uuid::Uuid::new_v4().to_string();
            match self.envelope(entry, &id) {
                Ok(envelope) => {
                    self.deliver(envelope, &id).await;
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
    use crate::clock::SystemClock;
    use crate::embedded::{MemoryQueue, QueueSettings};

    fn bus() -> (MemoryBus, Arc<MemoryQueue>) {
        let q = MemoryQueue::new("plan", QueueSettings::default());
        let rule = BusRule {
            name: "broadcasts".into(),
            pattern: Pattern::parse(r#"{"detail-type":["fanout.broadcast"],"source":[{"anything-but":{"prefix":"test."}}]}"#).unwrap(),
            target: q.clone(),
        };
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
                BusEntry::new("acme", "fanout.broadcast", big),
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
            [
                "NotAuthorizedForSourceException",
                "MalformedDetail",
                "InvalidArgument",
                "ok"
            ]
        );
        assert_eq!(q.depth(), 1);
        assert!(bus.put_events(&[]).await.is_err());
    }
}
