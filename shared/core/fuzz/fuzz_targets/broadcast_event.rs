//! A `fanout.broadcast` detail from any publisher, and the EventBridge
//! envelope around it, as the planner parses them.
#![no_main]

use fanout_core::event::{BroadcastEvent, EventEnvelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<BroadcastEvent>(data);
    if let Ok(envelope) = serde_json::from_slice::<EventEnvelope>(data) {
        let _ = serde_json::from_str::<BroadcastEvent>(envelope.detail.get());
    }
});
