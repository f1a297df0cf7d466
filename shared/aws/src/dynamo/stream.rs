//! Room streams on the table: one partition per room
//! (`STREAM#<tenant>#<room>`) holding its counter (`HEAD`, no TTL) and its
//! entries (`SEQ#<seq>` zero-padded to 20 digits, so the sort key orders
//! them), each with the stream's TTL. Reads are strongly consistent.
//!
//! Cost per stored event: one UpdateItem (the counter: `ADD`, atomic
//! across concurrent planners) and one PutItem (the entry, ≤ 1 WCU per
//! KB); an edit adds one GetItem and one UpdateItem. A `history` page or
//! a replay: one GetItem (the head) and one Query per 1 MB.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde_json::value::RawValue;

use fanout_core::event::Sender;
use fanout_core::ids::{RoomId, TenantId};
use fanout_core::ports::{
    Edit, EditOutcome, EntryKind, RoomStreams, StoreError, StreamEntry, StreamRange,
};

use super::{DynamoStore, Item, get_n, get_s, is_condition_failure, key, n, s, unavailable};

/// Most items one Query page evaluates while scanning for a dedupe key.
const SCAN_PAGE: usize = 1_000;

fn stream_pk(tenant: &TenantId, room: &RoomId) -> String {
    format!("STREAM#{tenant}#{room}")
}

fn seq_sk(seq: u64) -> String {
    format!("SEQ#{seq:020}")
}

fn head_key(tenant: &TenantId, room: &RoomId) -> Item {
    key(stream_pk(tenant, room), "HEAD".into())
}

fn seq_n(seq: u64) -> AttributeValue {
    AttributeValue::N(seq.to_string())
}

fn get_seq(item: &Item, name: &str) -> Result<u64, StoreError> {
    u64::try_from(get_n(item, name)?)
        .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not a seq")))
}

fn item_of(tenant: &TenantId, room: &RoomId, entry: &StreamEntry) -> Item {
    let mut item = key(stream_pk(tenant, room), seq_sk(entry.seq));
    let (kind, of) = match entry.kind {
        EntryKind::Message => ("message", None),
        EntryKind::Updated { of } => ("updated", Some(of)),
        EntryKind::Deleted { of } => ("deleted", Some(of)),
    };
    item.extend([
        ("seq".to_string(), seq_n(entry.seq)),
        ("kind".to_string(), s(kind)),
        ("eventId".to_string(), s(&entry.event_id)),
        ("dedupeKey".to_string(), s(&entry.dedupe_key)),
        ("sentAt".to_string(), n(entry.sent_at_ms)),
        ("ttl".to_string(), n(entry.ttl)),
    ]);
    if let Some(of) = of {
        item.insert("ref".to_string(), seq_n(of));
    }
    if let Some(from) = &entry.from {
        // Serializing a sender (two strings) cannot fail.
        if let Ok(json) = serde_json::to_string(from) {
            item.insert("from".to_string(), s(json));
        }
    }
    if let Some(data) = &entry.data {
        item.insert("data".to_string(), s(data.get()));
    }
    if let Some(at) = entry.updated_at_ms {
        item.insert("updatedAt".to_string(), n(at));
    }
    if entry.deleted {
        item.insert("deleted".to_string(), AttributeValue::Bool(true));
    }
    item
}

fn entry_from(item: &Item) -> Result<StreamEntry, StoreError> {
    let corrupt = |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("{what}: {e}"));
    let kind = match get_s(item, "kind")? {
        "message" => EntryKind::Message,
        "updated" => EntryKind::Updated {
            of: get_seq(item, "ref")?,
        },
        "deleted" => EntryKind::Deleted {
            of: get_seq(item, "ref")?,
        },
        other => return Err(StoreError::Corrupt(format!("unknown entry kind {other}"))),
    };
    let from = match item.get("from") {
        Some(AttributeValue::S(json)) => {
            Some(serde_json::from_str::<Sender>(json).map_err(|e| corrupt("from", e))?)
        }
        _ => None,
    };
    let data = match item.get("data") {
        Some(AttributeValue::S(json)) => {
            Some(RawValue::from_string(json.clone()).map_err(|e| corrupt("data", e))?)
        }
        _ => None,
    };
    Ok(StreamEntry {
        seq: get_seq(item, "seq")?,
        kind,
        event_id: get_s(item, "eventId")?.to_string(),
        dedupe_key: get_s(item, "dedupeKey")?.to_string(),
        from,
        data,
        sent_at_ms: get_n(item, "sentAt")?,
        updated_at_ms: item
            .contains_key("updatedAt")
            .then(|| get_n(item, "updatedAt"))
            .transpose()?,
        deleted: matches!(item.get("deleted"), Some(AttributeValue::Bool(true))),
        ttl: get_n(item, "ttl")?,
    })
}

impl DynamoStore {
    /// One Query page over a stream's entries, strongly consistent.
    async fn stream_page(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        range: StreamRange,
        limit: usize,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(stream_pk(tenant, room)))
            .set_exclusive_start_key(start)
            .limit(limit.clamp(1, SCAN_PAGE) as i32);
        let query = match range {
            // `HEAD` sorts before `SEQ#…`, so it is never in range.
            StreamRange::After(seq) => query
                .key_condition_expression("pk = :pk AND sk > :from")
                .expression_attribute_values(":from", s(seq_sk(seq))),
            StreamRange::Before(seq) => query
                .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :to")
                .expression_attribute_values(":first", s(seq_sk(0)))
                .expression_attribute_values(":to", s(seq_sk(seq.saturating_sub(1))))
                .scan_index_forward(false),
        };
        let out = query.send().await.map_err(unavailable)?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }
}

#[async_trait]
impl RoomStreams for DynamoStore {
    async fn next_seq(&self, tenant: &TenantId, room: &RoomId) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(head_key(tenant, room)))
            .update_expression("ADD #seq :one")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        get_seq(&out.attributes.unwrap_or_default(), "seq")
    }

    async fn head(&self, tenant: &TenantId, room: &RoomId) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(head_key(tenant, room)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.map_or(Ok(0), |item| get_seq(&item, "seq"))
    }

    async fn put_entry(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        entry: &StreamEntry,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_of(tenant, room, entry)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Stored by an earlier attempt: keep that one.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn get_entry(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        seq: u64,
    ) -> Result<Option<StreamEntry>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(stream_pk(tenant, room), seq_sk(seq))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let now = self.clock.now_secs();
        out.item
            .filter(|item| get_n(item, "ttl").is_ok_and(|ttl| ttl > now))
            .map(|item| entry_from(&item))
            .transpose()
    }

    async fn read(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        range: StreamRange,
        limit: usize,
    ) -> Result<Vec<StreamEntry>, StoreError> {
        let now = self.clock.now_secs();
        let mut entries = Vec::new();
        let mut start = None;
        // Expired entries still in the table (TTL deletion lags) count
        // against a page's limit: page on until enough live ones.
        loop {
            let want = limit - entries.len();
            let (items, last) = self.stream_page(tenant, room, range, want, start).await?;
            for item in &items {
                if get_n(item, "ttl").is_ok_and(|ttl| ttl > now) && entries.len() < limit {
                    entries.push(entry_from(item)?);
                }
            }
            match last {
                Some(last) if entries.len() < limit => start = Some(last),
                _ => break,
            }
        }
        if matches!(range, StreamRange::Before(_)) {
            entries.reverse();
        }
        Ok(entries)
    }

    async fn edit_entry(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        seq: u64,
        edit: &Edit,
        updated_at_ms: i64,
    ) -> Result<EditOutcome, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(stream_pk(tenant, room), seq_sk(seq))))
            .condition_expression(
                "attribute_exists(pk) AND #kind = :message AND #ttl > :now AND attribute_not_exists(#deleted)",
            )
            // Aliased: several attribute names are DynamoDB reserved words.
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#deleted", "deleted")
            .expression_attribute_names("#data", "data")
            .expression_attribute_values(":message", s("message"))
            .expression_attribute_values(":now", n(self.clock.now_secs()))
            .expression_attribute_values(":at", n(updated_at_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let update = match edit {
            Edit::Update(data) => update
                .update_expression("SET #data = :data, updatedAt = :at")
                .expression_attribute_values(":data", s(data.get())),
            Edit::Delete => update
                .update_expression("SET #deleted = :yes, updatedAt = :at REMOVE #data")
                .expression_attribute_values(":yes", AttributeValue::Bool(true)),
        };
        match update.send().await {
            Ok(_) => Ok(EditOutcome::Applied),
            Err(e) if is_condition_failure(&e) => {
                let old = e.as_service_error().and_then(|e| match e {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c.item.clone(),
                    _ => None,
                });
                let now = self.clock.now_secs();
                let deleted = old.is_some_and(|item| {
                    item.contains_key("deleted")
                        && get_n(&item, "ttl").is_ok_and(|ttl| ttl > now)
                        && matches!(get_s(&item, "kind"), Ok("message"))
                });
                Ok(if deleted {
                    EditOutcome::Deleted
                } else {
                    EditOutcome::Missing
                })
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn find_by_key(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        dedupe_key: &str,
        scan: usize,
    ) -> Result<Option<u64>, StoreError> {
        let mut scanned = 0;
        let mut start = None;
        while scanned < scan {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :seq)")
                .filter_expression("dedupeKey = :key")
                .expression_attribute_values(":pk", s(stream_pk(tenant, room)))
                .expression_attribute_values(":seq", s("SEQ#"))
                .expression_attribute_values(":key", s(dedupe_key))
                .projection_expression("#seq")
                .expression_attribute_names("#seq", "seq")
                .scan_index_forward(false)
                .limit((scan - scanned).min(SCAN_PAGE) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            if let Some(found) = out.items.unwrap_or_default().first() {
                return get_seq(found, "seq").map(Some);
            }
            scanned += out.scanned_count.max(1) as usize;
            match out.last_evaluated_key {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        Ok(None)
    }
}
