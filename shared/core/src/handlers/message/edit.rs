//! Edits of stored messages: `update` and `delete`, by the user who sent
//! the message, while it may still publish to the room.

use serde_json::value::RawValue;

use crate::auth::Right;
use crate::event::{BroadcastEvent, Sender};
use crate::ids::RoomId;
use crate::ports::EntryKind;
use crate::protocol::{Delete, ErrorCode, RequestError, Update};

use super::context::{Frame, Reply};

pub(super) async fn update(frame: &Frame<'_>, request: Update) -> Result<Reply, RequestError> {
    let Update { room, seq, data } = request;
    check_own_message(frame, &room, seq).await?;
    let event = BroadcastEvent {
        from: Some(frame.sender()),
        update: Some(seq),
        ..BroadcastEvent::to_room(frame.caller.tenant.clone(), room, data)
    };
    frame.emit_broadcast(&event).await?;
    Ok(frame.ack())
}

pub(super) async fn delete(frame: &Frame<'_>, request: Delete) -> Result<Reply, RequestError> {
    let Delete { room, seq } = request;
    check_own_message(frame, &room, seq).await?;
    let event = BroadcastEvent {
        from: Some(frame.sender()),
        delete: Some(seq),
        ..BroadcastEvent::to_room(frame.caller.tenant.clone(), room, RawValue::NULL.to_owned())
    };
    frame.emit_broadcast(&event).await?;
    Ok(frame.ack())
}

/// The caller's user sent the live message `seq`, and may still publish
/// to the room (and within the tenant's rate).
async fn check_own_message(frame: &Frame<'_>, room: &RoomId, seq: u64) -> Result<(), RequestError> {
    frame.require_member(room, Right::Publish).await?;
    let message = frame
        .deps
        .streams
        .get_entry(&frame.caller.tenant, room, seq)
        .await
        .map_err(|e| frame.internal("could not read the room's stream", &e))?
        .filter(|m| m.kind == EntryKind::Message && !m.deleted)
        .ok_or_else(|| {
            frame.fail_in(
                room,
                ErrorCode::NotFound,
                format!("room '{room}' has no message {seq} (never stored, expired or deleted)"),
            )
        })?;
    let own =
        matches!(&message.from, Some(Sender::Client { user, .. }) if *user == frame.caller.user);
    if !own {
        return Err(frame.fail_in(
            room,
            ErrorCode::Forbidden,
            format!(
                "message {seq} of room '{room}' was sent by someone else; only its sender may change it"
            ),
        ));
    }
    frame.admit_publish().await
}
