//! # fanout-local
//!
//! The whole fanout system in one process on loopback, with no AWS account:
//! the default way to run, try and test fanout. The functions it runs are
//! the same library handlers the Lambdas run, fed the same event types.
//!
//! # Layout
//! - [`config`]: flags and their defaults (the AWS limits).
//! - [`stack`]: wiring only; [`stack::start`] takes a bound listener.
//! - [`state`]: what every HTTP surface shares.
//! - [`queues`]: the stack's queues by name, with their redrive policies.
//! - [`server`]: the HTTP/1.1 server (header-read timeout, connection caps).
//! - [`backend`]: the embedded adapters, or the AWS ones (`--backend aws`).
//! - [`gateway`]: the WebSocket endpoint (API Gateway's behaviour).
//! - [`functions`]: what the gateway invokes (authorizer, connect,
//!   disconnect, message): in process, or the bootstraps.
//! - [`lambdas`]: `--lambdas`: the built bootstraps as child processes on a
//!   Lambda Runtime API this stack serves.
//! - [`events`]: builds the API Gateway events handlers receive.
//! - [`registry`]: open connections; the embedded connection poster.
//! - [`outbound`]: each connection's queue of frames posted and not yet written.
//! - [`management`]: the `@connections` management API.
//! - [`awsjson`]: `POST /` for AWS JSON operations: EventBridge `PutEvents`
//!   and the SQS operations the DLQ tools need.
//! - [`esm`]: event source mappings driving the planner and broadcaster.
//! - [`stream_esm`]: the mapping of the table's change records that drives
//!   the sweeper.
//! - [`faults`]: fault injection and the AWS-quota emulation.
//! - [`history`], [`presence`]: read endpoints for services and operators.
//! - [`dashboard`]: the dashboard's data (and the delivery series it charts).
//! - [`devtoken`]: development tokens and grants (only with the development
//!   secret).
//! - [`web`]: the demo chat page, the dashboard page, and the client SDK
//!   they load.
//! - [`inprocess`]: socketless connections for pipeline tests and benchmarks.

pub mod awsjson;
pub mod backend;
pub mod config;
pub mod dashboard;
pub mod devtoken;
pub mod esm;
pub mod events;
pub mod faults;
pub mod functions;
pub mod gateway;
pub mod history;
pub mod inprocess;
pub mod lambdas;
pub mod management;
pub mod outbound;
pub mod presence;
pub mod queues;
pub mod registry;
pub mod server;
pub mod stack;
pub mod state;
pub mod stream_esm;
pub mod web;

pub use config::StackConfig;
pub use stack::{RunningStack, start, start_with_clock};
