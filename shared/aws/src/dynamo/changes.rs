//! The table's change records through DynamoDB Streams
//! (aws-sdk-dynamodbstreams), as Lambda's event source mapping reads them:
//! the local stack's change feed on `--backend aws`. Deployed, Lambda
//! polls the stream itself and this is not used.
//!
//! It starts at the stream's tip (`LATEST`) for the shards open when it
//! opens, reads shards found later from their start (`TRIM_HORIZON`), and
//! drops a shard once it is closed and read to its end.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::dynamodb::{EventRecord, StreamRecord, StreamViewType, UserIdentity};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use tokio::sync::Mutex;
use tokio::time::Instant;

use fanout_core::ports::{Cause, ChangeFeed, StoreError};

/// How often an idle reader polls (Lambda polls a shard four times a
/// second).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the stream's shards are listed again.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);
/// Records per GetRecords call.
const GET_RECORDS_LIMIT: i32 = 1_000;

pub struct DynamoChangeFeed {
    client: Client,
    stream_arn: String,
    state: Mutex<ReaderState>,
}

struct ReaderState {
    /// Open shards and the iterator to read each from next (`None`: get
    /// one from the shard's start).
    shards: BTreeMap<String, Option<String>>,
    /// Shards read to their end, so rediscovery does not read them again.
    finished: std::collections::HashSet<String>,
    pending: VecDeque<EventRecord>,
    discovered_at: Option<Instant>,
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(error: E) -> StoreError {
    StoreError::Unavailable(Cause::new(error))
}

impl DynamoChangeFeed {
    /// Opens the stream of `table`, starting at its tip. Fails, naming the
    /// table, when it has no stream.
    pub async fn open(
        sdk: &aws_config::SdkConfig,
        dynamodb: &aws_sdk_dynamodb::Client,
        table: &str,
    ) -> Result<Self, StoreError> {
        let described = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(unavailable)?;
        let stream_arn = described
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "table {table} has no stream: enable its StreamSpecification (OLD_IMAGE) so removed connections are swept"
                ).into())
            })?;
        let feed = Self {
            client: Client::new(sdk),
            stream_arn,
            state: Mutex::new(ReaderState {
                shards: BTreeMap::new(),
                finished: Default::default(),
                pending: VecDeque::new(),
                discovered_at: None,
            }),
        };
        {
            let mut state = feed.state.lock().await;
            feed.discover(&mut state, ShardIteratorType::Latest).await?;
        }
        Ok(feed)
    }

    /// Lists the stream's shards; new ones get an iterator of `start`.
    async fn discover(
        &self,
        state: &mut ReaderState,
        start: ShardIteratorType,
    ) -> Result<(), StoreError> {
        let mut exclusive_start = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(exclusive_start)
                .send()
                .await
                .map_err(unavailable)?;
            let Some(description) = out.stream_description else {
                break;
            };
            for shard in description.shards.unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                if state.shards.contains_key(&id) || state.finished.contains(&id) {
                    continue;
                }
                let iterator = self
                    .client
                    .get_shard_iterator()
                    .stream_arn(&self.stream_arn)
                    .shard_id(&id)
                    .shard_iterator_type(start.clone())
                    .send()
                    .await
                    .map_err(unavailable)?
                    .shard_iterator;
                state.shards.insert(id, iterator);
            }
            match description.last_evaluated_shard_id {
                Some(last) => exclusive_start = Some(last),
                None => break,
            }
        }
        state.discovered_at = Some(Instant::now());
        Ok(())
    }

    /// One GetRecords per open shard, appending what they return.
    async fn poll(&self, state: &mut ReaderState) -> Result<(), StoreError> {
        if state
            .discovered_at
            .is_none_or(|at| at.elapsed() >= DISCOVERY_INTERVAL)
        {
            self.discover(state, ShardIteratorType::TrimHorizon).await?;
        }
        let ids: Vec<String> = state.shards.keys().cloned().collect();
        for id in ids {
            let Some(Some(iterator)) = state.shards.get(&id).cloned() else {
                state.shards.remove(&id);
                state.finished.insert(id);
                continue;
            };
            let out = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(GET_RECORDS_LIMIT)
                .send()
                .await
                .map_err(unavailable)?;
            state.pending.extend(
                out.records
                    .unwrap_or_default()
                    .into_iter()
                    .map(event_record),
            );
            match out.next_shard_iterator {
                Some(next) => {
                    state.shards.insert(id, Some(next));
                }
                None => {
                    state.shards.remove(&id);
                    state.finished.insert(id);
                }
            }
        }
        Ok(())
    }
}

/// A stream record in the shape Lambda hands a function.
fn event_record(record: Record) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id.unwrap_or_default();
    out.event_name = record
        .event_name
        .map(|n| n.as_str().to_string())
        .unwrap_or_default();
    out.event_source = record.event_source;
    out.event_version = record.event_version;
    out.aws_region = record.aws_region.unwrap_or_default();
    out.user_identity = record.user_identity.map(|who| {
        let mut identity = UserIdentity::default();
        identity.type_ = who.r#type.unwrap_or_default();
        identity.principal_id = who.principal_id.unwrap_or_default();
        identity
    });
    if let Some(change) = record.dynamodb {
        let image = |map: Option<std::collections::HashMap<String, _>>| {
            map.unwrap_or_default()
                .into_iter()
                .map(
                    |(name, value): (String, aws_sdk_dynamodbstreams::types::AttributeValue)| {
                        (name, serde_dynamo::AttributeValue::from(value))
                    },
                )
                .collect::<std::collections::HashMap<_, _>>()
                .into()
        };
        let mut stream = StreamRecord::default();
        stream.keys = image(change.keys);
        stream.old_image = image(change.old_image);
        stream.new_image = image(change.new_image);
        stream.sequence_number = change.sequence_number;
        stream.size_bytes = change.size_bytes.unwrap_or_default();
        stream.stream_view_type = Some(StreamViewType::OldImage);
        if let Some(at) = change.approximate_creation_date_time {
            stream.approximate_creation_date_time =
                chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default();
        }
        out.change = stream;
    }
    out
}

#[async_trait]
impl ChangeFeed for DynamoChangeFeed {
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<EventRecord>, StoreError> {
        let deadline = Instant::now() + wait;
        loop {
            {
                let mut state = self.state.lock().await;
                if state.pending.is_empty() {
                    self.poll(&mut state).await?;
                }
                if !state.pending.is_empty() {
                    return Ok(state.pending.iter().take(max).cloned().collect());
                }
            }
            if Instant::now() + POLL_INTERVAL > deadline {
                return Ok(Vec::new());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn acknowledge(&self, count: usize) {
        let mut state = self.state.lock().await;
        let count = count.min(state.pending.len());
        state.pending.drain(..count);
    }
}
