//! The ports: small traits the handlers talk to, one module per port. Each
//! has an embedded adapter (`fanout-embedded`, or the local gateway's
//! registry for the poster) and an AWS adapter (`fanout-aws`), and both
//! pass one contract suite. Handlers take only the ports they need.
//!
//! Architecture invariant: ports are traits and value types; the only
//! logic here is batching ([`publish`], [`send_all`]), which every adapter
//! family shares.

mod bus;
mod cause;
mod changes;
mod dedupe;
mod keys;
mod poster;
mod presence;
mod queue;
mod store;
mod stream;

pub use bus::*;
pub use cause::Cause;
pub use changes::*;
pub use dedupe::*;
pub use keys::*;
pub use poster::*;
pub use presence::*;
pub use queue::*;
pub use store::*;
pub use stream::*;
