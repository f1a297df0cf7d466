//! The client's requests: one type per action, each parsed from the shared
//! [`Fields`](super::fields::Fields) cursor by its own `parse`.

mod connection;
mod read;
mod room;
mod send;

pub use connection::{Ping, Refresh, WhoAmI};
pub use read::{History, HistoryRange, Presence};
pub use room::{Join, Leave, PresenceUpdate};
pub use send::{Delete, Publish, Signal, Update};

/// A request with the `requestId` to echo.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub request_id: Option<String>,
    pub request: ClientRequest,
}

macro_rules! client_requests {
    ($($(#[$doc:meta])* $action:ident),* $(,)?) => {
        /// A client request that parsed and validated.
        #[derive(Clone)]
        pub enum ClientRequest {
            $($(#[$doc])* $action($action),)*
        }

        $(impl From<$action> for ClientRequest {
            fn from(request: $action) -> Self {
                ClientRequest::$action(request)
            }
        })*

        /// Each variant shows as the request it holds (its name is the
        /// variant's).
        impl std::fmt::Debug for ClientRequest {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $(ClientRequest::$action(request) => request.fmt(f),)*
                }
            }
        }
    };
}

client_requests! {
    Join,
    PresenceUpdate,
    Presence,
    Leave,
    Publish,
    Signal,
    History,
    Update,
    Delete,
    Ping,
    WhoAmI,
    Refresh,
}
