//! Dedupe markers (`EVT#<key>` / `EVT`): conditional claims with a lease,
//! done markers with a TTL, and the stream number a released or done
//! event got.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use fanout_core::ports::{
    CLAIM_KEPT_AFTER_LEASE_SECS, EventClaim, EventDedupe, PriorAttempt, StoreError,
};

use super::{DynamoStore, Item, get_n, get_s, is_condition_failure, key, n, s, unavailable};

fn marker_key(key_text: &str) -> Item {
    key(format!("EVT#{key_text}"), "EVT".into())
}

/// What the marker a claim replaced says about the attempt before.
fn prior_of(old: Option<&Item>, now_ms: i64) -> Result<PriorAttempt, StoreError> {
    let Some(old) = old else {
        return Ok(PriorAttempt::None);
    };
    if get_n(old, "ttl")? <= now_ms.div_euclid(1000) {
        return Ok(PriorAttempt::None);
    }
    Ok(match old.get("leaseUntil") {
        // A done marker cannot be claimed while live; this one had expired.
        None => PriorAttempt::None,
        Some(_) if get_n(old, "leaseUntil")? == 0 => match old.get("seq") {
            Some(_) => PriorAttempt::Numbered(get_n(old, "seq")? as u64),
            None => PriorAttempt::None,
        },
        // Its lease passed with the claim still held: its planner died.
        Some(_) => PriorAttempt::Crashed,
    })
}

#[async_trait]
impl EventDedupe for DynamoStore {
    async fn claim_event(
        &self,
        key_text: &str,
        owner: &str,
        now_ms: i64,
        lease: Duration,
    ) -> Result<EventClaim, StoreError> {
        let lease_until_ms = now_ms + lease.as_millis() as i64;
        let mut item = marker_key(key_text);
        item.extend([
            ("owner".to_string(), s(owner)),
            ("leaseUntil".to_string(), n(lease_until_ms)),
            (
                "ttl".to_string(),
                n(lease_until_ms.div_euclid(1000) + 1 + CLAIM_KEPT_AFTER_LEASE_SECS),
            ),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Free, expired, released, or a claim whose planner's lease
            // has passed. The old item tells what that attempt left.
            .condition_expression(
                "attribute_not_exists(pk) OR #ttl <= :nowsecs OR (attribute_exists(leaseUntil) AND leaseUntil <= :nowms)",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":nowsecs", n(now_ms.div_euclid(1000)))
            .expression_attribute_values(":nowms", n(now_ms))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                return Ok(EventClaim::Claimed {
                    prior: prior_of(out.attributes.as_ref(), now_ms)?,
                });
            }
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(unavailable(e)),
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(marker_key(key_text)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(marker) = out.item else {
            // Released between the two calls: let the retry claim it.
            return Ok(EventClaim::InProgress {
                owner: String::new(),
            });
        };
        let owner = get_s(&marker, "owner")?.to_string();
        Ok(if marker.contains_key("leaseUntil") {
            EventClaim::InProgress { owner }
        } else {
            EventClaim::AlreadyDone { owner }
        })
    }

    async fn complete_event(
        &self,
        key_text: &str,
        owner: &str,
        expires_at_secs: i64,
        seq: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut item = marker_key(key_text);
        item.extend([
            ("owner".to_string(), s(owner)),
            ("ttl".to_string(), n(expires_at_secs)),
        ]);
        if let Some(seq) = seq {
            item.insert("seq".to_string(), n(seq as i64));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release_event(
        &self,
        key_text: &str,
        owner: &str,
        seq: Option<u64>,
        expires_at_secs: i64,
    ) -> Result<(), StoreError> {
        // Only the owner's unreleased claim.
        const OWN_CLAIM: &str = "#owner = :owner AND leaseUntil > :zero";
        match seq {
            // Keep the number for the retry.
            Some(seq) => self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(marker_key(key_text)))
                .update_expression("SET leaseUntil = :zero, #seq = :seq, #ttl = :ttl")
                .condition_expression(OWN_CLAIM)
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_values(":owner", s(owner))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":seq", n(seq as i64))
                .expression_attribute_values(":ttl", n(expires_at_secs))
                .send()
                .await
                .map(drop)
                .or_else(not_owned),
            None => self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(marker_key(key_text)))
                .condition_expression(OWN_CLAIM)
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(owner))
                .expression_attribute_values(":zero", n(0))
                .send()
                .await
                .map(drop)
                .or_else(not_owned),
        }
    }
}

/// A release whose condition failed: the claim is no longer this owner's
/// (taken over, or already released), so there is nothing to give up.
fn not_owned<E>(error: aws_sdk_dynamodb::error::SdkError<E>) -> Result<(), StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_condition_failure(&error) {
        Ok(())
    } else {
        Err(unavailable(error))
    }
}
