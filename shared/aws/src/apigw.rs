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

use fanout_core::ids::ConnectionId;
use fanout_core::ports::{Cause, ConnectionInfo, ConnectionPoster, PostError};

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

/// Maps any Management API error onto [`PostError`], keeping the SDK's
/// error as the cause.
fn post_error<E>(error: SdkError<E, HttpResponse>) -> PostError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &error {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("GoneException") => Kind::Gone,
            Some("LimitExceededException") | Some("TooManyRequestsException") => Kind::Throttled,
            Some("PayloadTooLargeException") => Kind::TooLarge,
            Some("ForbiddenException") => Kind::Forbidden,
            _ => Kind::Status(service.raw().status().as_u16()),
        },
        SdkError::ResponseError(response) => Kind::Http(response.raw().status().as_u16()),
        _ => Kind::Transport,
    };
    let cause = Cause::new(error);
    match kind {
        Kind::Gone | Kind::Status(410) => PostError::Gone,
        Kind::Throttled | Kind::Status(429) => PostError::Throttled(cause),
        Kind::TooLarge | Kind::Status(413) => PostError::PayloadTooLarge,
        Kind::Forbidden | Kind::Status(403) => PostError::Forbidden(cause),
        Kind::Status(status) | Kind::Http(status) => PostError::Http {
            status,
            message: cause,
        },
        Kind::Transport => PostError::Transport(cause),
    }
}

/// What a Management API error says, before the error moves into its
/// cause.
enum Kind {
    Gone,
    Throttled,
    TooLarge,
    Forbidden,
    /// A service error with no code this adapter knows: its status.
    Status(u16),
    /// A response that was not a service error.
    Http(u16),
    Transport,
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_apigatewaymanagement::config::{Credentials, SharedCredentialsProvider};
    use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
    use std::time::Duration;

    /// Nothing listens there: the post fails before any response.
    #[tokio::test]
    async fn a_transport_failure_keeps_the_sdks_error_as_its_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            )))
            .build();
        let poster = ApiGatewayPoster::for_endpoint(&sdk, &endpoint, Duration::from_secs(2));
        let id = ConnectionId::new("c1").unwrap();
        let error = poster
            .post(&id, &Bytes::from_static(b"{}"))
            .await
            .unwrap_err();
        let PostError::Transport(cause) = &error else {
            panic!("expected a transport error, got {error:?}");
        };
        assert!(
            cause
                .downcast_ref::<SdkError<PostToConnectionError, HttpResponse>>()
                .is_some(),
            "{cause}"
        );
        assert!(std::error::Error::source(&error).is_some());
    }
}
