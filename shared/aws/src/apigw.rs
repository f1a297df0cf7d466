//! The connection poster on the API Gateway Management API. Its errors map
//! onto the outcome classifier's cases: GoneException → gone,
//! LimitExceededException or any 429 → throttled, PayloadTooLargeException
//! → too large, ForbiddenException → forbidden (a misconfiguration), other
//! answers by status, and no answer → transport.

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::http::HttpResponse;
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use bytes::Bytes;

use super::describe;
use fanout_core::ids::ConnectionId;
use fanout_core::ports::{ConnectionInfo, ConnectionPoster, PostError};

/// The @connections endpoint of a stage, as API Gateway's events name it
/// (`requestContext.domainName` and `.stage`).
pub fn management_endpoint(domain_name: &str, stage: &str) -> String {
    format!("https://{domain_name}/{stage}")
}

pub struct ApiGatewayPoster {
    client: Client,
}

impl ApiGatewayPoster {
    /// `client` must be built with the stage's @connections endpoint
    /// (see [`management_endpoint`]).
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A client for `endpoint` on a loaded SDK configuration, with the
    /// SDK's own retries off and each attempt bounded by `attempt_timeout`.
    /// The callers own their retries (the broadcaster's tries, backoff and
    /// rate gate): SDK retries underneath would multiply them, bypass the
    /// gate and count API Gateway's `LimitExceeded` as more throttling.
    pub fn for_endpoint(
        config: &aws_config::SdkConfig,
        endpoint: &str,
        attempt_timeout: std::time::Duration,
    ) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(endpoint)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(attempt_timeout)
                    .build(),
            )
            .build();
        Self::new(Client::from_conf(conf))
    }
}

/// Maps any Management API error onto [`PostError`].
fn post_error<E>(error: SdkError<E, HttpResponse>) -> PostError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = describe(&error);
    match &error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            match service.err().code() {
                Some("GoneException") => PostError::Gone,
                Some("LimitExceededException") | Some("TooManyRequestsException") => {
                    PostError::Throttled(text)
                }
                Some("PayloadTooLargeException") => PostError::PayloadTooLarge,
                Some("ForbiddenException") => PostError::Forbidden(text),
                _ => match status {
                    410 => PostError::Gone,
                    429 => PostError::Throttled(text),
                    413 => PostError::PayloadTooLarge,
                    403 => PostError::Forbidden(text),
                    status => PostError::Http {
                        status,
                        message: text,
                    },
                },
            }
        }
        SdkError::ResponseError(response) => PostError::Http {
            status: response.raw().status().as_u16(),
            message: text,
        },
        _ => PostError::Transport(text),
    }
}

#[async_trait]
impl ConnectionPoster for ApiGatewayPoster {
    async fn post(&self, id: &ConnectionId, frame: &Bytes) -> Result<(), PostError> {
        self.client
            .post_to_connection()
            .connection_id(id.as_str())
            .data(Blob::new(frame.to_vec()))
            .send()
            .await
            .map_err(post_error)?;
        Ok(())
    }

    async fn get(&self, id: &ConnectionId) -> Result<ConnectionInfo, PostError> {
        let out = self
            .client
            .get_connection()
            .connection_id(id.as_str())
            .send()
            .await
            .map_err(post_error)?;
        let millis = |t: Option<&aws_sdk_apigatewaymanagement::primitives::DateTime>| {
            t.and_then(|t| t.to_millis().ok()).unwrap_or(0)
        };
        Ok(ConnectionInfo {
            connected_at_ms: millis(out.connected_at()),
            last_active_at_ms: millis(out.last_active_at()),
            source_ip: out
                .identity()
                .and_then(|i| i.source_ip())
                .unwrap_or_default()
                .to_string(),
            user_agent: out
                .identity()
                .and_then(|i| i.user_agent())
                .map(str::to_owned),
        })
    }

    async fn delete(&self, id: &ConnectionId) -> Result<(), PostError> {
        self.client
            .delete_connection()
            .connection_id(id.as_str())
            .send()
            .await
            .map_err(post_error)?;
        Ok(())
    }
}
