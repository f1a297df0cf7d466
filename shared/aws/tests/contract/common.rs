//! What every contract needs: the AWS endpoint (or a clear reason there is
//! none), SDK configuration with dummy credentials, and unique names so
//! tests never share resources.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The AWS-compatible endpoint to run the AWS side against. Without one the
/// AWS side is skipped with a note, unless `FANOUT_TEST_AWS_REQUIRED=1`
/// (the test script sets it), where a missing endpoint fails the test.
pub fn aws_endpoint() -> Option<String> {
    match std::env::var("FANOUT_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("FANOUT_TEST_AWS_REQUIRED").as_deref() != Ok("1"),
                "FANOUT_TEST_AWS_REQUIRED=1 but FANOUT_TEST_AWS_ENDPOINT is not set"
            );
            eprintln!(
                "note: FANOUT_TEST_AWS_ENDPOINT is not set; the AWS side of this contract did not run (./scripts/test.sh runs it against moto)"
            );
            None
        }
    }
}

pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "contract",
        ))
        .load()
        .await
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Runs one contract body against the embedded adapter and, when an
/// endpoint is set, the AWS adapter, as two tests.
#[macro_export]
macro_rules! contract {
    ($name:ident: $body:ident, embedded = $embedded:ident, aws = $aws:ident) => {
        mod $name {
            #[tokio::test]
            async fn embedded() {
                super::$body(super::$embedded().await).await;
            }

            #[tokio::test]
            async fn aws() {
                let Some(endpoint) = $crate::common::aws_endpoint() else {
                    return;
                };
                super::$body(super::$aws(&endpoint).await).await;
            }
        }
    };
}
