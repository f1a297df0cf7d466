//! `leave`: the membership goes, and with it the connection's presence in
//! the room (only members can be present).

use crate::event::{CLIENT_SOURCE, ROOM_LEFT};
use crate::handlers::{emit_lifecycle, presence};
use crate::protocol::{Leave, RequestError};

use super::context::{Frame, Reply};

pub(super) async fn leave(frame: &Frame<'_>, request: Leave) -> Result<Reply, RequestError> {
    let Leave { room } = request;
    let gateway = &frame.deps.gateway;
    let caller = &frame.caller;
    let was_member = gateway
        .store
        .leave_room(&caller.id, &caller.tenant, &room)
        .await
        .map_err(|e| frame.internal("could not leave the room", &e))?;
    if was_member {
        let outcome = gateway
            .presence
            .exit(&caller.tenant, &room, &caller.user, &caller.id)
            .await
            .map_err(|e| frame.internal("could not leave the room's presence", &e))?;
        presence::announce(CLIENT_SOURCE, &caller.tenant, &room, outcome, gateway).await;
        emit_lifecycle(gateway.bus.as_ref(), ROOM_LEFT, frame.lifecycle(room)).await;
    }
    Ok(frame.ack())
}
