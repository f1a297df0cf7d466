//! The connection table's change records, as DynamoDB Streams writes them
//! with the `OLD_IMAGE` view: which ones the sweeper reacts to, and the
//! connection item's image inside them. The DynamoDB adapter writes the
//! item in this layout, the embedded store emits records of it, and the
//! sweeper reads it back, so all three agree on one definition.

use aws_lambda_events::dynamodb::{EventRecord, UserIdentity};
use serde::{Deserialize, Serialize};

use crate::auth::Capabilities;
use crate::ids::{ConnectionId, TenantId, UserId};
use crate::ports::ConnectionRecord;

/// The sort key of a connection item (`CONN#<id>` / `META`).
pub const CONNECTION_SK: &str = "META";
/// The partition-key prefix of a connection's items.
pub const CONNECTION_PK_PREFIX: &str = "CONN#";
/// The stream event of a deleted item.
pub const REMOVE: &str = "REMOVE";
/// The event filter of the sweeper's mapping (its `FilterCriteria`):
/// removed connection items only, so every other write of the table
/// (memberships, rate gates, streams, markers) invokes nothing.
pub const SWEEPER_FILTER_PATTERN: &str =
    r#"{"eventName":["REMOVE"],"dynamodb":{"Keys":{"sk":{"S":["META"]}}}}"#;
/// Who removed an item DynamoDB's TTL deleted (`userIdentity`).
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";
const TTL_IDENTITY_TYPE: &str = "Service";

/// The connection item, attribute by attribute. The DynamoDB adapter adds
/// its index keys and the frame-rate gate's state; readers ignore them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionItem {
    pk: String,
    sk: String,
    connection_id: String,
    tenant: String,
    user: String,
    connected_at: i64,
    last_seen: i64,
    /// The DynamoDB TTL attribute: the heartbeat's deadline.
    ttl: i64,
    /// The connection's life: the earlier of its longest and its token's.
    expires_at: i64,
    token_expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caps: Option<String>,
}

/// The partition key of a connection's items.
pub fn connection_pk(id: &ConnectionId) -> String {
    format!("{CONNECTION_PK_PREFIX}{id}")
}

/// The connection item of `record`, as an attribute map.
pub fn connection_image(record: &ConnectionRecord) -> serde_dynamo::Item {
    let item = ConnectionItem {
        pk: connection_pk(&record.id),
        sk: CONNECTION_SK.to_string(),
        connection_id: record.id.to_string(),
        tenant: record.tenant.to_string(),
        user: record.user.to_string(),
        connected_at: record.connected_at_ms,
        last_seen: record.last_seen_ms,
        ttl: record.idle_until,
        expires_at: record.ttl,
        token_expires_at: record.token_expires_at,
        caps: record.capabilities.as_ref().map(Capabilities::to_json),
    };
    // Strings and integers only: serializing cannot fail.
    serde_dynamo::to_item(item).unwrap_or_default()
}

/// The connection a connection item's image describes.
pub fn connection_from_image(image: &serde_dynamo::Item) -> Result<ConnectionRecord, String> {
    let item: ConnectionItem =
        serde_dynamo::from_item(image.clone()).map_err(|e| format!("connection item: {e}"))?;
    let capabilities = item
        .caps
        .as_deref()
        .map(Capabilities::from_json)
        .transpose()
        .map_err(|e| format!("connection item's caps: {e}"))?;
    Ok(ConnectionRecord {
        id: ConnectionId::new(&item.connection_id).map_err(|e| e.to_string())?,
        tenant: TenantId::new(&item.tenant).map_err(|e| e.to_string())?,
        user: UserId::new(&item.user).map_err(|e| e.to_string())?,
        connected_at_ms: item.connected_at,
        last_seen_ms: item.last_seen,
        ttl: item.expires_at,
        idle_until: item.ttl,
        token_expires_at: item.token_expires_at,
        capabilities,
    })
}

/// Whether a record is a connection item's removal (what the sweeper's
/// filter passes).
pub fn is_connection_removal(record: &EventRecord) -> bool {
    record.event_name == REMOVE
        && matches!(
            record.change.keys.get("sk"),
            Some(serde_dynamo::AttributeValue::S(sk)) if sk == CONNECTION_SK
        )
}

/// Whether DynamoDB's TTL removed the item (rather than a request).
pub fn removed_by_ttl(record: &EventRecord) -> bool {
    record
        .user_identity
        .as_ref()
        .is_some_and(|who| who.principal_id == TTL_PRINCIPAL)
}

/// The record DynamoDB Streams writes when a connection item is removed:
/// what the embedded store emits.
pub fn removal_record(
    record: &ConnectionRecord,
    sequence_number: u64,
    by_ttl: bool,
    now_ms: i64,
) -> EventRecord {
    let image = connection_image(record);
    let mut change = aws_lambda_events::dynamodb::StreamRecord::default();
    change.keys = image
        .iter()
        .filter(|(name, _)| *name == "pk" || *name == "sk")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect::<std::collections::HashMap<_, _>>()
        .into();
    change.old_image = image;
    // DynamoDB's sequence numbers are decimal strings that sort as numbers;
    // fixed width keeps them sorting as strings too.
    change.sequence_number = Some(format!("{sequence_number:021}"));
    change.approximate_creation_date_time =
        chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    change.stream_view_type = Some(aws_lambda_events::dynamodb::StreamViewType::OldImage);
    let mut out = EventRecord::default();
    out.event_id = format!("{sequence_number}");
    out.event_name = REMOVE.to_string();
    out.event_source = Some("aws:dynamodb".to_string());
    out.event_version = Some("1.1".to_string());
    out.change = change;
    if by_ttl {
        let mut who = UserIdentity::default();
        who.type_ = TTL_IDENTITY_TYPE.to_string();
        who.principal_id = TTL_PRINCIPAL.to_string();
        out.user_identity = Some(who);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConnectionRecord {
        ConnectionRecord {
            id: ConnectionId::new("abc=").unwrap(),
            tenant: TenantId::new("acme").unwrap(),
            user: UserId::new("alice").unwrap(),
            connected_at_ms: 1_000,
            last_seen_ms: 2_000,
            ttl: 9_000,
            idle_until: 700,
            token_expires_at: 9_500,
            capabilities: None,
        }
    }

    #[test]
    fn an_image_reads_back_as_its_connection() {
        let r = record();
        assert_eq!(connection_from_image(&connection_image(&r)).unwrap(), r);
    }

    #[test]
    fn removal_records_pass_the_filter_and_say_who_removed() {
        let by_ttl = removal_record(&record(), 7, true, 5_000);
        assert!(is_connection_removal(&by_ttl));
        assert!(removed_by_ttl(&by_ttl));
        let by_request = removal_record(&record(), 8, false, 5_000);
        assert!(!removed_by_ttl(&by_request));
        // The wire form is what Lambda hands the function.
        let json = serde_json::to_value(&by_request).unwrap();
        assert_eq!(
            json["dynamodb"]["Keys"]["sk"],
            serde_json::json!({"S": "META"})
        );
        assert_eq!(json["eventName"], "REMOVE");
        let filter: serde_json::Value = serde_json::from_str(SWEEPER_FILTER_PATTERN).unwrap();
        assert_eq!(filter["eventName"][0], json["eventName"]);
    }

    #[test]
    fn a_corrupt_image_is_an_error_not_a_panic() {
        let mut image = connection_image(&record());
        image.remove("tenant");
        assert!(connection_from_image(&image).is_err());
    }
}
