//! Room permissions: the rights a connection holds on a room, the
//! capability map a token carries (`{"lobby":["subscribe","publish"],
//! "team-42:*":["subscribe"]}`), and the default policy for tokens without
//! one.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::RoomId;

/// One thing a connection may do in a room.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    /// `join` the room and receive what is published to it.
    Subscribe,
    /// `publish` to the room.
    Publish,
    /// See and announce who is in the room (presence).
    Presence,
    /// Read the room's stored history.
    History,
    /// Send signals (ephemeral, not stored) to members of the room.
    Signal,
}

impl Right {
    pub const ALL: [Right; 5] = [
        Right::Subscribe,
        Right::Publish,
        Right::Presence,
        Right::History,
        Right::Signal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Right::Subscribe => "subscribe",
            Right::Publish => "publish",
            Right::Presence => "presence",
            Right::History => "history",
            Right::Signal => "signal",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of rights, serialized as a list of names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rights(u8);

impl Rights {
    pub const NONE: Rights = Rights(0);

    pub fn all() -> Self {
        Right::ALL.into_iter().collect()
    }

    pub fn contains(self, right: Right) -> bool {
        self.0 & right.bit() != 0
    }

    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Right> {
        Right::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl FromIterator<Right> for Rights {
    fn from_iter<I: IntoIterator<Item = Right>>(iter: I) -> Self {
        Rights(iter.into_iter().fold(0, |bits, r| bits | r.bit()))
    }
}

impl Serialize for Rights {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Rights {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Right>::deserialize(d)?.into_iter().collect())
    }
}

/// A room pattern: an exact room id, or a prefix ending in `*` (`team-42:*`
/// matches `team-42:general`; `*` matches every room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPattern {
    Exact(String),
    Prefix(String),
}

impl RoomPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.strip_suffix('*') {
            Some(prefix) if prefix.contains('*') => {
                Err(format!("room pattern '{text}': '*' may only end a pattern"))
            }
            Some(prefix) => Ok(RoomPattern::Prefix(prefix.to_string())),
            None if text.contains('*') => {
                Err(format!("room pattern '{text}': '*' may only end a pattern"))
            }
            None => RoomId::new(text)
                .map(|_| RoomPattern::Exact(text.to_string()))
                .map_err(|e| format!("room pattern '{text}': {e}")),
        }
    }

    pub fn matches(&self, room: &RoomId) -> bool {
        match self {
            RoomPattern::Exact(r) => r == room.as_str(),
            RoomPattern::Prefix(p) => room.as_str().starts_with(p.as_str()),
        }
    }

    /// The pattern as written (what [`RoomPattern::parse`] reads back).
    pub fn text(&self) -> String {
        match self {
            RoomPattern::Exact(r) => r.clone(),
            RoomPattern::Prefix(p) => format!("{p}*"),
        }
    }
}

/// Most patterns one capability map may hold: it travels in the authorizer
/// context (8 KB in all) and is stored with the connection.
pub const MAX_CAPABILITY_PATTERNS: usize = 64;

/// Room patterns and the rights each grants; a room's rights are the union
/// over every pattern that matches it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    entries: Vec<(RoomPattern, Rights)>,
}

impl Capabilities {
    /// From the claim's value: a JSON object, or a string holding one
    /// (identity providers such as Cognito only carry string attributes).
    pub fn from_claim(value: &serde_json::Value) -> Result<Self, String> {
        match value {
            serde_json::Value::String(text) => {
                let parsed: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| format!("the capabilities string is not JSON: {e}"))?;
                Self::from_object(&parsed)
            }
            other => Self::from_object(other),
        }
    }

    fn from_object(value: &serde_json::Value) -> Result<Self, String> {
        let serde_json::Value::Object(map) = value else {
            return Err(
                r#"capabilities must be an object of room patterns to rights, e.g. {"lobby":["subscribe","publish"]}"#
                    .into(),
            );
        };
        if map.len() > MAX_CAPABILITY_PATTERNS {
            return Err(format!(
                "capabilities name {} room patterns; the limit is {MAX_CAPABILITY_PATTERNS}",
                map.len()
            ));
        }
        let mut entries = Vec::with_capacity(map.len());
        for (pattern, rights) in map {
            let pattern = RoomPattern::parse(pattern)?;
            let rights: Rights = serde_json::from_value(rights.clone()).map_err(|e| {
                format!(
                    "rights of '{}' must be a list of {}: {e}",
                    pattern.text(),
                    Right::ALL.map(Right::as_str).join(", ")
                )
            })?;
            entries.push((pattern, rights));
        }
        Ok(Self { entries })
    }

    /// The rights these capabilities give on `room`.
    pub fn rights_for(&self, room: &RoomId) -> Rights {
        self.entries
            .iter()
            .filter(|(p, _)| p.matches(room))
            .fold(Rights::NONE, |acc, (_, r)| acc.union(*r))
    }

    /// Compact JSON, as stored with the connection and in the authorizer
    /// context.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<String, Rights> =
            self.entries.iter().map(|(p, r)| (p.text(), *r)).collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
    }

    /// Reads what [`Capabilities::to_json`] wrote.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("stored capabilities: {e}"))?;
        Self::from_object(&value)
    }
}

/// What a connection whose token carries no capabilities may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DefaultPolicy {
    /// Every right on every room of its tenant (local development).
    Open,
    /// Nothing: only rooms its capabilities or a grant name (production).
    Deny,
}

/// The rights a connection holds on a room: its token's capabilities (or
/// the default policy when it has none), plus what a grant added.
pub fn effective_rights(
    capabilities: Option<&Capabilities>,
    policy: DefaultPolicy,
    granted: Rights,
    room: &RoomId,
) -> Rights {
    let from_token = match (capabilities, policy) {
        (Some(c), _) => c.rights_for(room),
        (None, DefaultPolicy::Open) => Rights::all(),
        (None, DefaultPolicy::Deny) => Rights::NONE,
    };
    from_token.union(granted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn room(r: &str) -> RoomId {
        RoomId::new(r).unwrap()
    }

    #[test]
    fn patterns_are_exact_or_prefix() {
        let caps = Capabilities::from_claim(&json!({
            "lobby": ["subscribe", "publish"],
            "team-42:*": ["subscribe"],
            "team-42:admins": ["publish"],
            "announcements": ["subscribe"]
        }))
        .unwrap();
        let lobby = caps.rights_for(&room("lobby"));
        assert!(lobby.contains(Right::Subscribe) && lobby.contains(Right::Publish));
        assert!(!lobby.contains(Right::History));
        assert_eq!(
            caps.rights_for(&room("team-42:general")),
            [Right::Subscribe].into_iter().collect()
        );
        assert_eq!(
            caps.rights_for(&room("team-42:admins")),
            [Right::Subscribe, Right::Publish].into_iter().collect()
        );
        assert!(caps.rights_for(&room("lobby2")).is_empty());
        assert!(caps.rights_for(&room("team-43:general")).is_empty());
        let all = Capabilities::from_claim(&json!({"*": ["subscribe"]})).unwrap();
        assert!(all.rights_for(&room("anything")).contains(Right::Subscribe));
    }

    #[test]
    fn a_string_claim_holds_json_and_round_trips() {
        let caps =
            Capabilities::from_claim(&json!(r#"{"lobby":["publish","subscribe"]}"#)).unwrap();
        assert_eq!(caps.to_json(), r#"{"lobby":["subscribe","publish"]}"#);
        assert_eq!(Capabilities::from_json(&caps.to_json()).unwrap(), caps);
    }

    #[test]
    fn bad_capabilities_are_refused_with_a_reason() {
        for (claim, needle) in [
            (json!(["lobby"]), "must be an object"),
            (json!({"lobby": ["fly"]}), "rights of 'lobby'"),
            (json!({"lo*bby": ["subscribe"]}), "may only end"),
            (json!({"a#b": ["subscribe"]}), "room pattern 'a#b'"),
            (json!("{not json"), "not JSON"),
        ] {
            let error = Capabilities::from_claim(&claim).unwrap_err();
            assert!(error.contains(needle), "{claim}: {error}");
        }
        let many: serde_json::Map<String, serde_json::Value> = (0..=MAX_CAPABILITY_PATTERNS)
            .map(|i| (format!("r{i}"), json!(["subscribe"])))
            .collect();
        assert!(Capabilities::from_claim(&serde_json::Value::Object(many)).is_err());
    }

    #[test]
    fn the_default_policy_applies_only_without_capabilities() {
        let lobby = room("lobby");
        let none = Capabilities::default();
        assert_eq!(
            effective_rights(None, DefaultPolicy::Open, Rights::NONE, &lobby),
            Rights::all()
        );
        assert!(effective_rights(None, DefaultPolicy::Deny, Rights::NONE, &lobby).is_empty());
        assert!(
            effective_rights(Some(&none), DefaultPolicy::Open, Rights::NONE, &lobby).is_empty()
        );
        let granted: Rights = [Right::Subscribe].into_iter().collect();
        assert_eq!(
            effective_rights(None, DefaultPolicy::Deny, granted, &lobby),
            granted
        );
    }
}
