//! A PutEvents body sent to the local stack's EventBridge endpoint.
#![no_main]

use fanout_awsjson::put_events::parse_put_events;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_put_events(data);
});
