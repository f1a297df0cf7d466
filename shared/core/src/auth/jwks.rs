//! The JWKS cache: keys from a [`JwksSource`], kept for a TTL and fetched
//! again early when a token names a `kid` the cache does not hold (a
//! rotation), at most once per minimum interval so unknown `kid`s cannot
//! make every connection attempt fetch. While a fetch fails the last good
//! keys keep serving.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::auth::keys::{JwksError, KeySet, PinnedKey};
use crate::ports::{FetchError, JwksSource};

struct State {
    keys: KeySet,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last tried, successful or not.
    tried_at: Option<Instant>,
    last_error: Option<KeysUnavailable>,
}

pub struct JwksCache {
    source: Arc<dyn JwksSource>,
    ttl: Duration,
    min_refresh_interval: Duration,
    // One lock: concurrent lookups that need a fetch wait for the one
    // already under way instead of each fetching.
    state: Mutex<State>,
}

/// Why no keys could be had from the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysUnavailable {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Document(#[from] JwksError),
    /// The document held no key fanout can use: taken as a fault of the
    /// issuer (a botched rotation), not as "trust nothing".
    #[error("the JWKS holds no usable key")]
    NoUsableKey,
    #[error("no keys fetched yet")]
    NotYetFetched,
}

/// Why a key could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookupError {
    /// The JWKS holds no key with this `kid`.
    UnknownKid(String),
    /// No keys could ever be fetched.
    Unavailable(KeysUnavailable),
}

impl JwksCache {
    pub fn new(source: Arc<dyn JwksSource>, ttl: Duration, min_refresh_interval: Duration) -> Self {
        Self {
            source,
            ttl,
            min_refresh_interval,
            state: Mutex::new(State {
                keys: KeySet::default(),
                fetched_at: None,
                tried_at: None,
                last_error: None,
            }),
        }
    }

    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// The key named `kid`, fetching the JWKS when the cache is stale or
    /// does not know `kid` (within the minimum interval).
    pub async fn key(&self, kid: &str) -> Result<Arc<PinnedKey>, KeyLookupError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let stale = state
            .fetched_at
            .is_none_or(|at| now.duration_since(at) >= self.ttl);
        let may_fetch = state
            .tried_at
            .is_none_or(|at| now.duration_since(at) >= self.min_refresh_interval);
        if may_fetch && (stale || state.keys.get(kid).is_none()) {
            self.refresh(&mut state, now).await;
        }
        match state.keys.get(kid) {
            Some(key) => Ok(key),
            None if state.fetched_at.is_none() => Err(KeyLookupError::Unavailable(
                state
                    .last_error
                    .clone()
                    .unwrap_or(KeysUnavailable::NotYetFetched),
            )),
            None => Err(KeyLookupError::UnknownKid(kid.to_string())),
        }
    }

    /// Fetches the keys now (at startup, so the first connection does not
    /// wait and a misconfigured source shows up in the log at once).
    pub async fn prefetch(&self) -> Result<usize, KeysUnavailable> {
        let mut state = self.state.lock().await;
        self.refresh(&mut state, Instant::now()).await;
        match &state.last_error {
            Some(e) => Err(e.clone()),
            None => Ok(state.keys.len()),
        }
    }

    async fn refresh(&self, state: &mut State, now: Instant) {
        state.tried_at = Some(now);
        let fetched = self
            .source
            .fetch()
            .await
            .map_err(KeysUnavailable::from)
            .and_then(|text| KeySet::from_jwks(&text).map_err(KeysUnavailable::from))
            .and_then(|(keys, skipped)| {
                if keys.is_empty() {
                    Err(KeysUnavailable::NoUsableKey)
                } else {
                    Ok((keys, skipped))
                }
            });
        match fetched {
            Ok((keys, skipped)) => {
                if !skipped.is_empty() {
                    tracing::info!(source = %self.source.describe(), ?skipped, "JWKS keys skipped");
                }
                tracing::info!(source = %self.source.describe(), keys = keys.len(), "JWKS fetched");
                state.keys = keys;
                state.fetched_at = Some(now);
                state.last_error = None;
            }
            Err(error) => {
                tracing::error!(source = %self.source.describe(), %error,
                    "could not fetch the JWKS; keeping the keys already known");
                state.last_error = Some(error);
            }
        }
    }
}
