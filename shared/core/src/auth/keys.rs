//! Verification keys, each pinned to the one algorithm it verifies: the
//! HS256 secret verifies HS256 only, an RSA key RS256, a P-256 key ES256 and
//! an Ed25519 key EdDSA. A token's `alg` only selects among them; it can
//! never make a key verify under another algorithm (no `none`, no HS256
//! signed with an RSA public key).

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

/// A key and the algorithm it is pinned to.
#[derive(Clone)]
pub struct PinnedKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

/// Why a JWKS document gives no keys at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a JWKS document: {0}")]
pub struct JwksError(String);

/// Why one key of a document is skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkippedKey {
    #[error("an encryption key (use=enc)")]
    Encryption,
    #[error("a symmetric key does not belong in a JWKS; configure the HS256 secret instead")]
    Symmetric,
    #[error("an unsupported key type or curve (use RSA, EC P-256 or Ed25519)")]
    Unsupported,
    #[error("alg {declared} is not supported for this key type (expected {expected})")]
    WrongAlgorithm { declared: String, expected: String },
    #[error("unusable key: {0}")]
    Unusable(String),
}

/// The keys of one JWKS document, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<PinnedKey>>,
}

impl KeySet {
    /// Parses a JWKS document. Keys fanout cannot use (no `kid`, `use` other
    /// than `sig`, symmetric keys, other curves or algorithms) are skipped;
    /// the second value says which and why, for the log.
    pub fn from_jwks(text: &str) -> Result<(Self, Vec<String>), JwksError> {
        let set: JwkSet = serde_json::from_str(text).map_err(|e| JwksError(e.to_string()))?;
        let mut keys = HashMap::new();
        let mut skipped = Vec::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone();
            match (kid, pin(jwk)) {
                (Some(kid), Ok(pinned)) => {
                    keys.insert(kid, Arc::new(pinned));
                }
                (None, _) => skipped.push("a key without a kid".to_string()),
                (Some(kid), Err(why)) => skipped.push(format!("key {kid}: {why}")),
            }
        }
        Ok((Self { keys }, skipped))
    }

    pub fn get(&self, kid: &str) -> Option<Arc<PinnedKey>> {
        self.keys.get(kid).cloned()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The algorithm a JWK's type and curve allow; its `alg`, when present,
/// must agree.
fn pin(jwk: &Jwk) -> Result<PinnedKey, SkippedKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err(SkippedKey::Encryption);
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => return Err(SkippedKey::Symmetric),
        _ => return Err(SkippedKey::Unsupported),
    };
    let declared = match algorithm {
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::EdDSA,
    };
    if let Some(alg) = jwk.common.key_algorithm
        && alg != declared
    {
        return Err(SkippedKey::WrongAlgorithm {
            declared: format!("{alg:?}"),
            expected: format!("{declared:?}"),
        });
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| SkippedKey::Unusable(e.to_string()))?;
    Ok(PinnedKey { key, algorithm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_pinned_and_unusable_ones_skipped() {
        let text = r#"{"keys":[
          {"kty":"EC","kid":"ec","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
          {"kty":"OKP","kid":"ed","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
          {"kty":"EC","kid":"ec-wrong-alg","alg":"RS256","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
          {"kty":"EC","kid":"enc","use":"enc","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
          {"kty":"oct","kid":"sym","k":"c2VjcmV0"},
          {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        let (set, skipped) = KeySet::from_jwks(text).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.get("ec").unwrap().algorithm, Algorithm::ES256);
        assert_eq!(set.get("ed").unwrap().algorithm, Algorithm::EdDSA);
        assert_eq!(skipped.len(), 4, "{skipped:?}");
        assert!(KeySet::from_jwks("{}").is_err());
    }
}
