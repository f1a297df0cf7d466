//! The connection store and dedupe markers on one DynamoDB table (the
//! single-table design in DESIGN.md):
//!
//! | item | pk | sk |
//! |---|---|---|
//! | connection | `CONN#<id>` | `META` (GSI1: `USER#<tenant>#<user>` / `CONN#<id>`) |
//! | membership | `ROOM#<tenant>#<room>#<shard>` | `CONN#<id>` |
//! | tenant-wide set | `TENANT#<tenant>#<shard>` | `CONN#<id>` |
//! | reverse membership | `CONN#<id>` | `ROOM#<tenant>#<room>` |
//! | dedupe marker | `EVT#<key>` | `EVT` |
//! | tenant publish rate | `RATE#<tenant>` | `PUBLISH` |
//! | connection signal rate | `RATE#<connection id>` | `SIGNAL` |
//! | room stream counter | `STREAM#<tenant>#<room>` | `HEAD` |
//! | room stream entry | `STREAM#<tenant>#<room>` | `SEQ#<seq, 20 digits>` |
//!
//! The connection item (its layout is `fanout_core::changes`, which the
//! sweeper reads back from the table's stream) also holds the token's
//! expiry and capabilities, its life (`expiresAt`) and the frame-rate
//! gate's TAT (`rateTat`); its `ttl` is the heartbeat deadline, moved by
//! every admitted frame, so a connection that stops heartbeating is
//! deleted by TTL and swept. Memberships hold the rights a grant added
//! (`granted`).
//!
//! Every item but a stream's counter has a `ttl` (epoch seconds) that
//! reads filter on, since DynamoDB's TTL deletion can lag by days. The
//! counter stays (one small item per streamed room), so a room's `seq`
//! never starts over.
//!
//! The dedupe markers are in [`dedupe`], the room streams in [`stream`]. Batch writes go 25 at a time
//! and retry `UnprocessedItems` with backoff; queries page to the end.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, Select, WriteRequest};
use futures::StreamExt;
use std::sync::Arc;

use fanout_core::auth::{Capabilities, Rights};
use fanout_core::backoff::Backoff;
use fanout_core::changes::CONNECTION_SK;
use fanout_core::clock::Clock;
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId, shard_of};
use fanout_core::ports::{
    Cause, ConnectionRecord, ConnectionStore, FrameAdmission, MemberSet, Page, StoreError,
};
use fanout_core::rate::{Rate, StoredGcra};

mod changes;
mod dedupe;
mod presence;
mod stream;

pub use changes::DynamoChangeFeed;

/// The name of the user index.
pub const GSI1: &str = "GSI1";
/// Items per BatchWriteItem call.
const BATCH_WRITE_MAX: usize = 25;
/// Tries of a batch write before its unprocessed items are an error.
const BATCH_WRITE_TRIES: u32 = 8;
const BATCH_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(50),
    cap: Duration::from_secs(2),
};
/// Items per Query page, like the embedded store's pages.
const PAGE_LIMIT: i32 = 1_000;
/// Item updates in flight when a refresh moves a connection's TTL.
const REFRESH_UPDATES_IN_FLIGHT: usize = 16;
/// Conditional updates one rate admission may take (two paths, and one
/// more when another invocation moved the TAT in between).
const GCRA_TRIES: usize = 3;
/// How long an idle tenant's rate item outlives its last publish.
const RATE_ITEM_TTL_SECS: i64 = 3_600;

type Item = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
    shards: u32,
    page_limit: i32,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn conn_pk(id: &ConnectionId) -> String {
    fanout_core::changes::connection_pk(id)
}

fn conn_sk(id: &ConnectionId) -> String {
    format!("CONN#{id}")
}

fn room_pk(tenant: &TenantId, room: &RoomId, shard: u32) -> String {
    format!("ROOM#{tenant}#{room}#{shard}")
}

fn set_pk(set: &MemberSet, shard: u32) -> String {
    match set {
        MemberSet::Room { tenant, room } => room_pk(tenant, room, shard),
        MemberSet::Tenant(tenant) => format!("TENANT#{tenant}#{shard}"),
    }
}

fn user_pk(tenant: &TenantId, user: &UserId) -> String {
    format!("USER#{tenant}#{user}")
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!(
            "attribute {name} is missing or not a string"
        ))),
    }
}

fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer"))),
        _ => Err(StoreError::Corrupt(format!(
            "attribute {name} is missing or not a number"
        ))),
    }
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(error: E) -> StoreError {
    StoreError::Unavailable(Cause::new(error))
}

/// The connection item's record. Read on every admitted frame, so it
/// takes the attributes straight from the SDK's map rather than through
/// `fanout_core::changes::connection_from_image` (same layout; the e2e
/// sweep on moto reads items this adapter wrote).
fn record_from(item: &Item) -> Result<ConnectionRecord, StoreError> {
    let corrupt = |e: fanout_core::ids::IdError| StoreError::Corrupt(e.to_string());
    let ttl = get_n(item, "expiresAt")?;
    let capabilities = match item.get("caps") {
        Some(AttributeValue::S(text)) => {
            Some(Capabilities::from_json(text).map_err(StoreError::Corrupt)?)
        }
        _ => None,
    };
    Ok(ConnectionRecord {
        id: ConnectionId::new(get_s(item, "connectionId")?).map_err(corrupt)?,
        tenant: TenantId::new(get_s(item, "tenant")?).map_err(corrupt)?,
        user: UserId::new(get_s(item, "user")?).map_err(corrupt)?,
        connected_at_ms: get_n(item, "connectedAt")?,
        last_seen_ms: get_n(item, "lastSeen")?,
        ttl,
        idle_until: get_n(item, "ttl")?,
        token_expires_at: get_n(item, "tokenExpiresAt").unwrap_or(ttl),
        capabilities,
    })
}

/// The tenant and room of a reverse membership item
/// (`CONN#<id>` / `ROOM#<tenant>#<room>`); `None` for the connection item.
fn reverse_membership(item: &Item) -> Result<Option<(TenantId, RoomId)>, StoreError> {
    let sk = get_s(item, "sk")?;
    let Some(rest) = sk.strip_prefix("ROOM#") else {
        return Ok(None);
    };
    let tenant = get_s(item, "tenant")?;
    let room = rest
        .strip_prefix(tenant)
        .and_then(|r| r.strip_prefix('#'))
        .ok_or_else(|| StoreError::Corrupt(format!("reverse membership {sk}")))?;
    let corrupt = |e: fanout_core::ids::IdError| StoreError::Corrupt(e.to_string());
    Ok(Some((
        TenantId::new(tenant).map_err(corrupt)?,
        RoomId::new(room).map_err(corrupt)?,
    )))
}

fn rights_of(item: &Item) -> Result<Rights, StoreError> {
    match item.get("granted") {
        Some(AttributeValue::S(text)) => serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("granted rights: {e}"))),
        _ => Ok(Rights::NONE),
    }
}

fn is_condition_failure<E>(error: &aws_sdk_dynamodb::error::SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// The item a rate gate lives on, and what else an admission writes to it.
#[derive(Clone, Copy)]
enum GateItem {
    /// The connection item: it must exist, and an admitted frame is also
    /// its heartbeat (`lastSeen`, and `ttl` moved to this deadline).
    Connection { idle_until: i64 },
    /// A rate item of its own (a tenant's publishes, a connection's
    /// signals): created by its first use, kept until `ttl`.
    RateItem { ttl: i64 },
}

/// What one rate admission found.
enum Gcra {
    Admitted(Item),
    Limited {
        retry_after_ms: i64,
        item: Item,
    },
    /// The item must exist and does not.
    Missing,
}

fn put(item: Item) -> WriteRequest {
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("an item is set"),
        )
        .build()
}

fn delete(key: Item) -> WriteRequest {
    WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .expect("a key is set"),
        )
        .build()
}

impl DynamoStore {
    pub fn new(
        client: Client,
        table: impl Into<String>,
        clock: Arc<dyn Clock>,
        shards: u32,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
            shards: shards.max(1),
            page_limit: PAGE_LIMIT,
        }
    }

    /// The same store with smaller Query pages (tests of paging).
    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.page_limit = limit.max(1);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes any number of requests, 25 per call, resending unprocessed
    /// items with backoff.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            for attempt in 1..=BATCH_WRITE_TRIES {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(unavailable)?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                if attempt == BATCH_WRITE_TRIES {
                    return Err(StoreError::Unavailable(format!(
                        "{} items still unprocessed after {BATCH_WRITE_TRIES} BatchWriteItem tries",
                        pending.len()
                    ).into()));
                }
                tokio::time::sleep(BATCH_BACKOFF.jittered(attempt)).await;
            }
        }
        Ok(())
    }

    /// One page of a query on `pk` (or on GSI1's `gsi1pk`), live items only.
    async fn query_page(
        &self,
        index: Option<&str>,
        partition: String,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let condition = match index {
            Some(_) => "gsi1pk = :pk",
            None => "pk = :pk",
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            // Strongly consistent on the table (an index cannot be): a
            // planner resolving a room after storing an event must see a
            // membership stored before that event was, or a client
            // resuming with `since` could miss it both ways.
            .consistent_read(index.is_none())
            .key_condition_expression(condition)
            .expression_attribute_values(":pk", s(partition))
            .set_exclusive_start_key(start)
            .limit(self.page_limit)
            .select(Select::AllAttributes)
            .send()
            .await
            .map_err(unavailable)?;
        let now = self.clock.now_secs();
        // The index holds connection items, whose life (`expiresAt`) ends
        // them as well as their heartbeat deadline (`ttl`); table queries
        // here read memberships, which have only a `ttl`.
        let on_index = index.is_some();
        let live = out
            .items
            .unwrap_or_default()
            .into_iter()
            .filter(|item| get_n(item, "ttl").is_ok_and(|ttl| ttl > now))
            .filter(|item| !on_index || get_n(item, "expiresAt").is_ok_and(|end| end > now))
            .collect();
        Ok((live, out.last_evaluated_key))
    }

    /// Everything under `CONN#<id>`: the connection item and its reverse
    /// memberships (expired ones included).
    async fn connection_items(&self, id: &ConnectionId) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(conn_pk(id)))
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(next) => start = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// An admitted frame with no rate limit: its heartbeat only. Sets
    /// `lastSeen` and the heartbeat deadline (`ttl`) on an existing
    /// connection item (never creating one, and leaving its life,
    /// `expiresAt`, alone, so an expired connection stays expired).
    async fn heartbeat(
        &self,
        meta: Item,
        now_ms: i64,
        idle_until: i64,
    ) -> Result<Gcra, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(meta))
            .update_expression("SET lastSeen = :now, #ttl = :ttl")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":ttl", n(idle_until))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Gcra::Admitted(out.attributes.unwrap_or_default())),
            Err(e) if is_condition_failure(&e) => Ok(Gcra::Missing),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// One GCRA admission on an item, as conditional updates: the quiet
    /// path (`rateTat` absent or past: set it to now + interval) or the
    /// busy one (`rateTat` ahead but within the burst: add an interval).
    /// Which is tried first follows what the last answer showed; a refused
    /// update returns the item, so no extra read is needed.
    async fn gcra(
        &self,
        item_key: Item,
        gcra: StoredGcra,
        now_ms: i64,
        item: GateItem,
    ) -> Result<Gcra, StoreError> {
        let (exists, set_also, ttl) = match item {
            GateItem::Connection { idle_until } => (
                "attribute_exists(pk) AND ",
                ", lastSeen = :now, #ttl = :ttl",
                idle_until,
            ),
            GateItem::RateItem { ttl } => ("", ", #ttl = :ttl", ttl),
        };
        let limit = gcra.admit_limit(now_ms);
        let mut known_tat: Option<i64> = None;
        for _ in 0..GCRA_TRIES {
            let quiet = known_tat.is_none_or(|tat| tat <= now_ms);
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item_key.clone()))
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":ttl", n(ttl))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                );
            update = if quiet {
                update
                    .update_expression(format!("SET rateTat = :next{set_also}"))
                    .condition_expression(format!(
                        "{exists}(attribute_not_exists(rateTat) OR rateTat <= :now)"
                    ))
                    .expression_attribute_values(":next", n(now_ms + gcra.interval_ms))
            } else {
                update
                    .update_expression(format!("SET rateTat = rateTat + :interval{set_also}"))
                    .condition_expression(format!("{exists}rateTat > :now AND rateTat <= :limit"))
                    .expression_attribute_values(":interval", n(gcra.interval_ms))
                    .expression_attribute_values(":limit", n(limit))
            };
            let failure = match update.send().await {
                Ok(out) => return Ok(Gcra::Admitted(out.attributes.unwrap_or_default())),
                Err(e) if is_condition_failure(&e) => e,
                Err(e) => return Err(unavailable(e)),
            };
            let old = failure
                .as_service_error()
                .and_then(|e| match e {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c.item.clone(),
                    _ => None,
                })
                .filter(|item| !item.is_empty());
            let Some(old) = old else {
                return Ok(Gcra::Missing);
            };
            let tat = get_n(&old, "rateTat").ok();
            if let Some(tat) = tat
                && tat > limit
            {
                return Ok(Gcra::Limited {
                    retry_after_ms: tat - limit,
                    item: old,
                });
            }
            known_tat = Some(tat.unwrap_or(now_ms));
        }
        Err(StoreError::Unavailable(
            format!("the rate gate's item kept changing under {GCRA_TRIES} conditional updates")
                .into(),
        ))
    }

    /// A GCRA admission on a rate item of its own (created by its first
    /// use, kept an hour past its last): `Some(ms)` to wait.
    async fn admit_on_rate_item(
        &self,
        pk: String,
        sk: &str,
        now_ms: i64,
        rate: Rate,
    ) -> Result<Option<i64>, StoreError> {
        let ttl = now_ms.div_euclid(1000) + RATE_ITEM_TTL_SECS;
        let gate = GateItem::RateItem { ttl };
        Ok(
            match self
                .gcra(key(pk, sk.into()), StoredGcra::new(rate), now_ms, gate)
                .await?
            {
                Gcra::Limited { retry_after_ms, .. } => Some(retry_after_ms),
                Gcra::Admitted(_) | Gcra::Missing => None,
            },
        )
    }

    fn cursor_of(last: Option<Item>) -> Result<Option<String>, StoreError> {
        last.map(|k| {
            get_s(&k, "sk")
                .map(|sk| sk.trim_start_matches("CONN#").to_string())
                .or_else(|_| {
                    get_s(&k, "gsi1sk").map(|sk| sk.trim_start_matches("CONN#").to_string())
                })
        })
        .transpose()
    }

    fn cursor_id(cursor: Option<&str>) -> Result<Option<ConnectionId>, StoreError> {
        cursor
            .map(|c| ConnectionId::new(c).map_err(|_| StoreError::BadCursor))
            .transpose()
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    fn shards(&self) -> u32 {
        self.shards
    }

    async fn put_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        let shard = shard_of(&record.id, self.shards);
        let mut meta: Item = fanout_core::changes::connection_image(record)
            .into_inner()
            .into_iter()
            .map(|(name, value)| (name, value.into()))
            .collect();
        meta.extend([
            (
                "gsi1pk".to_string(),
                s(user_pk(&record.tenant, &record.user)),
            ),
            ("gsi1sk".to_string(), s(conn_sk(&record.id))),
        ]);
        let mut tenant_member = key(
            set_pk(&MemberSet::Tenant(record.tenant.clone()), shard),
            conn_sk(&record.id),
        );
        tenant_member.insert("ttl".into(), n(record.ttl));
        self.batch_write(vec![put(meta), put(tenant_member)]).await
    }

    async fn get_connection(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(conn_pk(id), CONNECTION_SK.into())))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let now = self.clock.now_secs();
        match out.item {
            Some(item) => Ok(Some(record_from(&item)?).filter(|r| r.is_live(now))),
            None => Ok(None),
        }
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(conn_pk(id), CONNECTION_SK.into())))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn delete_connections(&self, ids: &[ConnectionId]) -> Result<(), StoreError> {
        // Connection items only, 25 per BatchWriteItem and no reads: the
        // sweeper finds each one's memberships from the stream.
        let requests = ids
            .iter()
            .map(|id| delete(key(conn_pk(id), CONNECTION_SK.into())))
            .collect();
        self.batch_write(requests).await
    }

    async fn connection_rooms(&self, id: &ConnectionId) -> Result<Vec<RoomId>, StoreError> {
        let mut rooms = Vec::new();
        for item in self.connection_items(id).await? {
            if let Some((_, room)) = reverse_membership(&item)? {
                rooms.push(room);
            }
        }
        Ok(rooms)
    }

    async fn purge_connection(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        rooms: &[RoomId],
    ) -> Result<(), StoreError> {
        let shard = shard_of(id, self.shards);
        let mut requests = vec![delete(key(
            set_pk(&MemberSet::Tenant(tenant.clone()), shard),
            conn_sk(id),
        ))];
        for room in rooms {
            requests.push(delete(key(conn_pk(id), format!("ROOM#{tenant}#{room}"))));
            requests.push(delete(key(room_pk(tenant, room, shard), conn_sk(id))));
        }
        self.batch_write(requests).await
    }

    async fn room_count(&self, id: &ConnectionId) -> Result<usize, StoreError> {
        // A COUNT query on the connection's reverse memberships: one read
        // unit per 4 KB scanned, no items returned.
        let mut count = 0;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :rooms)")
                .filter_expression("#ttl > :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":pk", s(conn_pk(id)))
                .expression_attribute_values(":rooms", s("ROOM#"))
                .expression_attribute_values(":now", n(self.clock.now_secs()))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .map_err(unavailable)?;
            count += out.count.max(0) as usize;
            match out.last_evaluated_key {
                Some(next) => start = Some(next),
                None => return Ok(count),
            }
        }
    }

    async fn join_room(
        &self,
        record: &ConnectionRecord,
        room: &RoomId,
        granted: Rights,
    ) -> Result<(), StoreError> {
        let shard = shard_of(&record.id, self.shards);
        let mut member = key(room_pk(&record.tenant, room, shard), conn_sk(&record.id));
        member.insert("ttl".into(), n(record.ttl));
        let mut reverse = key(
            conn_pk(&record.id),
            format!("ROOM#{}#{room}", record.tenant),
        );
        reverse.extend([
            ("tenant".to_string(), s(record.tenant.as_str())),
            ("ttl".to_string(), n(record.ttl)),
        ]);
        if !granted.is_empty() {
            let granted =
                serde_json::to_string(&granted).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            member.insert("granted".into(), s(granted.clone()));
            reverse.insert("granted".into(), s(granted));
        }
        self.batch_write(vec![put(member), put(reverse)]).await
    }

    async fn leave_room(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        room: &RoomId,
    ) -> Result<bool, StoreError> {
        let shard = shard_of(id, self.shards);
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(room_pk(tenant, room, shard), conn_sk(id))))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(conn_pk(id), format!("ROOM#{tenant}#{room}"))))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn membership(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        room: &RoomId,
    ) -> Result<Option<Rights>, StoreError> {
        let shard = shard_of(id, self.shards);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(room_pk(tenant, room, shard), conn_sk(id))))
            .send()
            .await
            .map_err(unavailable)?;
        let now = self.clock.now_secs();
        match out.item {
            Some(item) if get_n(&item, "ttl").is_ok_and(|ttl| ttl > now) => {
                rights_of(&item).map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn admit_frame(
        &self,
        id: &ConnectionId,
        now_ms: i64,
        rate: Option<Rate>,
        idle_until: i64,
    ) -> Result<Option<FrameAdmission>, StoreError> {
        let meta = key(conn_pk(id), CONNECTION_SK.into());
        let admission = match rate {
            Some(rate) => {
                let gate = GateItem::Connection { idle_until };
                self.gcra(meta, StoredGcra::new(rate), now_ms, gate).await?
            }
            None => self.heartbeat(meta, now_ms, idle_until).await?,
        };
        Ok(match admission {
            Gcra::Admitted(item) => Some(FrameAdmission {
                record: record_from(&item)?,
                retry_after_ms: None,
            }),
            Gcra::Limited {
                retry_after_ms,
                item,
            } => Some(FrameAdmission {
                record: record_from(&item)?,
                retry_after_ms: Some(retry_after_ms),
            }),
            Gcra::Missing => None,
        })
    }

    async fn admit_publish(
        &self,
        tenant: &TenantId,
        now_ms: i64,
        rate: Rate,
    ) -> Result<Option<i64>, StoreError> {
        self.admit_on_rate_item(format!("RATE#{tenant}"), "PUBLISH", now_ms, rate)
            .await
    }

    async fn admit_signal(
        &self,
        id: &ConnectionId,
        now_ms: i64,
        rate: Rate,
    ) -> Result<Option<i64>, StoreError> {
        self.admit_on_rate_item(format!("RATE#{id}"), "SIGNAL", now_ms, rate)
            .await
    }

    async fn refresh_connection(
        &self,
        id: &ConnectionId,
        token_expires_at: i64,
        capabilities: Option<&Capabilities>,
        ttl: i64,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(conn_pk(id), CONNECTION_SK.into())))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":exp", n(token_expires_at))
            .expression_attribute_values(":ttl", n(ttl))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        // The connection item's life is `expiresAt`; its `ttl` is the
        // heartbeat deadline, which a refresh does not move.
        update = match capabilities {
            Some(caps) => update
                .update_expression("SET tokenExpiresAt = :exp, expiresAt = :ttl, caps = :caps")
                .expression_attribute_values(":caps", s(caps.to_json())),
            None => {
                update.update_expression("SET tokenExpiresAt = :exp, expiresAt = :ttl REMOVE caps")
            }
        };
        let record = match update.send().await {
            Ok(out) => record_from(&out.attributes.unwrap_or_default())?,
            Err(e) if is_condition_failure(&e) => return Ok(false),
            Err(e) => return Err(unavailable(e)),
        };
        // Every other item of the connection gets the new TTL, so reads
        // (the planner's above all) keep finding it. Only items that still
        // exist: a concurrent leave must not be undone.
        let shard = shard_of(id, self.shards);
        let mut keys = vec![key(
            set_pk(&MemberSet::Tenant(record.tenant.clone()), shard),
            conn_sk(id),
        )];
        for item in self.connection_items(id).await? {
            if let Some((tenant, room)) = reverse_membership(&item)? {
                keys.push(key(conn_pk(id), get_s(&item, "sk")?.to_string()));
                keys.push(key(room_pk(&tenant, &room, shard), conn_sk(id)));
            }
        }
        let updates = keys.into_iter().map(|k| {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(k))
                .update_expression("SET #ttl = :ttl")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":ttl", n(ttl))
                .send()
        });
        let results: Vec<_> = futures::stream::iter(updates)
            .buffer_unordered(REFRESH_UPDATES_IN_FLIGHT)
            .collect()
            .await;
        for result in results {
            match result {
                Ok(_) => {}
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(true)
    }

    async fn members_page(
        &self,
        set: &MemberSet,
        shard: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ConnectionId>, StoreError> {
        let pk = set_pk(set, shard);
        let start = Self::cursor_id(cursor)?.map(|id| key(pk.clone(), conn_sk(&id)));
        let (items, last) = self.query_page(None, pk, start).await?;
        let ids = items
            .iter()
            .map(|item| {
                let sk = get_s(item, "sk")?;
                ConnectionId::new(sk.trim_start_matches("CONN#"))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items: ids,
            next: Self::cursor_of(last)?,
        })
    }

    async fn user_connections_page(
        &self,
        tenant: &TenantId,
        user: &UserId,
        cursor: Option<&str>,
    ) -> Result<Page<ConnectionId>, StoreError> {
        let partition = user_pk(tenant, user);
        // A GSI's start key carries the table key and the index key.
        let start = Self::cursor_id(cursor)?.map(|id| {
            let mut k = key(conn_pk(&id), CONNECTION_SK.into());
            k.insert("gsi1pk".into(), s(partition.clone()));
            k.insert("gsi1sk".into(), s(conn_sk(&id)));
            k
        });
        let (items, last) = self.query_page(Some(GSI1), partition, start).await?;
        let ids = items
            .iter()
            .map(|item| {
                ConnectionId::new(get_s(item, "connectionId")?)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let next = last
            .map(|k| get_s(&k, "gsi1sk").map(|sk| sk.trim_start_matches("CONN#").to_string()))
            .transpose()?;
        Ok(Page { items: ids, next })
    }
}
