//! The event contract: what product services publish (`fanout.broadcast`),
//! what the thin functions emit about connections and rooms, and the
//! EventBridge envelope both arrive in. The JSON Schema for the broadcast
//! detail is `shared/core/schema/broadcast-event.schema.json`; a test keeps the
//! two in agreement.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::ids::{ConnectionId, RoomId, TenantId, UserId};

/// `DetailType` of an event to deliver to connections.
pub const BROADCAST: &str = "fanout.broadcast";
/// `DetailType`s of the lifecycle events the thin functions emit.
pub const CONNECTION_OPENED: &str = "fanout.connection.opened";
pub const CONNECTION_CLOSED: &str = "fanout.connection.closed";
pub const ROOM_JOINED: &str = "fanout.room.joined";
pub const ROOM_LEFT: &str = "fanout.room.left";

/// `Source` of lifecycle events emitted by connect/disconnect/message.
pub const GATEWAY_SOURCE: &str = "fanout.gateway";
/// `Source` of broadcasts that clients publish into rooms.
pub const CLIENT_SOURCE: &str = "fanout.client";
/// Sources starting with this belong to the gateway: publishers outside it
/// are refused them (the local PutEvents endpoint refuses them; on AWS the
/// publisher IAM policy denies them).
pub const RESERVED_SOURCE_PREFIX: &str = "fanout.";

/// Whether `source` is one only the gateway may use.
pub fn is_reserved_source(source: &str) -> bool {
    source.starts_with(RESERVED_SOURCE_PREFIX)
}

/// The tenant-bound source convention: a publisher for tenant `acme` uses
/// `Source` = `acme` or `acme.<service>` (e.g. `acme.orders`), which an IAM
/// `events:source` condition (`acme.*`) can enforce per publisher.
pub fn source_speaks_for(source: &str, tenant: &TenantId) -> bool {
    let tenant = tenant.as_str();
    source == tenant
        || source
            .strip_prefix(tenant)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// The JSON Schema of a `fanout.broadcast` detail, as shipped in the repo.
pub const BROADCAST_SCHEMA: &str = include_str!("../schema/broadcast-event.schema.json");

/// Longest accepted idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

/// The `Detail` of a `fanout.broadcast` event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "BroadcastFields"
)]
pub struct BroadcastEvent {
    pub tenant: TenantId,
    pub target: Target,
    pub data: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<ConnectionId>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "idempotency_key"
    )]
    pub idempotency_key: Option<String>,
    /// Who sent it. Set by the message function for client publishes;
    /// for any other `Source` the planner replaces it with
    /// `{"service": <Source>}`, so a publisher cannot speak as a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Sender>,
    /// `false`: deliver to the room without storing it in the room's
    /// stream (no `seq`, no history). Only room events are stored.
    #[serde(default = "stored", skip_serializing_if = "is_stored")]
    pub stream: bool,
    /// Set: this is a new version (`data`) of stored message `update` of
    /// the room, itself stored as a `message.updated` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<u64>,
    /// Set: deletes stored message `delete` of the room (`data` is
    /// ignored; send `null`), stored as a `message.deleted` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<u64>,
    /// `true`: an ephemeral signal to the room (typing, cursors): never
    /// stored, no `seq`, delivered as a `signal` frame; repeats from one
    /// sender queued together are coalesced to the latest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signal: bool,
    /// A presence notice to the room (from the gateway only): delivered as
    /// a `presence.*` frame, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceNotice>,
}

/// What changed in a room's presence, as the room is told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PresenceNotice {
    pub kind: PresenceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Box<RawValue>>,
    /// The member's version: orders its changes whatever order they
    /// arrive in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The member's connections in the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// Present users in the room (on `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceKind {
    Joined,
    Left,
    Updated,
    Count,
}

impl PresenceKind {
    /// The frame type members receive.
    pub fn frame_type(self) -> &'static str {
        match self {
            PresenceKind::Joined => "presence.joined",
            PresenceKind::Left => "presence.left",
            PresenceKind::Updated => "presence.updated",
            PresenceKind::Count => "presence.count",
        }
    }
}

fn stored() -> bool {
    true
}

fn is_stored(stream: &bool) -> bool {
    *stream
}

/// What a broadcast does to its room's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOp {
    /// A new message.
    Append,
    Update(u64),
    Delete(u64),
}

/// [`BroadcastEvent`] as it arrives, before the checks that span fields.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BroadcastFields {
    tenant: TenantId,
    target: Target,
    data: Box<RawValue>,
    #[serde(default)]
    exclude: Vec<ConnectionId>,
    #[serde(default, deserialize_with = "idempotency_key")]
    idempotency_key: Option<String>,
    #[serde(default)]
    from: Option<Sender>,
    #[serde(default = "stored")]
    stream: bool,
    #[serde(default)]
    update: Option<u64>,
    #[serde(default)]
    delete: Option<u64>,
    #[serde(default)]
    signal: bool,
    #[serde(default)]
    presence: Option<PresenceNotice>,
}

impl TryFrom<BroadcastFields> for BroadcastEvent {
    type Error = String;

    fn try_from(f: BroadcastFields) -> Result<Self, String> {
        if let Some(seq) = f.update.or(f.delete) {
            if f.update.is_some() && f.delete.is_some() {
                return Err("an event may set update or delete, not both".into());
            }
            if seq == 0 {
                return Err("update and delete name a message's seq, which starts at 1".into());
            }
            if f.target.room().is_none() {
                return Err("update and delete need a room target".into());
            }
            if !f.stream {
                return Err("update and delete are stream events; drop \"stream\": false".into());
            }
        }
        if f.presence.is_some()
            && (f.target.room().is_none() || f.signal || f.update.is_some() || f.delete.is_some())
        {
            return Err("a presence notice goes to a room and is nothing else".into());
        }
        if f.signal {
            if f.target.room().is_none() {
                return Err("a signal needs a room target".into());
            }
            if f.update.is_some() || f.delete.is_some() {
                return Err("a signal cannot update or delete a message".into());
            }
        }
        Ok(Self {
            tenant: f.tenant,
            target: f.target,
            data: f.data,
            exclude: f.exclude,
            idempotency_key: f.idempotency_key,
            from: f.from,
            stream: f.stream,
            update: f.update,
            delete: f.delete,
            signal: f.signal,
            presence: f.presence,
        })
    }
}

/// The sender a message frame names, always set by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(untagged, deny_unknown_fields)]
pub enum Sender {
    /// A client's publish: its user and connection.
    Client {
        #[ts(type = "string")]
        user: UserId,
        #[ts(type = "string")]
        connection: ConnectionId,
    },
    /// A product service's event: its EventBridge `Source`.
    Service { service: String },
}

impl BroadcastEvent {
    /// An event to a room, for everything else at its defaults.
    pub fn to_room(tenant: TenantId, room: RoomId, data: Box<RawValue>) -> Self {
        Self {
            tenant,
            target: Target::Room(room),
            data,
            exclude: Vec::new(),
            idempotency_key: None,
            from: None,
            stream: true,
            update: None,
            delete: None,
            signal: false,
            presence: None,
        }
    }

    /// What the event does to its room's stream.
    pub fn stream_op(&self) -> StreamOp {
        match (self.update, self.delete) {
            (Some(seq), _) => StreamOp::Update(seq),
            (_, Some(seq)) => StreamOp::Delete(seq),
            _ => StreamOp::Append,
        }
    }

    /// The sender to show for an event that arrived with `source`: a
    /// client publish keeps what the message function set; anything else
    /// is the service that published it, whatever its detail claimed.
    pub fn sender(&self, source: &str) -> Option<Sender> {
        if source == CLIENT_SOURCE {
            self.from.clone()
        } else {
            Some(Sender::Service {
                service: source.to_string(),
            })
        }
    }
}

fn idempotency_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let key = Option::<String>::deserialize(d)?;
    match &key {
        Some(k) if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_LEN => Err(de::Error::custom(
            format!("idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes"),
        )),
        _ => Ok(key),
    }
}

/// Who a broadcast goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Target {
    /// Every member of a room.
    Room(RoomId),
    /// Every connection of a user.
    User(UserId),
    /// One connection.
    Connection(ConnectionId),
    /// Every connection of the tenant: `{"tenant": true}`.
    Tenant(AllOfTenant),
}

/// The `true` in `{"tenant": true}`; `false` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllOfTenant;

impl Serialize for AllOfTenant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(true)
    }
}

impl<'de> Deserialize<'de> for AllOfTenant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if bool::deserialize(d)? {
            Ok(AllOfTenant)
        } else {
            Err(de::Error::custom(
                "target {\"tenant\": ...} must be true (all of the tenant's connections)",
            ))
        }
    }
}

impl Target {
    pub fn room(&self) -> Option<&RoomId> {
        match self {
            Target::Room(r) => Some(r),
            _ => None,
        }
    }
}

/// The `Detail` of every lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEvent {
    pub tenant: TenantId,
    pub user: UserId,
    pub connection_id: ConnectionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomId>,
    /// Rooms the connection was removed from (on `fanout.connection.closed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<RoomId>,
    /// When the rooms need several events to fit the bus: this event's
    /// number (1-based) and how many there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<usize>,
}

/// Rooms per lifecycle event: 1,000 room ids of at most 64 characters are
/// about 67 KB, far inside EventBridge's 256 KB entry.
pub const ROOMS_PER_LIFECYCLE_EVENT: usize = 1_000;

impl LifecycleEvent {
    /// This event as one or more events that each fit the bus, whatever
    /// the number of rooms: every room appears in exactly one part.
    pub fn into_parts(self) -> Vec<LifecycleEvent> {
        if self.rooms.len() <= ROOMS_PER_LIFECYCLE_EVENT {
            return vec![self];
        }
        let parts = self.rooms.len().div_ceil(ROOMS_PER_LIFECYCLE_EVENT);
        self.rooms
            .chunks(ROOMS_PER_LIFECYCLE_EVENT)
            .enumerate()
            .map(|(i, rooms)| LifecycleEvent {
                rooms: rooms.to_vec(),
                part: Some(i + 1),
                parts: Some(parts),
                ..self.clone()
            })
            .collect()
    }
}

/// An EventBridge event as a rule delivers it to an SQS target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub version: String,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    /// Missing from some emulators' deliveries; never relied on.
    #[serde(default)]
    pub account: String,
    pub time: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: Box<RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator() -> jsonschema::Validator {
        let schema: serde_json::Value = serde_json::from_str(BROADCAST_SCHEMA).unwrap();
        jsonschema::validator_for(&schema).expect("schema compiles")
    }

    fn valid_examples() -> Vec<serde_json::Value> {
        vec![
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{"text":"hi"}}),
            json!({"tenant":"acme","target":{"user":"u-42"},"data":[1,2,3],"idempotencyKey":"order-42"}),
            json!({"tenant":"acme","target":{"connection":"L0SM9cOFvHcCIhw="},"data":"plain"}),
            json!({"tenant":"acme","target":{"tenant":true},"data":null,"exclude":["L0SM9cOFvHcCIhw="]}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":1,"from":{"user":"u-1","connection":"L0SM9cOFvHcCIhw="}}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":1,"from":{"service":"acme.orders"}}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{"typing":true},"stream":false}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{"text":"fixed"},"update":7}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":null,"delete":7,"stream":true}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{"typing":true},"signal":true}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":null,"presence":{"kind":"joined","user":"u-1","version":3,"connections":1,"state":{"s":1}}}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":null,"presence":{"kind":"count","members":1200}}),
        ]
    }

    fn invalid_examples() -> Vec<serde_json::Value> {
        vec![
            json!({"target":{"room":"lobby"},"data":{}}),
            json!({"tenant":"acme","data":{}}),
            json!({"tenant":"acme","target":{"room":"lobby"}}),
            json!({"tenant":"a#b","target":{"room":"lobby"},"data":{}}),
            json!({"tenant":"acme","target":{"room":"lob by"},"data":{}}),
            json!({"tenant":"acme","target":{"tenant":false},"data":{}}),
            json!({"tenant":"acme","target":{"room":"a","user":"b"},"data":{}}),
            json!({"tenant":"acme","target":{"planet":"mars"},"data":{}}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"extra":1}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"idempotencyKey":""}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"exclude":["a#b"]}),
            json!({"tenant":"","target":{"room":"lobby"},"data":{}}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"from":{"user":"u-1"}}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"from":{"service":"s","user":"u"}}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"stream":"no"}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"update":0}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"update":-1}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"update":1,"delete":2}),
            json!({"tenant":"acme","target":{"user":"u-1"},"data":{},"delete":2}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"update":3,"stream":false}),
            json!({"tenant":"acme","target":{"user":"u-1"},"data":{},"signal":true}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"signal":true,"delete":2}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":{},"signal":"yes"}),
            json!({"tenant":"acme","target":{"user":"u-1"},"data":null,"presence":{"kind":"left","user":"u-1"}}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":null,"presence":{"kind":"gone"}}),
            json!({"tenant":"acme","target":{"room":"lobby"},"data":null,"presence":{"user":"u-1"}}),
        ]
    }

    #[test]
    fn schema_and_rust_types_accept_the_same_events() {
        let v = validator();
        for e in valid_examples() {
            assert!(v.is_valid(&e), "schema refused {e}");
            let parsed: BroadcastEvent = serde_json::from_value(e.clone())
                .unwrap_or_else(|err| panic!("rust refused {e}: {err}"));
            let back = serde_json::to_value(&parsed).unwrap();
            assert!(v.is_valid(&back), "schema refused rust output {back}");
        }
    }

    #[test]
    fn schema_and_rust_types_refuse_the_same_events() {
        let v = validator();
        for e in invalid_examples() {
            assert!(!v.is_valid(&e), "schema accepted {e}");
            assert!(
                serde_json::from_value::<BroadcastEvent>(e.clone()).is_err(),
                "rust accepted {e}"
            );
        }
    }

    /// The keys of a JSON object, sorted.
    fn keys(value: &serde_json::Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The schema is written by hand (its dependent rules say more than a
    /// derive can); this keeps its fields and the Rust type's the same
    /// set: a field added to one and not the other fails here.
    #[test]
    fn the_schema_names_every_field_of_the_rust_type() {
        let schema: serde_json::Value = serde_json::from_str(BROADCAST_SCHEMA).unwrap();
        let props = &schema["properties"];
        let full = BroadcastEvent {
            exclude: vec![ConnectionId::new("c1").unwrap()],
            idempotency_key: Some("k".into()),
            from: Some(Sender::Client {
                user: UserId::new("u").unwrap(),
                connection: ConnectionId::new("c1").unwrap(),
            }),
            stream: false,
            update: Some(1),
            delete: Some(1),
            signal: true,
            presence: Some(PresenceNotice {
                kind: PresenceKind::Joined,
                user: Some(UserId::new("u").unwrap()),
                state: Some(RawValue::from_string("1".into()).unwrap()),
                version: Some(1),
                connections: Some(1),
                members: Some(1),
            }),
            ..BroadcastEvent::to_room(
                TenantId::new("acme").unwrap(),
                RoomId::new("lobby").unwrap(),
                RawValue::from_string("1".into()).unwrap(),
            )
        };
        let event = serde_json::to_value(&full).unwrap();
        assert_eq!(keys(&event), keys(props));
        assert_eq!(
            keys(&event["presence"]),
            keys(&props["presence"]["properties"])
        );
        assert_eq!(
            keys(&event["from"]),
            keys(&props["from"]["oneOf"][0]["properties"])
        );
        let service = serde_json::to_value(Sender::Service {
            service: "s".into(),
        })
        .unwrap();
        assert_eq!(
            keys(&service),
            keys(&props["from"]["oneOf"][1]["properties"])
        );
        let kinds: Vec<serde_json::Value> = [
            PresenceKind::Joined,
            PresenceKind::Left,
            PresenceKind::Updated,
            PresenceKind::Count,
        ]
        .iter()
        .map(|k| serde_json::to_value(k).unwrap())
        .collect();
        assert_eq!(
            &kinds,
            props["presence"]["properties"]["kind"]["enum"]
                .as_array()
                .unwrap()
        );
        let targets = [
            Target::Room(RoomId::new("r").unwrap()),
            Target::User(UserId::new("u").unwrap()),
            Target::Connection(ConnectionId::new("c").unwrap()),
            Target::Tenant(AllOfTenant),
        ];
        let mut target_keys: Vec<String> = targets
            .iter()
            .flat_map(|t| keys(&serde_json::to_value(t).unwrap()))
            .collect();
        target_keys.sort();
        assert_eq!(target_keys, keys(&props["target"]["properties"]));
        // Required: what the Rust type cannot do without.
        let minimal = json!({"tenant":"acme","target":{"room":"lobby"},"data":1});
        assert!(serde_json::from_value::<BroadcastEvent>(minimal.clone()).is_ok());
        let mut required: Vec<String> = keys(&minimal)
            .into_iter()
            .filter(|k| {
                let mut without = minimal.clone();
                without.as_object_mut().unwrap().remove(k);
                serde_json::from_value::<BroadcastEvent>(without).is_err()
            })
            .collect();
        required.sort();
        let mut in_schema: Vec<String> =
            serde_json::from_value(schema["required"].clone()).unwrap();
        in_schema.sort();
        assert_eq!(required, in_schema);
    }

    #[test]
    fn targets_use_the_documented_shapes() {
        let t: Target = serde_json::from_str(r#"{"tenant":true}"#).unwrap();
        assert_eq!(t, Target::Tenant(AllOfTenant));
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"tenant":true}"#);
        let t: Target = serde_json::from_str(r#"{"room":"lobby"}"#).unwrap();
        assert_eq!(t.room().unwrap().as_str(), "lobby");
    }

    #[test]
    fn envelope_parses_an_eventbridge_delivery() {
        let raw = r#"{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"fanout.broadcast","source":"acme.orders","account":"111122223333","time":"2026-11-22T09:00:00Z","region":"us-east-1","resources":[],"detail":{"tenant":"acme","target":{"room":"lobby"},"data":{"order":42}}}"#;
        let env: EventEnvelope = serde_json::from_str(raw).unwrap();
        assert_eq!(env.detail_type, BROADCAST);
        let detail: BroadcastEvent = serde_json::from_str(env.detail.get()).unwrap();
        assert_eq!(detail.data.get(), r#"{"order":42}"#);
    }

    #[test]
    fn tenant_bound_sources() {
        let acme = TenantId::new("acme").unwrap();
        for (source, ok) in [
            ("acme", true),
            ("acme.orders", true),
            ("acme.orders.eu", true),
            ("acmecorp.orders", false),
            ("globex.orders", false),
            ("acme-orders", false),
            ("", false),
        ] {
            assert_eq!(source_speaks_for(source, &acme), ok, "{source}");
        }
        assert!(is_reserved_source("fanout.client"));
        assert!(is_reserved_source("fanout.connection.opened"));
        assert!(!is_reserved_source("acme.orders"));
    }

    #[test]
    fn a_closed_event_with_many_rooms_is_split_into_parts_that_fit_the_bus() {
        let rooms: Vec<RoomId> = (0..4_000)
            .map(|i| RoomId::new(format!("{i:0>64}")).unwrap())
            .collect();
        let event = LifecycleEvent {
            tenant: TenantId::new("acme").unwrap(),
            user: UserId::new("alice").unwrap(),
            connection_id: ConnectionId::new("c1").unwrap(),
            room: None,
            rooms: rooms.clone(),
            part: None,
            parts: None,
        };
        let parts = event.into_parts();
        assert_eq!(parts.len(), 4);
        let mut seen = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let detail = serde_json::to_string(part).unwrap();
            assert!(
                detail.len() < crate::limits::EVENTBRIDGE_MAX_ENTRY_BYTES / 2,
                "{}",
                detail.len()
            );
            assert_eq!((part.part, part.parts), (Some(i + 1), Some(4)));
            seen.extend(part.rooms.clone());
        }
        assert_eq!(seen, rooms);
    }
}
