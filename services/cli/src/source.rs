//! Where the read commands (`history`, `presence`) read from: the local
//! stack's read endpoints (`--stack-url`), or a deployment's DynamoDB table
//! directly (`--table`, on AWS or moto).

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use fanout_aws::DynamoStore;
use fanout_aws::http::HttpGet;
use fanout_core::clock::SystemClock;

/// Largest reply read from the local stack (a 128 KB frame, with room).
const MAX_REPLY_BYTES: usize = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["stack_url", "table"])))]
pub struct Source {
    /// The local stack's HTTP URL, e.g. http://127.0.0.1:3001.
    #[arg(long, env = "FANOUT_STACK_URL")]
    stack_url: Option<String>,
    /// The DynamoDB table of a deployed stack (or of `--backend aws`).
    #[arg(long, env = "FANOUT_TABLE")]
    table: Option<String>,
    /// With --table: a DynamoDB-compatible endpoint (e.g. moto's server).
    /// Omit for AWS (region and credentials from the environment).
    #[arg(long, value_parser = fanout_aws::parse_endpoint_url)]
    dynamodb_endpoint: Option<String>,
}

/// A resolved source.
pub enum Reader {
    Stack(String),
    Table(DynamoStore),
}

impl Source {
    pub async fn open(&self, shards: u32) -> Reader {
        if let Some(url) = &self.stack_url {
            return Reader::Stack(url.trim_end_matches('/').to_string());
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = &self.dynamodb_endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Reader::Table(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&loader.load().await),
            self.table.clone().unwrap_or_default(),
            Arc::new(SystemClock),
            shards,
        ))
    }
}

/// GETs `path_and_query` from the local stack at `base`.
pub async fn get(base: &str, path_and_query: &str) -> anyhow::Result<String> {
    HttpGet::new(&format!("{base}{path_and_query}"), "--stack-url")
        .map_err(anyhow::Error::msg)?
        .text(MAX_REPLY_BYTES, TIMEOUT)
        .await
        .map_err(anyhow::Error::msg)
}
