//! Token verification against real keys: RSA, P-256 and Ed25519 key pairs
//! generated per run, their JWKS served by a local HTTP server (and read
//! from a file), verified through `HttpJwks`/`FileJwks` and the cache.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine;
use bytes::Bytes;
use fanout_aws::jwks::token_verifier;
use fanout_core::auth::{Right, TokenError, TokenVerifier};
use fanout_core::ids::{RoomId, TenantId, UserId};
use fanout_core::settings::AuthSettings;
use fanout_core::token::TokenSigner;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// A generated key pair: how to sign with it, and its public JWK.
struct TestKey {
    signer: TokenSigner,
    jwk: Jwk,
    kid: String,
}

impl TestKey {
    fn new(key: EncodingKey, algorithm: Algorithm, kid: &str) -> Self {
        let mut jwk = Jwk::from_encoding_key(&key, algorithm).unwrap();
        jwk.common.key_id = Some(kid.to_string());
        Self {
            signer: TokenSigner::with_key(key, algorithm, kid),
            jwk,
            kid: kid.to_string(),
        }
    }

    fn rsa(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        // jsonwebtoken signs RS256 with a PKCS#1 RSAPrivateKey.
        let pkcs1 = pkcs8_private_key(pkcs8.as_ref());
        Self::new(EncodingKey::from_rsa_der(pkcs1), Algorithm::RS256, kid)
    }

    fn ec(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        Self::new(
            EncodingKey::from_ec_der(der.as_ref()),
            Algorithm::ES256,
            kid,
        )
    }

    fn ed(kid: &str) -> Self {
        let der = Ed25519KeyPair::generate().unwrap().to_pkcs8v1().unwrap();
        Self::new(
            EncodingKey::from_ed_der(der.as_ref()),
            Algorithm::EdDSA,
            kid,
        )
    }

    fn token(&self, claims: Value) -> String {
        self.signer.sign(&claims).unwrap()
    }
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (RFC 5208):
/// SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING key }.
fn pkcs8_private_key(der: &[u8]) -> &[u8] {
    /// One DER element at `at`: (tag, content start, content end).
    fn element(der: &[u8], at: usize) -> (u8, usize, usize) {
        let tag = der[at];
        let first = der[at + 1] as usize;
        let (len, start) = if first < 0x80 {
            (first, at + 2)
        } else {
            let n = first & 0x7f;
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, at + 2 + n)
        };
        (tag, start, start + len)
    }
    let (_, body, _) = element(der, 0);
    let (_, _, version_end) = element(der, body);
    let (_, _, algorithm_end) = element(der, version_end);
    let (tag, start, end) = element(der, algorithm_end);
    assert_eq!(tag, 0x04, "PKCS#8 privateKey is an OCTET STRING");
    &der[start..end]
}

fn jwks(keys: &[&TestKey]) -> String {
    serde_json::to_string(&JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    })
    .unwrap()
}

/// A JWKS endpoint whose document can change, counting its fetches.
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(body: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let body = Arc::new(Mutex::new(body));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (body.clone(), fetches.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (served, counted) = (served.clone(), counted.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_request| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let text = served.lock().unwrap().clone();
                        async move {
                            Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(
                                Bytes::from(text),
                            )))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self { url, body, fetches }
    }

    fn serve(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(ttl: i64) -> Value {
    json!({"tenant": "acme", "sub": "alice", "iat": now(), "exp": now() + ttl})
}

fn settings(url: &str) -> AuthSettings {
    AuthSettings {
        jwks_url: Some(url.to_string()),
        ..AuthSettings::default()
    }
}

fn verifier(url: &str, secret: Option<&[u8]>) -> TokenVerifier {
    token_verifier(secret, &settings(url)).unwrap()
}

#[tokio::test]
async fn each_algorithm_verifies_with_its_jwks_key() {
    let (rsa, ec, ed) = (
        TestKey::rsa("rsa-1"),
        TestKey::ec("ec-1"),
        TestKey::ed("ed-1"),
    );
    let server = JwksServer::start(jwks(&[&rsa, &ec, &ed])).await;
    let verifier = verifier(&server.url, None);
    for key in [&rsa, &ec, &ed] {
        let verified = verifier
            .verify(&key.token(claims(600)), now())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", key.kid));
        assert_eq!(verified.principal.tenant.as_str(), "acme");
        assert_eq!(verified.principal.user.as_str(), "alice");
    }
    assert_eq!(server.fetches(), 1, "one fetch serves every key");
}

#[tokio::test]
async fn forged_and_mismatched_tokens_are_refused() {
    let (rsa, ec) = (TestKey::rsa("rsa-1"), TestKey::ec("ec-1"));
    let server = JwksServer::start(jwks(&[&rsa, &ec])).await;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };

    // alg none: never accepted.
    let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims(600)));
    let with_secret = verifier(&server.url, Some(b"a-secret-that-is-32-bytes-long!!"));
    assert!(matches!(
        with_secret.verify(&none, now()).await,
        Err(TokenError::BadHeader(_))
    ));

    // HS256 "signed" with the RSA public key: HS256 only ever verifies
    // with the configured secret, and without one it is refused outright.
    let public_key = serde_json::to_vec(&rsa.jwk).unwrap();
    let confused = TokenSigner::new(&public_key).sign(&claims(600)).unwrap();
    assert!(matches!(
        with_secret.verify(&confused, now()).await,
        Err(TokenError::BadSignature)
    ));
    let jwks_only = verifier(&server.url, None);
    assert!(matches!(
        jwks_only.verify(&confused, now()).await,
        Err(TokenError::NoKeyForAlgorithm(Algorithm::HS256))
    ));

    // An ES256 token naming the RSA key: the key's algorithm wins.
    let mismatched = TokenSigner::with_key(
        EncodingKey::from_ec_der(
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .unwrap()
                .to_pkcs8v1()
                .unwrap()
                .as_ref(),
        ),
        Algorithm::ES256,
        "rsa-1",
    )
    .sign(&claims(600))
    .unwrap();
    assert!(matches!(
        jwks_only.verify(&mismatched, now()).await,
        Err(TokenError::AlgorithmMismatch { .. })
    ));

    // A kid the JWKS does not hold; a key that signed but is not ours.
    let stranger = TestKey::ec("ec-stranger");
    assert!(matches!(
        jwks_only.verify(&stranger.token(claims(600)), now()).await,
        Err(TokenError::UnknownKid(kid)) if kid == "ec-stranger"
    ));
    let impostor = TestKey::ec("ec-1");
    assert!(matches!(
        jwks_only.verify(&impostor.token(claims(600)), now()).await,
        Err(TokenError::BadSignature)
    ));

    // Unknown critical headers.
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp-ext".into()]);
    let crit = jsonwebtoken::encode(
        &header,
        &claims(600),
        &EncodingKey::from_secret(b"a-secret-that-is-32-bytes-long!!"),
    )
    .unwrap();
    assert!(matches!(
        with_secret.verify(&crit, now()).await,
        Err(TokenError::Critical(_))
    ));

    // Expired, and valid for longer than the 24 h maximum.
    assert!(matches!(
        jwks_only.verify(&ec.token(claims(-60)), now()).await,
        Err(TokenError::Expired)
    ));
    assert!(matches!(
        jwks_only.verify(&ec.token(claims(48 * 3600)), now()).await,
        Err(TokenError::TooLong { .. })
    ));
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let ec = TestKey::ec("ec-1");
    let server = JwksServer::start(jwks(&[&ec])).await;
    let strict = token_verifier(
        None,
        &AuthSettings {
            token_issuer: Some("https://issuer.example".into()),
            token_audience: vec!["app-1".into(), "app-2".into()],
            ..settings(&server.url)
        },
    )
    .unwrap();
    let with = |iss: &str, aud: &str| {
        let mut c = claims(600);
        c["iss"] = iss.into();
        c["aud"] = aud.into();
        ec.token(c)
    };
    assert!(
        strict
            .verify(&with("https://issuer.example", "app-2"), now())
            .await
            .is_ok()
    );
    assert!(matches!(
        strict
            .verify(&with("https://evil.example", "app-1"), now())
            .await,
        Err(TokenError::WrongIssuer)
    ));
    assert!(matches!(
        strict
            .verify(&with("https://issuer.example", "app-9"), now())
            .await,
        Err(TokenError::WrongAudience)
    ));
    // Configured claims must be present.
    assert!(matches!(
        strict.verify(&ec.token(claims(600)), now()).await,
        Err(TokenError::WrongIssuer | TokenError::WrongAudience)
    ));
    // Without configuration, iss and aud are not checked.
    let lax = verifier(&server.url, None);
    assert!(
        lax.verify(&with("https://anyone", "any"), now())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn rotated_keys_are_picked_up_and_unknown_kids_fetch_at_most_once_per_interval() {
    let (old, new) = (TestKey::ed("2026-11"), TestKey::ed("2026-12"));
    let server = JwksServer::start(jwks(&[&old])).await;
    let patient = token_verifier(
        None,
        &AuthSettings {
            jwks_min_refresh_interval: Duration::from_secs(3600),
            ..settings(&server.url)
        },
    )
    .unwrap();
    let eager = token_verifier(
        None,
        &AuthSettings {
            jwks_min_refresh_interval: Duration::ZERO,
            ..settings(&server.url)
        },
    )
    .unwrap();
    assert!(patient.verify(&old.token(claims(600)), now()).await.is_ok());
    assert!(eager.verify(&old.token(claims(600)), now()).await.is_ok());
    assert_eq!(server.fetches(), 2);

    // The issuer rotates: the new kid appears in its JWKS.
    server.serve(jwks(&[&old, &new]));
    let rotated = new.token(claims(600));
    assert!(
        eager.verify(&rotated, now()).await.is_ok(),
        "an unknown kid refetches"
    );
    assert_eq!(server.fetches(), 3);

    // Within the interval the patient cache does not refetch, however many
    // unknown kids arrive; it keeps serving the keys it has.
    for _ in 0..5 {
        assert!(matches!(
            patient.verify(&rotated, now()).await,
            Err(TokenError::UnknownKid(_))
        ));
    }
    assert!(patient.verify(&old.token(claims(600)), now()).await.is_ok());
    assert_eq!(server.fetches(), 3);
}

/// An issuer that briefly serves no keys (a botched rotation) must not
/// make the cache forget the keys it has: every token would be refused
/// until the next fetch.
#[tokio::test]
async fn a_jwks_without_keys_keeps_the_last_good_keys() {
    let key = TestKey::ec("ec-1");
    let server = JwksServer::start(jwks(&[&key])).await;
    let verifier = token_verifier(
        None,
        &AuthSettings {
            jwks_cache_ttl: Duration::ZERO,
            jwks_min_refresh_interval: Duration::ZERO,
            ..settings(&server.url)
        },
    )
    .unwrap();
    assert!(
        verifier
            .verify(&key.token(claims(600)), now())
            .await
            .is_ok()
    );
    server.serve(r#"{"keys":[]}"#.to_string());
    assert!(
        verifier
            .verify(&key.token(claims(600)), now())
            .await
            .is_ok(),
        "the empty document replaced the keys"
    );
    assert!(server.fetches() >= 2, "the empty document was fetched");
}

#[tokio::test]
async fn an_unreachable_jwks_refuses_with_a_reason_and_a_file_works_too() {
    let ec = TestKey::ec("ec-1");
    let unreachable = verifier("http://127.0.0.1:9/jwks.json", None);
    assert!(matches!(
        unreachable.verify(&ec.token(claims(600)), now()).await,
        Err(TokenError::KeysUnavailable(_))
    ));

    let dir = std::env::temp_dir().join(format!("fanout-jwks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks(&[&ec])).unwrap();
    let from_file = token_verifier(
        None,
        &AuthSettings {
            jwks_file: Some(path),
            ..AuthSettings::default()
        },
    )
    .unwrap();
    assert!(
        from_file
            .verify(&ec.token(claims(600)), now())
            .await
            .is_ok()
    );
    std::fs::remove_dir_all(dir).unwrap();

    assert!(token_verifier(None, &AuthSettings::default()).is_err());
    assert!(token_verifier(None, &settings("ftp://example.com/jwks")).is_err());
}

#[tokio::test]
async fn claims_are_mapped_by_configuration() {
    let rsa = TestKey::rsa("rsa-1");
    let server = JwksServer::start(jwks(&[&rsa])).await;
    // Cognito: the tenant in a custom attribute, capabilities as a string.
    let cognito = token_verifier(
        None,
        &AuthSettings {
            tenant_claim: "custom:tenant".into(),
            user_claim: "cognito:username".into(),
            capabilities_claim: "custom:rooms".into(),
            ..settings(&server.url)
        },
    )
    .unwrap();
    let token = rsa.token(json!({
        "sub": "5f1c-uuid", "cognito:username": "alice", "custom:tenant": "acme",
        "custom:rooms": r#"{"lobby":["subscribe","publish"],"team-42:*":["subscribe"]}"#,
        "exp": now() + 600,
    }));
    let verified = cognito.verify(&token, now()).await.unwrap();
    assert_eq!(verified.principal.tenant.as_str(), "acme");
    assert_eq!(verified.principal.user.as_str(), "alice");
    let caps = verified.capabilities.unwrap();
    let lobby = caps.rights_for(&RoomId::new("lobby").unwrap());
    assert!(lobby.contains(Right::Publish));
    let team = caps.rights_for(&RoomId::new("team-42:x").unwrap());
    assert!(team.contains(Right::Subscribe) && !team.contains(Right::Publish));

    // A single-tenant deployment reads no tenant claim.
    let fixed = token_verifier(
        None,
        &AuthSettings {
            fixed_tenant: Some(TenantId::new("solo").unwrap()),
            ..settings(&server.url)
        },
    )
    .unwrap();
    let token = rsa.token(json!({"sub": "bob", "exp": now() + 600}));
    let verified = fixed.verify(&token, now()).await.unwrap();
    assert_eq!(verified.principal.tenant.as_str(), "solo");

    // Missing or malformed claims name the claim.
    let lax = verifier(&server.url, None);
    let no_tenant = rsa.token(json!({"sub": "bob", "exp": now() + 600}));
    assert!(matches!(
        lax.verify(&no_tenant, now()).await,
        Err(TokenError::BadClaim(c)) if c.contains("tenant")
    ));
    let bad_caps = rsa.token(
        json!({"sub": "bob", "tenant": "acme", "capabilities": ["lobby"], "exp": now() + 600}),
    );
    assert!(matches!(
        lax.verify(&bad_caps, now()).await,
        Err(TokenError::BadClaim(c)) if c.contains("capabilities")
    ));
}

#[tokio::test]
async fn grants_are_verified_with_the_same_keys_and_are_not_connection_tokens() {
    let ec = TestKey::ec("ec-1");
    let server = JwksServer::start(jwks(&[&ec])).await;
    let verifier = verifier(&server.url, None);
    let (tenant, user) = (
        TenantId::new("acme").unwrap(),
        UserId::new("alice").unwrap(),
    );
    let room = RoomId::new("vip").unwrap();
    let grant = ec
        .signer
        .mint_grant(
            &tenant,
            &user,
            &room,
            &[Right::Subscribe, Right::Publish],
            now(),
            Duration::from_secs(60),
        )
        .unwrap();
    let verified = verifier.verify_grant(&grant, now()).await.unwrap();
    assert_eq!(verified.room, room);
    assert!(verified.rights.contains(Right::Publish));
    assert!(matches!(
        verifier.verify(&grant, now()).await,
        Err(TokenError::BadClaim(c)) if c.contains("grant")
    ));
    let connection_token = ec.token(claims(600));
    assert!(
        verifier
            .verify_grant(&connection_token, now())
            .await
            .is_err()
    );
    let expired = ec
        .signer
        .mint_grant(
            &tenant,
            &user,
            &room,
            &[Right::Subscribe],
            now() - 600,
            Duration::from_secs(60),
        )
        .unwrap();
    assert!(matches!(
        verifier.verify_grant(&expired, now()).await,
        Err(TokenError::Expired)
    ));
}
