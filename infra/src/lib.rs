//! `infra/` holds the SAM template (`template.yaml`) that deploys fanout,
//! its checkov configuration, and `tests/template.rs`, which proves the
//! template agrees with the code. This crate has no code of its own; it
//! exists so `cargo test` runs those tests.
