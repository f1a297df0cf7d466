//! Presence on the table: one partition per room (`PRESENCE#<tenant>#<room>`)
//! with an item per present user (`USER#<user>`: its connections as a
//! string set, so tabs entering and leaving concurrently are atomic and
//! idempotent, its state, version and TTL) and the room's count (`COUNT`:
//! present users, and when the last `presence.count` went out).
//!
//! Cost: entering or leaving is one conditional UpdateItem, plus one on
//! `COUNT` when the user joins or leaves (and a DeleteItem to drop a user
//! that left); a state change is one UpdateItem; a page is one Query.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde_json::value::RawValue;

use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::ports::{
    Page, PresenceChange, PresenceMember, PresenceOutcome, PresenceStore, StoreError,
    first_presence_version,
};

use super::{DynamoStore, Item, get_n, get_s, is_condition_failure, key, n, s, unavailable};

fn presence_pk(tenant: &TenantId, room: &RoomId) -> String {
    format!("PRESENCE#{tenant}#{room}")
}

fn user_sk(user: &UserId) -> String {
    format!("USER#{user}")
}

fn connections_of(item: &Item) -> Vec<String> {
    match item.get("conns") {
        Some(AttributeValue::Ss(set)) => set.clone(),
        _ => Vec::new(),
    }
}

/// A counter attribute; absent (never counted) is 0.
fn count_of(item: &Item, name: &str) -> u64 {
    get_n(item, name).map_or(0, |v| v.max(0) as u64)
}

fn version_of(item: &Item) -> u64 {
    count_of(item, "version")
}

fn state_of(item: &Item) -> Result<Option<Box<RawValue>>, StoreError> {
    match item.get("state") {
        Some(AttributeValue::S(json)) => RawValue::from_string(json.clone())
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("presence state: {e}"))),
        _ => Ok(None),
    }
}

fn member_of(item: &Item) -> Result<PresenceMember, StoreError> {
    let user = get_s(item, "sk")?.trim_start_matches("USER#");
    Ok(PresenceMember {
        user: UserId::new(user).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        connections: connections_of(item).len(),
        state: state_of(item)?,
        version: version_of(item),
    })
}

impl DynamoStore {
    /// Moves the room's present-user count by `delta` and returns it.
    async fn count_presence(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        delta: i64,
    ) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(presence_pk(tenant, room), "COUNT".into())))
            .update_expression("ADD members :delta")
            .expression_attribute_values(":delta", n(delta))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(count_of(&out.attributes.unwrap_or_default(), "members"))
    }

    /// Adds `connection` to a live (or new) member item, a new one at
    /// version `first` + 1; `None` when the item is there but expired.
    async fn add_connection(
        &self,
        member_key: &Item,
        user: &UserId,
        connection: &ConnectionId,
        state: Option<&RawValue>,
        ttl: i64,
        first: u64,
    ) -> Result<Option<Item>, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(member_key.clone()))
            .condition_expression("attribute_not_exists(pk) OR #ttl > :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#user", "user")
            .expression_attribute_values(":c", AttributeValue::Ss(vec![connection.to_string()]))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":first", n(i64::try_from(first).unwrap_or(i64::MAX)))
            .expression_attribute_values(":ttl", n(ttl))
            .expression_attribute_values(":now", n(self.clock.now_secs()))
            .expression_attribute_values(":user", s(user.as_str()))
            .return_values(ReturnValue::AllOld);
        update = match state {
            Some(state) => update
                .update_expression(
                    "ADD conns :c SET version = if_not_exists(version, :first) + :one, #ttl = :ttl, #user = :user, #state = :state",
                )
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":state", s(state.get())),
            None => update
                .update_expression(
                    "ADD conns :c SET version = if_not_exists(version, :first) + :one, #ttl = :ttl, #user = :user",
                ),
        };
        match update.send().await {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl PresenceStore for DynamoStore {
    async fn enter(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        user: &UserId,
        connection: &ConnectionId,
        state: Option<&RawValue>,
        ttl: i64,
    ) -> Result<PresenceOutcome, StoreError> {
        let member_key = key(presence_pk(tenant, room), user_sk(user));
        let first = first_presence_version(self.clock.now_ms());
        // An expired member is still in the room's count (nothing left it).
        let mut revived = false;
        let old = match self
            .add_connection(&member_key, user, connection, state, ttl, first)
            .await?
        {
            Some(old) => old,
            None => {
                // Expired with its connections gone: drop it, enter anew.
                revived = true;
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(member_key.clone()))
                    .condition_expression("#ttl <= :now")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":now", n(self.clock.now_secs()))
                    .send()
                    .await
                    .map(drop)
                    .or_else(|e| {
                        if is_condition_failure(&e) {
                            Ok(())
                        } else {
                            Err(unavailable(e))
                        }
                    })?;
                self.add_connection(&member_key, user, connection, state, ttl, first)
                    .await?
                    .unwrap_or_default()
            }
        };
        let before = connections_of(&old);
        let joined = before.is_empty();
        let connections = before.len() + usize::from(!before.contains(&connection.to_string()));
        let member = PresenceMember {
            user: user.clone(),
            connections,
            state: match state {
                Some(state) => Some(state.to_owned()),
                None => state_of(&old)?,
            },
            version: match old.get("version") {
                Some(_) => version_of(&old),
                None => first,
            } + 1,
        };
        if joined {
            let members = if revived {
                self.presence_count(tenant, room).await?
            } else {
                self.count_presence(tenant, room, 1).await?
            };
            return Ok(PresenceOutcome {
                change: PresenceChange::Joined(member),
                members,
            });
        }
        let members = self.presence_count(tenant, room).await?;
        Ok(PresenceOutcome {
            change: if state.is_some() {
                PresenceChange::Updated(member)
            } else {
                PresenceChange::Unchanged
            },
            members,
        })
    }

    async fn exit(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        user: &UserId,
        connection: &ConnectionId,
    ) -> Result<PresenceOutcome, StoreError> {
        let member_key = key(presence_pk(tenant, room), user_sk(user));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(member_key.clone()))
            .update_expression("DELETE conns :c ADD version :one")
            .condition_expression("contains(conns, :cid)")
            .expression_attribute_values(":c", AttributeValue::Ss(vec![connection.to_string()]))
            .expression_attribute_values(":cid", s(connection.as_str()))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            // Not present: a second departure of the same connection.
            Err(e) if is_condition_failure(&e) => {
                return Ok(PresenceOutcome::unchanged(
                    self.presence_count(tenant, room).await?,
                ));
            }
            Err(e) => return Err(unavailable(e)),
        };
        if !connections_of(&item).is_empty() {
            return Ok(PresenceOutcome::unchanged(
                self.presence_count(tenant, room).await?,
            ));
        }
        // The last connection left; drop the item unless a tab came back.
        let dropped = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(member_key))
            .condition_expression("attribute_not_exists(conns)")
            .send()
            .await;
        if let Err(e) = dropped
            && !is_condition_failure(&e)
        {
            return Err(unavailable(e));
        }
        Ok(PresenceOutcome {
            change: PresenceChange::Left {
                user: user.clone(),
                version: version_of(&item),
            },
            members: self.count_presence(tenant, room, -1).await?,
        })
    }

    async fn set_state(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        user: &UserId,
        connection: &ConnectionId,
        state: &RawValue,
    ) -> Result<PresenceOutcome, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(presence_pk(tenant, room), user_sk(user))))
            .update_expression("SET #state = :state ADD version :one")
            .condition_expression("contains(conns, :cid) AND #ttl > :now")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":state", s(state.get()))
            .expression_attribute_values(":cid", s(connection.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(self.clock.now_secs()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let change = match result {
            Ok(out) => PresenceChange::Updated(member_of(&out.attributes.unwrap_or_default())?),
            Err(e) if is_condition_failure(&e) => PresenceChange::Unchanged,
            Err(e) => return Err(unavailable(e)),
        };
        Ok(PresenceOutcome {
            change,
            members: self.presence_count(tenant, room).await?,
        })
    }

    async fn presence_count(&self, tenant: &TenantId, room: &RoomId) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(presence_pk(tenant, room), "COUNT".into())))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item.map_or(0, |i| count_of(&i, "members")))
    }

    async fn presence_page(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<PresenceMember>, StoreError> {
        let pk = presence_pk(tenant, room);
        let mut start = match cursor {
            Some(c) => {
                let user = UserId::new(c).map_err(|_| StoreError::BadCursor)?;
                Some(key(pk.clone(), user_sk(&user)))
            }
            None => None,
        };
        let now = self.clock.now_secs();
        let mut items = Vec::new();
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :users)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":users", s("USER#"))
                .set_exclusive_start_key(start)
                .limit((limit + 1 - items.len()).min(1_000) as i32)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items.unwrap_or_default() {
                if get_n(&item, "ttl").is_ok_and(|ttl| ttl > now) && items.len() <= limit {
                    items.push(member_of(&item)?);
                }
            }
            match out.last_evaluated_key {
                Some(last) if items.len() <= limit => start = Some(last),
                _ => break,
            }
        }
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|m| m.user.to_string()).unwrap_or_default()
        });
        Ok(Page { items, next })
    }

    async fn claim_count_notice(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(presence_pk(tenant, room), "COUNT".into())))
            .update_expression("SET lastCountAt = :now")
            .condition_expression("attribute_not_exists(lastCountAt) OR lastCountAt <= :before")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":before", n(now_ms - interval_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}
