//! The AWS adapters for every port, on aws-sdk-rust: DynamoDB
//! ([`DynamoStore`]: connection store and dedupe markers), EventBridge
//! ([`EventBridgeBus`]), SQS ([`SqsQueue`]) and the API Gateway Management
//! API ([`ApiGatewayPoster`]); the JWKS sources ([`jwks`]); plus [`provision`], which creates the
//! resources the local stack and the contract tests need on an
//! AWS-compatible endpoint, and [`sdk_config`], which loads the SDK
//! configuration once.
//!
//! Each adapter passes the same contract suite as its embedded twin
//! (`shared/aws/tests/contract/`).

mod apigw;
pub mod dlq;
mod dynamo;
mod eventbridge;
pub mod http;
pub mod jwks;
pub mod provision;
mod sqs;

pub use apigw::{ApiGatewayPoster, management_endpoint};
pub use dynamo::{DynamoChangeFeed, DynamoStore};
pub use eventbridge::EventBridgeBus;
pub use sqs::SqsQueue;

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`), with `endpoint_url` overriding the endpoint of
/// every service when given (moto's server, LocalStack, a VPC endpoint).
pub async fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Checks an endpoint URL before any SDK sees it (the SDK's own error for
/// a missing scheme dumps the whole request).
pub fn parse_endpoint_url(text: &str) -> Result<String, String> {
    if text.starts_with("http://") || text.starts_with("https://") {
        Ok(text.trim_end_matches('/').to_string())
    } else {
        Err(format!(
            "'{text}' has no scheme; write it as http://{text} (local) or https://{text}"
        ))
    }
}

/// An SDK error with its whole chain of causes (their messages, not their
/// debug structures), for logs, port errors and CLI output.
pub fn describe<E: std::error::Error>(error: &E) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
