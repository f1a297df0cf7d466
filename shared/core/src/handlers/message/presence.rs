//! Presence in a room: reading a page of its present users (`presence`)
//! and setting the caller's own state (`presence.update`).

use crate::auth::Right;
use crate::event::CLIENT_SOURCE;
use crate::handlers::presence::{self, PAGE_SIZE};
use crate::ports::{PresenceChange, StoreError};
use crate::protocol::{ErrorCode, Presence, PresenceUpdate, RequestError};

use super::context::{Frame, Reply};

pub(super) async fn page(frame: &Frame<'_>, request: Presence) -> Result<Reply, RequestError> {
    let Presence {
        room,
        cursor,
        limit,
    } = request;
    frame.require_reader(&room, Right::Presence).await?;
    let store = frame.deps.gateway.presence.as_ref();
    let tenant = &frame.caller.tenant;
    let limit = limit.unwrap_or(PAGE_SIZE).clamp(1, PAGE_SIZE);
    let page = store
        .presence_page(tenant, &room, cursor.as_deref(), limit)
        .await
        .map_err(|e| match e {
            StoreError::BadCursor => frame.fail(
                ErrorCode::BadRequest,
                "cursor must be the one a presence reply gave",
            ),
            e => frame.internal("could not read the room's presence", &e),
        })?;
    let count = store
        .presence_count(tenant, &room)
        .await
        .map_err(|e| frame.internal("could not read the room's presence", &e))?;
    Ok(Reply::Frame(presence::page_frame(
        frame.request_id(),
        &room,
        &page,
        count,
    )))
}

pub(super) async fn update(
    frame: &Frame<'_>,
    request: PresenceUpdate,
) -> Result<Reply, RequestError> {
    let PresenceUpdate { room, state } = request;
    let gateway = &frame.deps.gateway;
    let caller = &frame.caller;
    let outcome = gateway
        .presence
        .set_state(&caller.tenant, &room, &caller.user, &caller.id, &state)
        .await
        .map_err(|e| frame.internal("could not update the presence state", &e))?;
    if matches!(outcome.change, PresenceChange::Unchanged) {
        return Err(frame.fail_in(
            &room,
            ErrorCode::NotMember,
            format!("join room '{room}' with \"presence\": true before updating your presence"),
        ));
    }
    presence::announce(CLIENT_SOURCE, &caller.tenant, &room, outcome, gateway).await;
    Ok(frame.ack())
}
