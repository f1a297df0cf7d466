//! What the handler tests share: the gateway's deps on the embedded
//! adapters, with every event the bus routes kept in one queue.

use std::sync::Arc;

use fanout_core::clock::ManualClock;
use fanout_core::handlers::{GatewayDeps, GatewaySettings};
use fanout_core::settings::defaults;
use fanout_embedded::pattern::Pattern;
use fanout_embedded::{BusRule, MemoryBus, MemoryQueue, MemoryStore, QueueSettings};

pub struct Gateway {
    pub deps: GatewayDeps,
    pub store: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
    /// Every event put on the bus.
    pub events: Arc<MemoryQueue>,
}

/// The gateway's deps at `now_ms`, on a store of two shards.
pub fn gateway(now_ms: i64) -> Gateway {
    let clock = ManualClock::at_ms(now_ms);
    let store = Arc::new(MemoryStore::new(clock.clone(), 2));
    let events = MemoryQueue::new("events", QueueSettings::default());
    let everything = BusRule::new(
        "everything",
        Pattern::parse(r#"{"source":[{"prefix":""}]}"#).unwrap(),
        events.clone(),
    );
    let deps = GatewayDeps {
        store: store.clone(),
        bus: Arc::new(MemoryBus::new("fanout", clock.clone(), vec![everything])),
        clock: clock.clone(),
        settings: defaults::<GatewaySettings>(),
        presence: store.clone(),
        presence_settings: defaults(),
    };
    Gateway {
        deps,
        store,
        clock,
        events,
    }
}
