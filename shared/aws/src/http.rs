//! A small HTTP(S) GET client for text documents: a JWKS from an OIDC
//! issuer, or a page of a room's history from the local stack. Built on
//! the rustls the AWS SDK already links, with a timeout and a size cap.

use std::time::Duration;

use bytes::Bytes;
use fanout_core::ports::{Cause, FetchError};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// GETs one `http(s)://` URL.
pub struct HttpGet {
    url: String,
    uri: hyper::Uri,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpGet {
    /// `what` names the URL in errors ("the JWKS URL").
    pub fn new(url: &str, what: &str) -> Result<Self, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("{what} '{url}' is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(format!("{what} '{url}' must be an http(s) URL with a host"));
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

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The body as text, when the status is a success. `Err` carries the
    /// status and the body's first line otherwise.
    pub async fn text(&self, max_bytes: usize, timeout: Duration) -> Result<String, FetchError> {
        let what = || format!("GET {}", self.url);
        let get = async {
            let response =
                self.client
                    .get(self.uri.clone())
                    .await
                    .map_err(|e| FetchError::Failed {
                        what: what(),
                        cause: Cause::new(e),
                    })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), max_bytes)
                .collect()
                .await
                .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
                    Ok(_) => FetchError::TooLarge {
                        what: what(),
                        max: max_bytes,
                    },
                    Err(e) => FetchError::Failed {
                        what: what(),
                        cause: Cause::from(format!("reading the body: {e}")),
                    },
                })?
                .to_bytes();
            let text = String::from_utf8(body.to_vec())
                .map_err(|_| FetchError::NotUtf8 { what: what() })?;
            if !status.is_success() {
                let first_line = text.lines().next().unwrap_or_default().to_owned();
                return Err(FetchError::Status {
                    what: what(),
                    status: status.as_u16(),
                    first_line,
                });
            }
            Ok(text)
        };
        tokio::time::timeout(timeout, get)
            .await
            .map_err(|_| FetchError::TimedOut {
                what: what(),
                after: timeout,
            })?
    }
}
