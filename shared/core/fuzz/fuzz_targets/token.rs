//! A `?token=` on `$connect`, as the authorizer verifies it.
#![no_main]

use fanout_core::token::{DEV_JWT_SECRET, TokenVerifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = TokenVerifier::new(DEV_JWT_SECRET.as_bytes()).verify(token);
    }
});
