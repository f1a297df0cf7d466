//! A `?token=` on `$connect`, as the authorizer verifies it.
#![no_main]

use std::sync::OnceLock;

use fanout_core::auth::TokenVerifier;
use fanout_core::token::DEV_JWT_SECRET;
use libfuzzer_sys::fuzz_target;

/// Verification is async (a JWKS may need fetching); with the HS256 secret
/// alone it never waits, so one current-thread runtime serves every input.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let verifier = TokenVerifier::hs256(DEV_JWT_SECRET.as_bytes());
        let _ = runtime().block_on(verifier.verify(token, 1_800_000_000));
    }
});
