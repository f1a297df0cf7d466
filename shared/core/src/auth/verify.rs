//! Verifying the tokens clients present: connection tokens on `$connect`
//! and `refresh`, room grants on `join`. The key comes from the token's
//! header (`HS256` → the configured secret; otherwise its `kid` in the
//! JWKS) and is pinned to its algorithm; `iss`, `aud`, `exp`, `nbf` and the
//! longest lifetime are checked; the claims are mapped by configuration.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::auth::jwks::{JwksCache, KeyLookupError};
use crate::auth::keys::PinnedKey;
use crate::auth::rights::{Capabilities, DefaultPolicy, Rights};
use crate::ids::{RoomId, TenantId, UserId};
use crate::settings::AuthSettings;

/// The claim a room grant names its room in. A connection token must not
/// carry it, so a grant can never open a connection.
pub const GRANT_ROOM_CLAIM: &str = "room";
/// The claim a room grant lists its rights in.
pub const GRANT_RIGHTS_CLAIM: &str = "rights";

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub user: UserId,
}

/// What a valid connection token establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub principal: Principal,
    /// The capabilities claim, when the token has one.
    pub capabilities: Option<Capabilities>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
}

/// A valid room grant: lets `user` of `tenant` into `room` with `rights`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub principal: Principal,
    pub room: RoomId,
    pub rights: Rights,
    pub expires_at: i64,
}

/// Why a token was refused. The text is logged, never sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token header: {0}")]
    BadHeader(String),
    #[error("no key verifies {0:?} tokens here")]
    NoKeyForAlgorithm(Algorithm),
    #[error("the token's alg {token:?} does not match its key's {key:?}")]
    AlgorithmMismatch { token: Algorithm, key: Algorithm },
    #[error("no key with kid '{0}' in the JWKS")]
    UnknownKid(String),
    #[error("the JWKS is unavailable: {0}")]
    KeysUnavailable(#[source] crate::auth::jwks::KeysUnavailable),
    #[error("unsupported critical header parameters: {0:?}")]
    Critical(Vec<String>),
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("the token is valid for {lifetime_secs}s more; the longest accepted is {max_secs}s")]
    TooLong { lifetime_secs: i64, max_secs: u64 },
    #[error("claim {0}")]
    BadClaim(String),
}

/// Which keys verify, and how claims are read.
pub struct TokenVerifier {
    /// The HS256 secret, pinned to HS256 like any other key.
    secret: Option<Arc<PinnedKey>>,
    jwks: Option<JwksCache>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway: Duration,
    max_lifetime: Duration,
    tenant_claim: String,
    user_claim: String,
    capabilities_claim: String,
    fixed_tenant: Option<TenantId>,
    default_policy: DefaultPolicy,
}

impl TokenVerifier {
    /// `secret`: the HS256 key, if HS256 tokens are accepted; `jwks`: the
    /// asymmetric keys, if any.
    pub fn new(secret: Option<&[u8]>, jwks: Option<JwksCache>, settings: &AuthSettings) -> Self {
        Self {
            secret: secret.map(|secret| {
                Arc::new(PinnedKey {
                    key: DecodingKey::from_secret(secret),
                    algorithm: Algorithm::HS256,
                })
            }),
            jwks,
            issuer: settings.token_issuer.clone(),
            audience: settings.token_audience.clone(),
            leeway: settings.token_leeway,
            max_lifetime: settings.max_token_lifetime,
            tenant_claim: settings.tenant_claim.clone(),
            user_claim: settings.user_claim.clone(),
            capabilities_claim: settings.capabilities_claim.clone(),
            fixed_tenant: settings.fixed_tenant.clone(),
            default_policy: settings.default_policy,
        }
    }

    /// HS256 with `secret` only and every other setting at its default
    /// (tests, tools).
    pub fn hs256(secret: &[u8]) -> Self {
        Self::new(Some(secret), None, &AuthSettings::default())
    }

    pub fn default_policy(&self) -> DefaultPolicy {
        self.default_policy
    }

    pub fn jwks(&self) -> Option<&JwksCache> {
        self.jwks.as_ref()
    }

    /// Verifies a connection token (`$connect`, `refresh`).
    pub async fn verify(&self, token: &str, now_secs: i64) -> Result<VerifiedToken, TokenError> {
        let (claims, expires_at) = self.decode(token, now_secs).await?;
        if claims.contains_key(GRANT_ROOM_CLAIM) {
            return Err(TokenError::BadClaim(
                "room: a room grant cannot open a connection".into(),
            ));
        }
        let principal = self.principal(&claims, &self.tenant_claim, &self.user_claim)?;
        let capabilities = claims
            .get(&self.capabilities_claim)
            .map(|v| {
                Capabilities::from_claim(v)
                    .map_err(|e| TokenError::BadClaim(format!("{}: {e}", self.capabilities_claim)))
            })
            .transpose()?;
        Ok(VerifiedToken {
            principal,
            capabilities,
            expires_at,
        })
    }

    /// Verifies a room grant: `sub`, `tenant` (unless the tenant is
    /// fixed), `room`, `rights` and `exp`, signed with the same keys.
    pub async fn verify_grant(&self, token: &str, now_secs: i64) -> Result<Grant, TokenError> {
        let (claims, expires_at) = self.decode(token, now_secs).await?;
        let principal = self.principal(&claims, "tenant", "sub")?;
        let room = match claims.get(GRANT_ROOM_CLAIM) {
            Some(Value::String(r)) => {
                RoomId::new(r.as_str()).map_err(|e| TokenError::BadClaim(format!("room: {e}")))?
            }
            _ => return Err(TokenError::BadClaim("room: a grant names its room".into())),
        };
        let rights = claims
            .get(GRANT_RIGHTS_CLAIM)
            .map(|v| serde_json::from_value::<Rights>(v.clone()))
            .transpose()
            .map_err(|e| TokenError::BadClaim(format!("rights: {e}")))?
            .ok_or_else(|| TokenError::BadClaim("rights: a grant lists its rights".into()))?;
        Ok(Grant {
            principal,
            room,
            rights,
            expires_at,
        })
    }

    fn principal(
        &self,
        claims: &Map<String, Value>,
        tenant_claim: &str,
        user_claim: &str,
    ) -> Result<Principal, TokenError> {
        let text = |name: &str| match claims.get(name) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(TokenError::BadClaim(format!("{name} must be a string"))),
            None => Err(TokenError::BadClaim(format!("{name} is missing"))),
        };
        let tenant = match &self.fixed_tenant {
            Some(t) => t.clone(),
            None => TenantId::new(text(tenant_claim)?)
                .map_err(|e| TokenError::BadClaim(format!("{tenant_claim}: {e}")))?,
        };
        let user = UserId::new(text(user_claim)?)
            .map_err(|e| TokenError::BadClaim(format!("{user_claim}: {e}")))?;
        Ok(Principal { tenant, user })
    }

    /// Checks the signature and the registered claims; returns the claims
    /// and `exp`.
    async fn decode(
        &self,
        token: &str,
        now_secs: i64,
    ) -> Result<(Map<String, Value>, i64), TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            TokenError::BadHeader(format!(
                "{e} (accepted algorithms: HS256, RS256, ES256, EdDSA; never none)"
            ))
        })?;
        if let Some(crit) = header.crit.filter(|c| !c.is_empty()) {
            // fanout understands no JWS extension, so any critical one
            // must be refused (RFC 7515 §4.1.11).
            return Err(TokenError::Critical(crit));
        }
        let pinned = self.key_for(header.alg, header.kid.as_deref()).await?;
        if pinned.algorithm != header.alg {
            return Err(TokenError::AlgorithmMismatch {
                token: header.alg,
                key: pinned.algorithm,
            });
        }
        let mut validation = Validation::new(pinned.algorithm);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        // A configured iss or aud must be present, not only right when
        // present.
        let mut required = vec!["exp"];
        match &self.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audience);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &pinned.key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::MissingRequiredClaim(c) if c == "iss" => TokenError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::WrongAudience,
                _ => TokenError::Malformed(e.to_string()),
            })?;
        let expires_at = match data.claims.get("exp") {
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .ok_or_else(|| TokenError::BadClaim("exp must be a number".into()))?,
            _ => return Err(TokenError::BadClaim("exp must be a number".into())),
        };
        let lifetime_secs = expires_at - now_secs;
        if lifetime_secs > (self.max_lifetime + self.leeway).as_secs() as i64 {
            return Err(TokenError::TooLong {
                lifetime_secs,
                max_secs: self.max_lifetime.as_secs(),
            });
        }
        Ok((data.claims, expires_at))
    }

    async fn key_for(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Arc<PinnedKey>, TokenError> {
        if alg == Algorithm::HS256 {
            return self
                .secret
                .clone()
                .ok_or(TokenError::NoKeyForAlgorithm(alg));
        }
        if !matches!(alg, Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA) {
            return Err(TokenError::NoKeyForAlgorithm(alg));
        }
        let jwks = self
            .jwks
            .as_ref()
            .ok_or(TokenError::NoKeyForAlgorithm(alg))?;
        let kid = kid.ok_or_else(|| {
            TokenError::BadHeader("a token signed with a JWKS key must name it (kid)".into())
        })?;
        jwks.key(kid).await.map_err(|e| match e {
            KeyLookupError::UnknownKid(k) => TokenError::UnknownKid(k),
            KeyLookupError::Unavailable(why) => TokenError::KeysUnavailable(why),
        })
    }
}
