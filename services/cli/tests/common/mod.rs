//! What the CLI suites that also run against moto's server share.

#![allow(dead_code)] // each suite uses its own subset

use aws_config::SdkConfig;

/// moto's endpoint from `FANOUT_TEST_AWS_ENDPOINT`; `None` (with a note)
/// when unset, unless `FANOUT_TEST_AWS_REQUIRED=1` (the test script sets
/// it), where a missing endpoint fails the test.
pub fn moto_endpoint() -> Option<String> {
    match std::env::var("FANOUT_TEST_AWS_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert!(
                std::env::var("FANOUT_TEST_AWS_REQUIRED").as_deref() != Ok("1"),
                "FANOUT_TEST_AWS_REQUIRED=1 but FANOUT_TEST_AWS_ENDPOINT is not set"
            );
            eprintln!("note: FANOUT_TEST_AWS_ENDPOINT is not set; the moto side did not run");
            None
        }
    }
}

/// SDK configuration for `endpoint` with dummy credentials.
pub async fn moto_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "cli-test",
        ))
        .load()
        .await
}
