//! The key source port: where a JSON Web Key Set comes from (an OIDC
//! issuer's `jwks_uri` over HTTPS, or a file). The verifier caches what it
//! returns; adapters only fetch.

use std::time::Duration;

use async_trait::async_trait;

use super::Cause;

/// Why a document could not be fetched. `what` names the request ("GET
/// https://…", "reading /etc/jwks.json").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{what}: {cause}")]
    Failed {
        what: String,
        #[source]
        cause: Cause,
    },
    #[error("{what}: no answer within {after:?}")]
    TimedOut { what: String, after: Duration },
    #[error("{what}: HTTP {status} {first_line}")]
    Status {
        what: String,
        status: u16,
        first_line: String,
    },
    #[error("{what}: the document is over {max} bytes")]
    TooLarge { what: String, max: usize },
    #[error("{what}: the document is not UTF-8")]
    NotUtf8 { what: String },
}

#[async_trait]
pub trait JwksSource: Send + Sync {
    /// The current JWKS document, as text.
    async fn fetch(&self) -> Result<String, FetchError>;

    /// Where the keys come from, for logs and errors.
    fn describe(&self) -> String;
}
