//! HS256 JWTs that clients present as `?token=` on `$connect`. Claims:
//! `tenant`, `sub` (the user), `exp`, optional `nbf` and `iat`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ids::{IdError, TenantId, UserId};

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
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub tenant: String,
    pub sub: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub user: UserId,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token claim {0}")]
    BadClaim(#[from] IdError),
    #[error("could not sign token: {0}")]
    Signing(String),
}

/// Mints tokens (CLI, tests, load test).
#[derive(Clone)]
pub struct TokenSigner {
    key: EncodingKey,
}

impl TokenSigner {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
        }
    }

    /// A token for `tenant`/`user` valid from `now_secs` for `ttl`.
    pub fn mint(
        &self,
        tenant: &TenantId,
        user: &UserId,
        now_secs: i64,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        self.sign(&Claims {
            tenant: tenant.to_string(),
            sub: user.to_string(),
            exp: now_secs + ttl.as_secs() as i64,
            nbf: Some(now_secs),
            iat: Some(now_secs),
        })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }
}

/// Verifies tokens (the authorizer).
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            },
        )?;
        Ok(Principal {
            tenant: TenantId::new(data.claims.tenant)?,
            user: UserId::new(data.claims.sub)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn ids() -> (TenantId, UserId) {
        (
            TenantId::new("acme").unwrap(),
            UserId::new("alice").unwrap(),
        )
    }

    #[test]
    fn minted_token_verifies() {
        let (t, u) = ids();
        let token = TokenSigner::new(b"s3cret")
            .mint(&t, &u, now(), Duration::from_secs(60))
            .unwrap();
        let p = TokenVerifier::new(b"s3cret").verify(&token).unwrap();
        assert_eq!(p, Principal { tenant: t, user: u });
    }

    #[test]
    fn refuses_wrong_secret_expired_and_future_tokens() {
        let (t, u) = ids();
        let signer = TokenSigner::new(b"s3cret");
        let verifier = TokenVerifier::new(b"s3cret");
        let other = signer.mint(&t, &u, now(), Duration::from_secs(60)).unwrap();
        assert!(matches!(
            TokenVerifier::new(b"other").verify(&other),
            Err(TokenError::BadSignature)
        ));
        let expired = signer
            .mint(&t, &u, now() - 3600, Duration::from_secs(60))
            .unwrap();
        assert!(matches!(
            verifier.verify(&expired),
            Err(TokenError::Expired)
        ));
        let future = signer
            .mint(&t, &u, now() + 3600, Duration::from_secs(60))
            .unwrap();
        assert!(matches!(
            verifier.verify(&future),
            Err(TokenError::NotYetValid)
        ));
        assert!(matches!(
            verifier.verify("garbage"),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_invalid_claims() {
        let signer = TokenSigner::new(b"k");
        let token = signer
            .sign(&Claims {
                tenant: "a#b".into(),
                sub: "alice".into(),
                exp: now() + 60,
                nbf: None,
                iat: None,
            })
            .unwrap();
        assert!(matches!(
            TokenVerifier::new(b"k").verify(&token),
            Err(TokenError::BadClaim(_))
        ));
    }

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
