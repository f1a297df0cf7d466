//! Where JWKS documents come from: an OIDC issuer's `jwks_uri` over HTTPS
//! (Cognito, Auth0, Okta, …) or a file. The verifier in fanout-core caches
//! and rotates; these only fetch, with a timeout and a size cap.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use fanout_core::ports::JwksSource;

/// Longest a JWKS fetch may take; a slow issuer must not hold `$connect`
/// for long (the cached keys keep serving meanwhile).
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted (real ones are a few KB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// A JWKS at an `https://` (or, for tests and local issuers, `http://`)
/// URL.
pub struct HttpJwks {
    url: String,
    uri: hyper::Uri,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpJwks {
    pub fn new(url: &str) -> Result<Self, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("the JWKS URL '{url}' is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(format!(
                "the JWKS URL '{url}' must be an http(s) URL with a host"
            ));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("could not load the system's root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            url: url.to_string(),
            uri,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

#[async_trait]
impl JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<String, String> {
        let get = async {
            let response = self
                .client
                .get(self.uri.clone())
                .await
                .map_err(|e| format!("GET {}: {e}", self.url))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("GET {}: HTTP {status}", self.url));
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| format!("GET {}: reading the body: {e}", self.url))?
                .to_bytes();
            String::from_utf8(body.to_vec())
                .map_err(|_| format!("GET {}: the body is not UTF-8", self.url))
        };
        tokio::time::timeout(JWKS_FETCH_TIMEOUT, get)
            .await
            .map_err(|_| format!("GET {}: no answer within {JWKS_FETCH_TIMEOUT:?}", self.url))?
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// A JWKS document on disk, read again each time the cache refreshes.
pub struct FileJwks {
    path: PathBuf,
}

impl FileJwks {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait]
impl JwksSource for FileJwks {
    async fn fetch(&self) -> Result<String, String> {
        let text = tokio::fs::read(&self.path)
            .await
            .map_err(|e| format!("reading {}: {e}", self.path.display()))?;
        if text.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "{} is {} bytes; a JWKS may be at most {MAX_JWKS_BYTES}",
                self.path.display(),
                text.len()
            ));
        }
        String::from_utf8(text).map_err(|_| format!("{} is not UTF-8", self.path.display()))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The verifier the settings describe: the HS256 `secret` when given, and
/// the JWKS from `--jwks-url` or `--jwks-file` when set. At least one key
/// source is required.
pub fn token_verifier(
    secret: Option<&[u8]>,
    settings: &fanout_core::settings::AuthSettings,
) -> Result<fanout_core::auth::TokenVerifier, String> {
    use std::sync::Arc;
    let source: Option<Arc<dyn JwksSource>> = match (&settings.jwks_url, &settings.jwks_file) {
        (Some(url), _) => Some(Arc::new(HttpJwks::new(url)?)),
        (None, Some(path)) => Some(Arc::new(FileJwks::new(path))),
        (None, None) => None,
    };
    if secret.is_none() && source.is_none() {
        return Err(
            "no token keys: configure an HS256 secret, FANOUT_JWKS_URL (--jwks-url) or FANOUT_JWKS_FILE (--jwks-file)"
                .into(),
        );
    }
    let jwks = source.map(|s| {
        fanout_core::auth::JwksCache::new(
            s,
            settings.jwks_cache_ttl,
            settings.jwks_min_refresh_interval,
        )
    });
    Ok(fanout_core::auth::TokenVerifier::new(
        secret, jwks, settings,
    ))
}
