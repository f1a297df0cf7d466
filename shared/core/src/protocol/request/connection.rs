//! About the connection itself: `ping`, `whoami` and `refresh`.

use crate::protocol::RequestError;
use crate::protocol::fields::{Fields, Parse};

/// A heartbeat; answered with `pong`.
#[derive(Debug, Clone)]
pub struct Ping;

impl Parse for Ping {
    fn parse(_: &Fields<'_>) -> Result<Self, RequestError> {
        Ok(Self)
    }
}

/// Asks for the caller's own connection id, tenant and user (for
/// `exclude` and connection targets).
#[derive(Debug, Clone)]
pub struct WhoAmI;

impl Parse for WhoAmI {
    fn parse(_: &Fields<'_>) -> Result<Self, RequestError> {
        Ok(Self)
    }
}

/// A new token for the same tenant and user, before the current one
/// expires.
#[derive(Debug, Clone)]
pub struct Refresh {
    pub token: String,
}

impl Parse for Refresh {
    fn parse(f: &Fields<'_>) -> Result<Self, RequestError> {
        Ok(Self { token: f.token()? })
    }
}
