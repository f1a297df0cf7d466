//! Sending to a room: `publish` and `signal` become broadcast events on
//! the bus, for the planner to deliver.

use crate::auth::Right;
use crate::event::{BROADCAST, BroadcastEvent, CLIENT_SOURCE};
use crate::ports::{BusEntry, BusError, publish as put_events};
use crate::protocol::{Publish, RequestError, Signal};

use super::context::{Frame, Reply};

pub(super) async fn publish(frame: &Frame<'_>, request: Publish) -> Result<Reply, RequestError> {
    let Publish { room, data } = request;
    frame.require_member(&room, Right::Publish).await?;
    frame.admit_publish().await?;
    let event = BroadcastEvent {
        from: Some(frame.sender()),
        ..BroadcastEvent::to_room(frame.caller.tenant.clone(), room, data)
    };
    frame.emit_broadcast(&event).await?;
    Ok(frame.ack())
}

/// Never stored, never back to the sender; counted against the
/// connection's own signal rate.
pub(super) async fn signal(frame: &Frame<'_>, request: Signal) -> Result<Reply, RequestError> {
    let Signal { room, data } = request;
    frame.require_member(&room, Right::Signal).await?;
    let abuse = &frame.deps.abuse;
    if let Some(rate) = abuse.client_signals()
        && let Some(wait) = frame
            .deps
            .gateway
            .store
            .admit_signal(&frame.caller.id, frame.now_ms, rate)
            .await
            .map_err(|e| frame.internal("could not send the signal", &e))?
    {
        let limit = format!(
            "this connection sends more than {} signals per second",
            abuse.client_signal_rate
        );
        return Err(frame.over_rate(limit, wait));
    }
    let event = BroadcastEvent {
        from: Some(frame.sender()),
        signal: true,
        stream: false,
        exclude: vec![frame.caller.id.clone()],
        ..BroadcastEvent::to_room(frame.caller.tenant.clone(), room, data)
    };
    frame.emit_broadcast(&event).await?;
    Ok(frame.ack())
}

impl Frame<'_> {
    /// Publishes, updates and deletes count against the tenant's rate.
    pub async fn admit_publish(&self) -> Result<(), RequestError> {
        let abuse = &self.deps.abuse;
        let Some(rate) = abuse.tenant_publishes() else {
            return Ok(());
        };
        let tenant = &self.caller.tenant;
        let wait = self
            .deps
            .gateway
            .store
            .admit_publish(tenant, self.now_ms, rate)
            .await
            .map_err(|e| self.internal("could not publish", &e))?;
        match wait {
            Some(wait) => Err(self.over_rate(
                format!(
                    "tenant '{tenant}' publishes more than {} messages per second",
                    abuse.tenant_publish_rate
                ),
                wait,
            )),
            None => Ok(()),
        }
    }

    /// One PutEvents entry; a throttled bus is the client's to retry.
    pub async fn emit_broadcast(&self, event: &BroadcastEvent) -> Result<(), RequestError> {
        let detail = serde_json::to_string(event)
            .map_err(|e| self.internal("could not encode the event", &e))?;
        let entry = BusEntry::new(CLIENT_SOURCE, BROADCAST, detail);
        match put_events(self.deps.gateway.bus.as_ref(), &[entry]).await {
            Ok(_) => Ok(()),
            Err(BusError::Throttled(reason)) => Err(RequestError::rate_limited(
                self.request_id.clone(),
                format!("publishing is throttled ({reason}); retry with backoff"),
                1_000,
            )),
            Err(e) => Err(self.internal("could not publish", &e)),
        }
    }
}
