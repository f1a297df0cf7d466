//! Authentication and room permissions: verifying connection tokens and
//! room grants (HS256 and JWKS keys), claim mapping, capabilities, and the
//! default policy.

pub mod jwks;
pub mod keys;
pub mod rights;
pub mod verify;

pub use jwks::JwksCache;
pub use rights::{Capabilities, DefaultPolicy, Right, Rights, RoomPattern, effective_rights};
pub use verify::{Grant, Principal, TokenError, TokenVerifier, VerifiedToken};
