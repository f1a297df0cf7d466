//! What the local stack offers beyond the AWS APIs it emulates, shared
//! with the operator CLI that calls it: the read endpoints' paths and the
//! name of its event bus (the CLI's default).

/// `GET` a page of a room's stream (`tenant`, `room`, `before`/`after`,
/// `limit`).
pub const HISTORY_PATH: &str = "/_fanout/history";

/// `GET` who is online in a tenant, or present in one of its rooms.
pub const PRESENCE_PATH: &str = "/_fanout/presence";

/// The local stack's event bus (and table) name.
pub const BUS: &str = "fanout";
