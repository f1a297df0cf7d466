//! `leave`: the membership goes, and with it the connection's presence in
//! the room (only members can be present). A `refresh` that no longer
//! allows a room ends it the same way.

use crate::event::{CLIENT_SOURCE, ROOM_LEFT};
use crate::handlers::{emit_lifecycle, presence};
use crate::ids::RoomId;
use crate::protocol::{Leave, RequestError};

use super::context::{Frame, Reply};

pub(super) async fn leave(frame: &Frame<'_>, request: Leave) -> Result<Reply, RequestError> {
    end_membership(frame, &request.room).await?;
    Ok(frame.ack())
}

/// Ends the connection's membership of `room` and its presence there;
/// nothing when it is not a member.
pub(super) async fn end_membership(frame: &Frame<'_>, room: &RoomId) -> Result<(), RequestError> {
    let gateway = &frame.deps.gateway;
    let caller = &frame.caller;
    let was_member = gateway
        .store
        .leave_room(&caller.id, &caller.tenant, room)
        .await
        .map_err(|e| frame.internal("could not leave the room", &e))?;
    if was_member {
        end_presence(frame, room).await?;
        emit_lifecycle(
            gateway.bus.as_ref(),
            ROOM_LEFT,
            frame.lifecycle(room.clone()),
        )
        .await;
    }
    Ok(())
}

/// Ends the connection's presence in `room`, announcing the change.
pub(super) async fn end_presence(frame: &Frame<'_>, room: &RoomId) -> Result<(), RequestError> {
    let gateway = &frame.deps.gateway;
    let caller = &frame.caller;
    let outcome = gateway
        .presence
        .exit(&caller.tenant, room, &caller.user, &caller.id)
        .await
        .map_err(|e| frame.internal("could not leave the room's presence", &e))?;
    presence::announce(CLIENT_SOURCE, &caller.tenant, room, outcome, gateway).await;
    Ok(())
}
