//! Where JWKS documents come from: an OIDC issuer's `jwks_uri` over HTTPS
//! (Cognito, Auth0, Okta, …) or a file. The verifier in fanout-core caches
//! and rotates; these only fetch, with a timeout and a size cap.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use fanout_core::ports::{Cause, FetchError, JwksSource};

use crate::http::HttpGet;

/// Longest a JWKS fetch may take; a slow issuer must not hold `$connect`
/// for long (the cached keys keep serving meanwhile).
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted (real ones are a few KB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// A JWKS at an `https://` (or, for tests and local issuers, `http://`)
/// URL.
pub struct HttpJwks {
    get: HttpGet,
}

impl HttpJwks {
    pub fn new(url: &str) -> Result<Self, String> {
        Ok(Self {
            get: HttpGet::new(url, "the JWKS URL")?,
        })
    }
}

#[async_trait]
impl JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<String, FetchError> {
        self.get.text(MAX_JWKS_BYTES, JWKS_FETCH_TIMEOUT).await
    }

    fn describe(&self) -> String {
        self.get.url().to_string()
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
    async fn fetch(&self) -> Result<String, FetchError> {
        let what = || format!("reading {}", self.path.display());
        let text = tokio::fs::read(&self.path)
            .await
            .map_err(|e| FetchError::Failed {
                what: what(),
                cause: Cause::new(e),
            })?;
        if text.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge {
                what: what(),
                max: MAX_JWKS_BYTES,
            });
        }
        String::from_utf8(text).map_err(|_| FetchError::NotUtf8 { what: what() })
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
