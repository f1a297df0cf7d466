//! Telling a room what changed in its presence: the message function (on
//! `join`, `leave` and `presence.update`) and the disconnect function (for
//! every room a closed connection was present in) turn a store change into
//! a `presence.*` notice, a broadcast the planner delivers like a signal.
//! Below `--presence-max-members` a room hears every join, leave and
//! update; above it, only a `presence.count` at most every
//! `--presence-count-interval`, so a big room does not pay N².

use std::collections::BTreeMap;

use futures::StreamExt;
use serde_json::value::RawValue;

use crate::event::{AllOfTenant, BROADCAST, BroadcastEvent, PresenceKind, PresenceNotice, Target};
use crate::handlers::GatewayDeps;
use crate::handlers::planner::resolve;
use crate::ids::{RoomId, TenantId, UserId};
use crate::ports::{
    BusEntry, ConnectionStore, Page, PresenceChange, PresenceMember, PresenceOutcome, StoreError,
    publish,
};
use crate::protocol::{PresentUser, ServerFrame};

/// The notice a change calls for, if any: a per-member one, or in a room
/// past the threshold a count (when this change claims the interval's).
async fn notice_for(
    tenant: &TenantId,
    room: &RoomId,
    outcome: PresenceOutcome,
    deps: &GatewayDeps,
) -> Option<PresenceNotice> {
    let blank = |kind| PresenceNotice {
        kind,
        user: None,
        state: None,
        version: None,
        connections: None,
        members: None,
    };
    if matches!(outcome.change, PresenceChange::Unchanged) {
        return None;
    }
    let settings = &deps.presence_settings;
    if outcome.members > settings.presence_max_members {
        let now_ms = deps.clock.now_ms();
        let interval = settings.presence_count_interval.as_millis() as i64;
        return match deps
            .presence
            .claim_count_notice(tenant, room, now_ms, interval)
            .await
        {
            Ok(true) => Some(PresenceNotice {
                members: Some(outcome.members),
                ..blank(PresenceKind::Count)
            }),
            Ok(false) => None,
            Err(error) => {
                tracing::warn!(%error, %room, "could not claim the presence count notice");
                None
            }
        };
    }
    let joined = matches!(outcome.change, PresenceChange::Joined(_));
    Some(match outcome.change {
        PresenceChange::Joined(m) | PresenceChange::Updated(m) => PresenceNotice {
            user: Some(m.user),
            state: m.state,
            version: Some(m.version),
            connections: Some(m.connections),
            ..blank(if joined {
                PresenceKind::Joined
            } else {
                PresenceKind::Updated
            })
        },
        PresenceChange::Left { user, version } => PresenceNotice {
            user: Some(user),
            version: Some(version),
            ..blank(PresenceKind::Left)
        },
        PresenceChange::Unchanged => return None,
    })
}

/// Tells the room about `outcome` (one PutEvents), from `source` (the
/// client or the gateway source). A failure is logged: presence is
/// best-effort, and a client's next `presence` page is the truth.
pub async fn announce(
    source: &str,
    tenant: &TenantId,
    room: &RoomId,
    outcome: PresenceOutcome,
    deps: &GatewayDeps,
) {
    let Some(notice) = notice_for(tenant, room, outcome, deps).await else {
        return;
    };
    let event = BroadcastEvent {
        stream: false,
        presence: Some(notice),
        ..BroadcastEvent::to_room(tenant.clone(), room.clone(), RawValue::NULL.to_owned())
    };
    let detail = match serde_json::to_string(&event) {
        Ok(detail) => detail,
        Err(error) => {
            tracing::error!(%error, "could not encode a presence notice");
            return;
        }
    };
    if let Err(error) = publish(
        deps.bus.as_ref(),
        &[BusEntry::new(source, BROADCAST, detail)],
    )
    .await
    {
        tracing::warn!(%error, %room, "could not send a presence notice");
    }
}

impl<'a> From<&'a PresenceMember> for PresentUser<'a> {
    fn from(m: &'a PresenceMember) -> Self {
        PresentUser {
            user: m.user.as_str(),
            connections: m.connections,
            state: m.state.as_deref(),
            version: m.version,
        }
    }
}

/// Most users one `presence` page lists (a page of small states fits one
/// 128 KB frame: 100 × (1 KB state + id)).
pub const PAGE_SIZE: usize = 100;

/// The `presence` reply for one page of a room's present users: what a
/// client's `presence` action and the services' read get.
pub fn page_frame(
    request_id: Option<&str>,
    room: &RoomId,
    page: &Page<PresenceMember>,
    count: u64,
) -> String {
    ServerFrame::Presence {
        request_id,
        room: room.as_str(),
        count,
        members: page.items.iter().map(PresentUser::from).collect(),
        next: page.next.as_deref(),
    }
    .to_json()
}

/// Connections looked up at once when listing a tenant's online users.
const LOOKUPS_IN_FLIGHT: usize = 16;

/// Every user of `tenant` with a live connection, and how many it has:
/// the tenant's connection set (all shards) and one read per connection.
/// For operators and services (`fanout presence --tenant`), not for hot
/// paths.
pub async fn online_users(
    store: &dyn ConnectionStore,
    tenant: &TenantId,
) -> Result<BTreeMap<UserId, usize>, StoreError> {
    let ids = resolve(tenant, &Target::Tenant(AllOfTenant), store)
        .await?
        .connections;
    let lookups = ids
        .into_iter()
        .map(|id| async move { store.get_connection(&id).await });
    let records: Vec<_> = futures::stream::iter(lookups)
        .buffer_unordered(LOOKUPS_IN_FLIGHT)
        .collect()
        .await;
    let mut online = BTreeMap::new();
    for record in records {
        if let Some(record) = record? {
            *online.entry(record.user).or_insert(0) += 1;
        }
    }
    Ok(online)
}
