//! # fanout-lambda
//!
//! What the six Lambda binaries (`services/{authorizer,connect,disconnect,
//! message,planner,broadcaster}`) share, so each `main.rs` is a few lines:
//!
//! - [`config`]: every environment variable a function reads, typed, with
//!   the AWS defaults; a missing or invalid one fails at start-up with a
//!   message naming it.
//! - [`setup`]: JSON logs, the AWS SDK configuration and adapters, built
//!   once per execution environment.
//! - [`deadline`]: the invocation deadline as a Tokio instant.
//!
//! Architecture invariant: only `services/*` know `lambda_runtime`; the
//! handlers themselves live in `fanout_core::handlers`.

pub mod config;
pub mod setup;

use std::time::Duration;

pub use lambda_runtime::{Error, LambdaEvent, run, service_fn};

/// The invocation's deadline (`Context::deadline`, ms since the epoch) as a
/// Tokio instant, for the handlers' deadline awareness.
pub fn deadline(context: &lambda_runtime::Context) -> tokio::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_millis(context.deadline.saturating_sub(now_ms))
}

/// Reads the configuration or exits with the reason, naming the variable:
/// a misconfigured function should fail its first invocation loudly, not
/// run with a guess.
pub fn config_or_exit<T>(read: impl FnOnce() -> Result<T, config::ConfigError>) -> T {
    match read() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    }
}
