//! `join`: check the rights (the token's, or a grant's), the cap on rooms
//! per connection, store the membership, enter the room's presence when
//! asked, and answer with the room's head, or with `since` replay what
//! the client missed first.

use bytes::Bytes;

use crate::auth::{Right, Rights};
use crate::event::{CLIENT_SOURCE, ROOM_JOINED};
use crate::handlers::{emit_lifecycle, presence};
use crate::ids::RoomId;
use crate::limits::connection_ttl_secs;
use crate::protocol::{ErrorCode, Join, RequestError, ServerFrame};
use crate::stream::{self, Replay};

use super::context::{Frame, Reply};

pub(super) async fn join(frame: &Frame<'_>, request: Join) -> Result<Reply, RequestError> {
    let Join {
        room,
        grant,
        since,
        presence,
    } = request;
    let granted = match grant {
        Some(grant) => check_grant(frame, &grant, &room).await?,
        None => Rights::NONE,
    };
    let rights = frame.rights_on(&room, granted);
    frame.require(rights, &room, Right::Subscribe)?;
    if presence.is_some() {
        frame.require(rights, &room, Right::Presence)?;
    }
    check_room_cap(frame, &room).await?;
    let gateway = &frame.deps.gateway;
    gateway
        .store
        .join_room(&frame.record, &room, granted)
        .await
        .map_err(|e| frame.internal("could not join the room", &e))?;
    emit_lifecycle(
        gateway.bus.as_ref(),
        ROOM_JOINED,
        frame.lifecycle(room.clone()),
    )
    .await;
    if let Some(state) = presence {
        enter_presence(frame, &room, state.as_deref()).await?;
    }
    // The membership is stored: whatever the stream reads now, an event
    // stored later finds the member when it is planned.
    match since {
        None => joined_at_head(frame, &room).await,
        Some(since) => resume(frame, &room, since).await,
    }
}

/// The rights a grant adds on `room`, or why it is refused.
async fn check_grant(
    frame: &Frame<'_>,
    grant: &str,
    room: &RoomId,
) -> Result<Rights, RequestError> {
    let record = &frame.record;
    let refuse = |message: String| frame.fail_in(room, ErrorCode::Forbidden, message);
    let grant = frame
        .deps
        .verifier
        .verify_grant(grant, frame.now_ms.div_euclid(1000))
        .await
        .map_err(|error| {
            tracing::info!(connection_id = %record.id, %room, %error, "room grant refused");
            refuse(format!("the grant for room '{room}' was refused ({error})"))
        })?;
    if grant.principal.tenant != record.tenant || grant.principal.user != record.user {
        return Err(refuse(format!(
            "the grant for room '{room}' is for another user or tenant"
        )));
    }
    if &grant.room != room {
        return Err(refuse(format!(
            "the grant is for room '{}', not '{room}'",
            grant.room
        )));
    }
    Ok(grant.rights)
}

/// One COUNT query per join; the membership check only at the cap
/// (joining a room again is idempotent). Concurrent joins from one
/// connection can pass the cap by at most those in flight.
async fn check_room_cap(frame: &Frame<'_>, room: &RoomId) -> Result<(), RequestError> {
    let gateway = &frame.deps.gateway;
    let caller = &frame.caller;
    let failed = |e: &dyn std::fmt::Display| frame.internal("could not join the room", e);
    let max = gateway.settings.max_rooms_per_connection;
    let joined = gateway
        .store
        .room_count(&caller.id)
        .await
        .map_err(|e| failed(&e))?;
    if joined < max {
        return Ok(());
    }
    let member = gateway
        .store
        .is_member(&caller.id, &caller.tenant, room)
        .await
        .map_err(|e| failed(&e))?;
    if member {
        return Ok(());
    }
    Err(frame.fail(
        ErrorCode::LimitExceeded,
        format!("a connection may be in at most {max} rooms; leave one before joining '{room}'"),
    ))
}

async fn enter_presence(
    frame: &Frame<'_>,
    room: &RoomId,
    state: Option<&serde_json::value::RawValue>,
) -> Result<(), RequestError> {
    let gateway = &frame.deps.gateway;
    let caller = &frame.caller;
    let outcome = gateway
        .presence
        .enter(
            &caller.tenant,
            room,
            &caller.user,
            &caller.id,
            state,
            // Its longest life, not the token's expiry: a `refresh` moves
            // the token on without touching presence, and an expired token
            // closes the connection, which ends its presence.
            connection_ttl_secs(
                frame.record.connected_at_ms,
                gateway.settings.max_connection_duration,
            ),
        )
        .await
        .map_err(|e| frame.internal("could not enter the room's presence", &e))?;
    presence::announce(CLIENT_SOURCE, &caller.tenant, room, outcome, gateway).await;
    Ok(())
}

fn joined(
    frame: &Frame<'_>,
    room: &RoomId,
    seq: u64,
    recovered: Option<bool>,
    oldest: Option<u64>,
) -> Reply {
    frame.reply(ServerFrame::Joined {
        request_id: frame.request_id(),
        room: room.as_str(),
        seq,
        recovered,
        oldest,
    })
}

async fn joined_at_head(frame: &Frame<'_>, room: &RoomId) -> Result<Reply, RequestError> {
    let head = frame
        .deps
        .streams
        .head(&frame.caller.tenant, room)
        .await
        .map_err(|e| frame.internal("could not read the room's stream", &e))?;
    Ok(joined(frame, room, head, None, None))
}

/// Replays what was stored after `since`, then answers.
async fn resume(frame: &Frame<'_>, room: &RoomId, since: u64) -> Result<Reply, RequestError> {
    let deps = frame.deps;
    let replay = stream::replay(
        deps.streams.as_ref(),
        &deps.stream,
        &frame.caller.tenant,
        room,
        since,
    )
    .await
    .map_err(|e| frame.internal("could not read the room's stream", &e))?;
    post_replay(frame, room, &replay)
        .await
        .map_err(|e| frame.internal("could not replay the room's stream", &e))?;
    Ok(joined(
        frame,
        room,
        replay.head,
        Some(replay.recovered),
        replay.oldest,
    ))
}

/// Posts a replay's frames to the joining connection, in order, before
/// the `joined` reply goes out: one @connections POST per 128 KB of
/// events.
async fn post_replay(
    frame: &Frame<'_>,
    room: &RoomId,
    replay: &Replay,
) -> Result<(), crate::ports::PostError> {
    for body in stream::replay_frames(room, &replay.entries) {
        frame
            .deps
            .poster
            .post(&frame.caller.id, &Bytes::from(body))
            .await?;
    }
    Ok(())
}
