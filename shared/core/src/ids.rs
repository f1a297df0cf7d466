//! Validated identifiers. Tenant, room and user ids end up inside DynamoDB
//! keys such as `ROOM#<tenant>#<room>#<shard>`, so `#` and anything outside a
//! small URL-safe charset is refused at the edge, with a message that names
//! the field.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Longest tenant, room or user id accepted.
pub const MAX_NAME_LEN: usize = 64;
/// Longest connection id accepted (API Gateway's are 16 characters).
pub const MAX_CONNECTION_ID_LEN: usize = 128;

/// Why an id was refused. Every violation maps to the `bad_request` error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} must be at most {max} characters, got {len}")]
    TooLong {
        kind: &'static str,
        max: usize,
        len: usize,
    },
    #[error("{kind} may only contain letters, digits and . _ - : @ (found {found:?})")]
    BadCharacter { kind: &'static str, found: char },
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')
}

fn is_connection_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-' | '.')
}

fn check(
    kind: &'static str,
    value: &str,
    max: usize,
    allowed: fn(char) -> bool,
) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    let len = value.chars().count();
    if len > max {
        return Err(IdError::TooLong { kind, max, len });
    }
    match value.chars().find(|c| !allowed(*c)) {
        Some(found) => Err(IdError::BadCharacter { kind, found }),
        None => Ok(()),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The field name used in error messages.
            pub const KIND: &'static str = $kind;

            pub fn new(value: impl AsRef<str>) -> Result<Self, IdError> {
                let value = value.as_ref();
                check($kind, value, $max, $allowed)?;
                Ok(Self(Arc::from(value)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        // Written by hand rather than through `String`: a delivery job
        // carries thousands of connection ids, and the derived form cost
        // a `String` per id each way on top of the id itself.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct IdVisitor;
                impl Visitor<'_> for IdVisitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a {} id", $kind)
                    }
                    fn visit_str<E: de::Error>(self, value: &str) -> Result<$name, E> {
                        $name::new(value).map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(IdVisitor)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: the isolation boundary. Rooms and users live inside one.
    TenantId, "tenant", MAX_NAME_LEN, is_name_char
);
id_type!(
    /// A room inside a tenant.
    RoomId, "room", MAX_NAME_LEN, is_name_char
);
id_type!(
    /// A user inside a tenant (the JWT's `sub`).
    UserId, "user", MAX_NAME_LEN, is_name_char
);
id_type!(
    /// An API Gateway connection id (base64-like, e.g. `L0SM9cOFvHcCIhw=`).
    ConnectionId, "connection", MAX_CONNECTION_ID_LEN, is_connection_id_char
);

/// The shard a connection's membership lives in. Stable across processes
/// (FNV-1a), because the AWS store writes it into partition keys.
pub fn shard_of(id: &ConnectionId, shards: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id.as_str().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in [
            "lobby",
            "u-42",
            "acme.eu",
            "team:7",
            "alice@example.com",
            "A_b",
        ] {
            assert!(RoomId::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_names_with_the_field_named() {
        assert_eq!(RoomId::new(""), Err(IdError::Empty { kind: "room" }));
        assert_eq!(
            TenantId::new("a#b"),
            Err(IdError::BadCharacter {
                kind: "tenant",
                found: '#'
            })
        );
        assert_eq!(
            UserId::new("x".repeat(65)),
            Err(IdError::TooLong {
                kind: "user",
                max: 64,
                len: 65
            })
        );
        assert!(RoomId::new("has space").is_err());
        assert!(RoomId::new("ünï").is_err());
        assert_eq!(
            RoomId::new("a#b").unwrap_err().to_string(),
            "room may only contain letters, digits and . _ - : @ (found '#')"
        );
    }

    #[test]
    fn connection_ids_allow_base64() {
        assert!(ConnectionId::new("L0SM9cOFvHcCIhw=").is_ok());
        assert!(ConnectionId::new("a/b+c").is_ok());
        assert!(ConnectionId::new("a#b").is_err());
    }

    #[test]
    fn serde_validates() {
        let ok: RoomId = serde_json::from_str("\"lobby\"").unwrap();
        assert_eq!(ok.as_str(), "lobby");
        assert!(serde_json::from_str::<RoomId>("\"a#b\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"lobby\"");

        // Ids travel as plain JSON strings, in a job's list as anywhere.
        let id = ConnectionId::new("L0SM9cOFvHcCIhw=").unwrap();
        let json = serde_json::to_string(&vec![id.clone()]).unwrap();
        assert_eq!(json, r#"["L0SM9cOFvHcCIhw="]"#);
        let back: Vec<ConnectionId> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![id]);
        // An escaped string is decoded before it is checked.
        let room: RoomId = serde_json::from_str(r#""lobby\u002d1""#).unwrap();
        assert_eq!(room.as_str(), "lobby-1");

        // A refusal names the field, and a non-string says what was expected.
        let error = serde_json::from_str::<TenantId>(r#""a#b""#).unwrap_err();
        assert!(
            error.to_string().contains("tenant may only contain"),
            "{error}"
        );
        let error = serde_json::from_str::<RoomId>("42").unwrap_err();
        assert!(error.to_string().contains("expected a room id"), "{error}");
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        let id = ConnectionId::new("L0SM9cOFvHcCIhw=").unwrap();
        assert_eq!(shard_of(&id, 4), shard_of(&id, 4));
        let mut seen = [0u32; 8];
        for i in 0..8_000 {
            let id = ConnectionId::new(format!("c{i}")).unwrap();
            seen[shard_of(&id, 8) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "uneven spread {seen:?}");
        assert_eq!(shard_of(&id, 0), 0);
    }
}
