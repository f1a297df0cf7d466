//! Embedded adapters: the in-process implementations of the ports that the
//! local stack runs on and unit tests use. They follow the AWS services'
//! semantics (TTL filtering, visibility timeouts, redrive, event patterns)
//! so that code tested against them behaves the same on AWS.

mod bus;
pub mod pattern;
mod poster;
mod queue;
mod store;

pub use bus::{BusRule, MemoryBus, RetryPolicy};
pub use poster::MemoryPoster;
pub use queue::{MemoryQueue, QueueSettings, Redrive};
pub use store::MemoryStore;
