//! The key source port: where a JSON Web Key Set comes from (an OIDC
//! issuer's `jwks_uri` over HTTPS, or a file). The verifier caches what it
//! returns; adapters only fetch.

use async_trait::async_trait;

#[async_trait]
pub trait JwksSource: Send + Sync {
    /// The current JWKS document, as text.
    async fn fetch(&self) -> Result<String, String>;

    /// Where the keys come from, for logs and errors.
    fn describe(&self) -> String;
}
