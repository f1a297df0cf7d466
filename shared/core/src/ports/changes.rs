//! The change-feed port: the connection table's change records, in order,
//! as DynamoDB Streams keeps them. On AWS, Lambda's event source mapping
//! reads the stream and invokes the sweeper; the local stack's mapping
//! reads this port instead (the embedded store's change log, or the
//! table's stream through aws-sdk-dynamodbstreams on `--backend aws`).

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::dynamodb::EventRecord;

use super::StoreError;

#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Up to `max` records after the last acknowledged ones, oldest first,
    /// waiting up to `wait` for a first one. Reading again without
    /// acknowledging returns the same records (a failed batch is retried).
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<EventRecord>, StoreError>;

    /// The first `count` records of the last read are done with.
    async fn acknowledge(&self, count: usize);
}
