//! The event bus on EventBridge: `PutEvents` of at most ten entries, each
//! checked against EventBridge's entry size before anything is sent, with
//! the per-entry outcome (event id or error code) handed back so
//! [`fanout_core::ports::publish`] resends only the failed entries.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use fanout_core::limits::{EVENTBRIDGE_MAX_ENTRIES, EVENTBRIDGE_MAX_ENTRY_BYTES};
use fanout_core::ports::{BusEntry, BusError, Cause, EntryOutcome, EventBus, check_entry_sizes};

pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
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
        let request: Vec<PutEventsRequestEntry> = entries
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus_name)
                    .source(&e.source)
                    .detail_type(&e.detail_type)
                    .detail(&e.detail)
                    .set_resources((!e.resources.is_empty()).then(|| e.resources.clone()))
                    .build()
            })
            .collect();
        let out = self
            .client
            .put_events()
            .set_entries(Some(request))
            .send()
            .await
            .map_err(|e| {
                let throttled = e.as_service_error().is_some_and(|s| {
                    aws_sdk_eventbridge::error::ProvideErrorMetadata::code(s)
                        .is_some_and(|c| c.contains("Throttl"))
                });
                if throttled {
                    BusError::Throttled(Cause::new(e))
                } else {
                    BusError::Unavailable(Cause::new(e))
                }
            })?;
        let results = out.entries.unwrap_or_default();
        if results.len() != entries.len() {
            return Err(BusError::Unavailable(
                format!(
                    "PutEvents answered {} entries for {} sent",
                    results.len(),
                    entries.len()
                )
                .into(),
            ));
        }
        Ok(results
            .into_iter()
            .map(|r| match (r.event_id, r.error_code) {
                (Some(event_id), None) => EntryOutcome::Accepted { event_id },
                (_, code) => EntryOutcome::Failed {
                    code: code.unwrap_or_else(|| "Unknown".into()),
                    message: r.error_message.unwrap_or_default(),
                },
            })
            .collect())
    }
}
