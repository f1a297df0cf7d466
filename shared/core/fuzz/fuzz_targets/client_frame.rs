//! A client's WebSocket text frame, as the message function parses it.
#![no_main]

use fanout_core::protocol::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_request(text, 128 * 1024);
    }
});
