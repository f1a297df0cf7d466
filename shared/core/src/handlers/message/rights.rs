//! What the connection may do in a room: its token's capabilities (or the
//! default policy) plus what a membership's grant added.

use crate::auth::{Right, Rights, effective_rights};
use crate::ids::RoomId;
use crate::protocol::{ErrorCode, RequestError};

use super::context::Frame;

impl Frame<'_> {
    /// The connection's rights on `room`, with `granted` from a grant.
    pub fn rights_on(&self, room: &RoomId, granted: Rights) -> Rights {
        effective_rights(
            self.record.capabilities.as_ref(),
            self.deps.verifier.default_policy(),
            granted,
            room,
        )
    }

    pub fn require(&self, rights: Rights, room: &RoomId, right: Right) -> Result<(), RequestError> {
        if rights.contains(right) {
            Ok(())
        } else {
            Err(RequestError::missing_right(
                self.request_id.clone(),
                room,
                right,
            ))
        }
    }

    /// Sending to a room (publish, signal, edits): the connection must be a
    /// member with `right`.
    pub async fn require_member(&self, room: &RoomId, right: Right) -> Result<(), RequestError> {
        let granted = self.membership(room).await?.ok_or_else(|| {
            self.fail_in(
                room,
                ErrorCode::NotMember,
                format!("join room '{room}' before publishing to it"),
            )
        })?;
        self.require(self.rights_on(room, granted), room, right)
    }

    /// Reading a room (history, presence): `right` on it, through the
    /// token or, for a member, a grant.
    pub async fn require_reader(&self, room: &RoomId, right: Right) -> Result<(), RequestError> {
        let granted = self.membership(room).await?.unwrap_or(Rights::NONE);
        self.require(self.rights_on(room, granted), room, right)
    }

    /// The rights the connection's membership of `room` was granted, when
    /// it is a member.
    async fn membership(&self, room: &RoomId) -> Result<Option<Rights>, RequestError> {
        let caller = &self.caller;
        self.deps
            .gateway
            .store
            .membership(&caller.id, &caller.tenant, room)
            .await
            .map_err(|e| self.internal("could not check membership", &e))
    }
}
