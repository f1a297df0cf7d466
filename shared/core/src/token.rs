//! Minting tokens: connection tokens clients present as `?token=` on
//! `$connect` (claims `tenant`, `sub`, `exp`, optional `nbf`, `iat` and
//! `capabilities`) and room grants (`tenant`, `sub`, `room`, `rights`,
//! `exp`), and the rules for HS256 secrets. Verifying is [`crate::auth`].

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::auth::Right;
use crate::ids::{RoomId, TenantId, UserId};

/// Secret the local stack and the CLI use when no secret is configured.
/// Never deploy with it.
pub const DEV_JWT_SECRET: &str = "fanout-local-development-secret-never-deploy";
/// Shortest HS256 key accepted anywhere: RFC 7518 asks for a key at least
/// as long as the hash (256 bits), and an empty key would accept tokens
/// anyone can forge.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a token key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakSecret {
    #[error("the token secret is empty")]
    Empty,
    #[error("the token secret is {0} bytes; it must be at least {MIN_SECRET_BYTES}")]
    TooShort(usize),
    #[error("the token secret is the public development secret, which must never be deployed")]
    Development,
}

/// Checks an HS256 key before anything is signed or verified with it.
/// `deployed` also refuses [`DEV_JWT_SECRET`] (the Lambda authorizer).
pub fn check_secret(secret: &str, deployed: bool) -> Result<(), WeakSecret> {
    if secret.is_empty() {
        return Err(WeakSecret::Empty);
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Err(WeakSecret::TooShort(secret.len()));
    }
    if deployed && secret == DEV_JWT_SECRET {
        return Err(WeakSecret::Development);
    }
    Ok(())
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub tenant: String,
    pub sub: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Room patterns to rights (see [`crate::auth::Capabilities`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<serde_json::Value>,
}

/// The claims of a room grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantClaims {
    pub tenant: String,
    pub sub: String,
    pub room: String,
    pub rights: Vec<Right>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not sign token: {0}")]
pub struct SignError(String);

/// Mints connection tokens and room grants (the CLI, product backends
/// written in Rust, tests, the load test).
#[derive(Clone)]
pub struct TokenSigner {
    key: EncodingKey,
    header: Header,
}

impl TokenSigner {
    /// HS256 with a shared secret.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
            header: Header::new(Algorithm::HS256),
        }
    }

    /// An asymmetric key named `kid` in the JWKS that verifies it.
    pub fn with_key(key: EncodingKey, algorithm: Algorithm, kid: &str) -> Self {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.to_string());
        Self { key, header }
    }

    /// A token for `tenant`/`user` valid from `now_secs` for `ttl`.
    pub fn mint(
        &self,
        tenant: &TenantId,
        user: &UserId,
        now_secs: i64,
        ttl: Duration,
    ) -> Result<String, SignError> {
        self.sign(&Claims {
            tenant: tenant.to_string(),
            sub: user.to_string(),
            exp: now_secs + ttl.as_secs() as i64,
            nbf: Some(now_secs),
            iat: Some(now_secs),
            capabilities: None,
        })
    }

    /// A grant letting `user` of `tenant` into `room` with `rights`.
    pub fn mint_grant(
        &self,
        tenant: &TenantId,
        user: &UserId,
        room: &RoomId,
        rights: &[Right],
        now_secs: i64,
        ttl: Duration,
    ) -> Result<String, SignError> {
        self.sign(&GrantClaims {
            tenant: tenant.to_string(),
            sub: user.to_string(),
            room: room.to_string(),
            rights: rights.to_vec(),
            exp: now_secs + ttl.as_secs() as i64,
            iat: Some(now_secs),
        })
    }

    /// Signs any claims with this signer's key and header.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SignError> {
        jsonwebtoken::encode(&self.header, claims, &self.key).map_err(|e| SignError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_refused() {
        assert_eq!(check_secret("", false), Err(WeakSecret::Empty));
        assert_eq!(check_secret("short", false), Err(WeakSecret::TooShort(5)));
        assert_eq!(
            check_secret(&"k".repeat(31), true),
            Err(WeakSecret::TooShort(31))
        );
        assert!(check_secret(&"k".repeat(32), true).is_ok());
        assert!(check_secret(DEV_JWT_SECRET, false).is_ok());
        assert_eq!(
            check_secret(DEV_JWT_SECRET, true),
            Err(WeakSecret::Development)
        );
    }
}
