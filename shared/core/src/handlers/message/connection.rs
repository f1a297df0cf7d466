//! About the connection itself: `ping` (the admission recorded the
//! heartbeat), `whoami`, and `refresh` onto a new token.

use crate::auth::{Capabilities, Right, Rights, effective_rights};
use crate::limits::record_ttl_secs;
use crate::protocol::{ErrorCode, Refresh, RequestError, ServerFrame};

use super::context::{Frame, Reply};
use super::leave::{end_membership, end_presence};

pub(super) fn pong(frame: &Frame<'_>) -> Reply {
    frame.reply(ServerFrame::Pong {
        request_id: frame.request_id(),
    })
}

pub(super) fn whoami(frame: &Frame<'_>) -> Reply {
    let caller = &frame.caller;
    frame.reply(ServerFrame::Whoami {
        request_id: frame.request_id(),
        connection_id: caller.id.as_str(),
        tenant: caller.tenant.as_str(),
        user: caller.user.as_str(),
        expires_at: frame.record.token_expires_at,
    })
}

/// The new token must verify and be for the same tenant and user; the
/// connection's items then carry its expiry and capabilities, and what
/// the new capabilities no longer allow ends (see [`end_revoked`]).
/// Costs one Query of the connection's rooms and one read per room on top
/// of the writes, plus a leave per room it ends.
pub(super) async fn refresh(frame: &Frame<'_>, request: Refresh) -> Result<Reply, RequestError> {
    let (caller, record) = (&frame.caller, &frame.record);
    let verified = frame
        .deps
        .verifier
        .verify(&request.token, frame.now_ms.div_euclid(1000))
        .await
        .map_err(|error| {
            tracing::info!(connection_id = %caller.id, %error, "refresh token refused");
            frame.fail(
                ErrorCode::Forbidden,
                "the new token was refused (it must be valid, unexpired and from a trusted issuer)",
            )
        })?;
    if verified.principal.tenant != record.tenant || verified.principal.user != record.user {
        return Err(frame.fail(
            ErrorCode::Forbidden,
            "a refresh token must be for the connection's own tenant and user",
        ));
    }
    end_revoked(frame, verified.capabilities.as_ref()).await?;
    let gateway = &frame.deps.gateway;
    let ttl = record_ttl_secs(
        record.connected_at_ms,
        gateway.settings.max_connection_duration,
        verified.expires_at,
    );
    let refreshed = gateway
        .store
        .refresh_connection(
            &caller.id,
            verified.expires_at,
            verified.capabilities.as_ref(),
            ttl,
        )
        .await
        .map_err(|e| frame.internal("could not refresh the token", &e))?;
    if !refreshed {
        return Err(frame.not_registered());
    }
    Ok(frame.reply(ServerFrame::Refreshed {
        request_id: frame.request_id(),
        expires_at: verified.expires_at,
    }))
}

/// Ends every membership whose room the new capabilities (with the
/// membership's grant) no longer let the connection subscribe to, and
/// every presence they no longer allow, before the refresh extends the
/// connection's items.
async fn end_revoked(
    frame: &Frame<'_>,
    capabilities: Option<&Capabilities>,
) -> Result<(), RequestError> {
    let store = frame.deps.gateway.store.as_ref();
    let caller = &frame.caller;
    let failed = |e: &dyn std::fmt::Display| frame.internal("could not refresh the token", e);
    let rooms = store
        .connection_rooms(&caller.id)
        .await
        .map_err(|e| failed(&e))?;
    for room in rooms {
        let Some(granted) = store
            .membership(&caller.id, &caller.tenant, &room)
            .await
            .map_err(|e| failed(&e))?
        else {
            continue;
        };
        let policy = frame.deps.verifier.default_policy();
        let rights: Rights = effective_rights(capabilities, policy, granted, &room);
        if !rights.contains(Right::Subscribe) {
            end_membership(frame, &room).await?;
        } else if !rights.contains(Right::Presence) {
            end_presence(frame, &room).await?;
        }
    }
    Ok(())
}
