//! # fanout
//!
//! The library every fanout function and tool is built on. It knows the
//! domain and the wire formats and declares the ports the functions need;
//! the adapters live in `fanout-embedded` (in-process, with EventBridge
//! patterns) and `fanout-aws` (the SDK adapters, provisioning and DLQ
//! tools). It does not know `lambda_runtime`, sockets or HTTP servers:
//! those live in `services/*`.
//!
//! # Layout
//! - [`ids`]: validated tenant, room, user and connection ids.
//! - [`protocol`]: the client protocol (JSON text frames): the table of
//!   actions, one parser per action, error codes, the frames the server
//!   sends and those clients decode (the TypeScript SDK's are generated
//!   from them).
//! - [`event`]: the broadcast event contract and the lifecycle events.
//! - [`token`]: minting connection tokens and room grants; HS256 secret rules.
//! - [`auth`]: verifying tokens and grants (HS256, JWKS), claim mapping,
//!   room capabilities and the default policy.
//! - [`limits`]: AWS limits.
//! - [`local_api`]: the local stack's read endpoints and bus name, shared
//!   with the CLI.
//! - [`settings`]: every tunable, defined once (flags and environment).
//! - [`variables`]: each settings group written back as the environment
//!   variables a Lambda reads (the local stack's bootstrap mode).
//! - [`routing`]: API Gateway's route selection (`$request.body.action`).
//! - [`stream`]: room streams: stored events, history pages and replays.
//! - [`plan`]: cutting a target's connections into delivery jobs.
//! - [`outcome`]: what one @connections post's answer means for delivery.
//! - [`backoff`]: full-jitter exponential backoff.
//! - [`changes`]: the table's change records (removed connection items)
//!   that drive the sweeper, and the connection item's layout in them.
//! - [`rate`]: a token bucket on Tokio's clock (`governor`).
//! - [`metrics`]: CloudWatch Embedded Metric Format lines and totals.
//! - [`clock`]: wall-clock time, behind a trait so TTL logic is testable.
//! - [`ports`]: the traits handlers talk to (store, bus, queue, poster,
//!   key source) and their typed errors, which keep the adapter's cause.
//! - [`handlers`]: the functions (authorizer, connect, disconnect, message,
//!   planner, broadcaster, sweeper), taking the event types the real
//!   Lambdas receive.

pub mod auth;
pub mod backoff;
pub mod changes;
pub mod clock;
pub mod event;
pub mod handlers;
pub mod ids;
pub mod limits;
pub mod local_api;
pub mod metrics;
pub mod outcome;
pub mod plan;
pub mod ports;
pub mod protocol;
pub mod rate;
pub mod routing;
pub mod settings;
pub mod stream;
pub mod token;
pub mod variables;
