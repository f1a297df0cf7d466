//! Client messages: the actions of [`crate::protocol::ACTIONS`] and
//! `$default`. Each frame is admitted against the connection's rate, its
//! token's expiry and its registration ([`admit`]); then the action's own
//! module checks its rights on the room, persists, emits, and answers with
//! one reply frame in the route response (a `join` with `since` posts the
//! replay before it). Every bad input gets an error frame; nothing here
//! panics. The only connection it closes is one whose token has expired
//! ([`expiry`]).
//!
//! Store cost per frame (DynamoDB): one UpdateItem on the connection item
//! (the frame-rate gate and heartbeat, which also returns the record: its
//! expiry and capabilities), two when a burst follows a quiet spell; `ping`
//! costs nothing more; plus what the action needs: `join` a COUNT query,
//! two writes and a read of the room's head (with `since`, one query of
//! the stream and one @connections POST per 128 KB replayed); `publish`
//! one read of the membership and one or two writes on the tenant's rate
//! item; `signal` the membership read and one or two writes on the
//! connection's signal-rate item; `update`/`delete` those of `publish` plus
//! a read of the message; `history`
//! a read of the membership and the head and one query; presence (on
//! `join` with `presence`, `leave`, `presence.update`) one conditional
//! update of the user's presence item, one more on the room's count when
//! the user joins or leaves, and one PutEvents for the notice; `presence`
//! a read of the membership, one query and a read of the count; `refresh` one
//! write per item of the connection.

mod admit;
mod connection;
mod context;
mod edit;
mod expiry;
mod history;
mod join;
mod leave;
mod presence;
mod rights;
mod send;

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use crate::auth::TokenVerifier;
use crate::handlers::{AbuseSettings, GatewayDeps, StreamSettings, proxy_response};
use crate::ports::{ConnectionPoster, RoomStreams};
use crate::protocol::{ClientRequest, RequestError, parse_request};

use context::{Frame, Reply};

/// What the message function needs beyond connect's and disconnect's.
#[derive(Clone)]
pub struct MessageDeps {
    pub gateway: GatewayDeps,
    /// Verifies `refresh` tokens and room grants, and holds the default
    /// policy.
    pub verifier: Arc<TokenVerifier>,
    /// Closes connections whose token expired and posts replays.
    pub poster: Arc<dyn ConnectionPoster>,
    /// Room streams, for `history`, `join` with `since`, and checking
    /// `update`/`delete` against the stored message.
    pub streams: Arc<dyn RoomStreams>,
    pub stream: StreamSettings,
    pub abuse: AbuseSettings,
}

/// 200 with one frame in the body (`ack`, `pong`, `whoami`, `refreshed`
/// or `error`); no body when the connection was just closed for an
/// expired token (its last frame was posted before the close).
pub async fn handle(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &MessageDeps,
) -> ApiGatewayProxyResponse {
    match reply(request, deps).await {
        Ok(Reply::Frame(frame)) => proxy_response(200, Some(frame)),
        Ok(Reply::Closed) => proxy_response(200, None),
        Err(error) => proxy_response(200, Some(error.to_frame())),
    }
}

async fn reply(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &MessageDeps,
) -> Result<Reply, RequestError> {
    let body = request.body.as_deref().unwrap_or("");
    let envelope = parse_request(body, deps.gateway.settings.max_payload_bytes)?;
    let frame = match admit::admit(request, envelope.request_id, deps).await? {
        admit::Admission::Admitted(frame) => frame,
        admit::Admission::Closed(reply) => return Ok(reply),
    };
    dispatch(&frame, envelope.request).await
}

/// The action's own handler.
async fn dispatch(frame: &Frame<'_>, request: ClientRequest) -> Result<Reply, RequestError> {
    match request {
        ClientRequest::Join(join) => join::join(frame, join).await,
        ClientRequest::Leave(leave) => leave::leave(frame, leave).await,
        ClientRequest::Publish(publish) => send::publish(frame, publish).await,
        ClientRequest::Signal(signal) => send::signal(frame, signal).await,
        ClientRequest::Update(update) => edit::update(frame, update).await,
        ClientRequest::Delete(delete) => edit::delete(frame, delete).await,
        ClientRequest::History(history) => history::history(frame, history).await,
        ClientRequest::Presence(page) => presence::page(frame, page).await,
        ClientRequest::PresenceUpdate(update) => presence::update(frame, update).await,
        ClientRequest::Ping(_) => Ok(connection::pong(frame)),
        ClientRequest::WhoAmI(_) => Ok(connection::whoami(frame)),
        ClientRequest::Refresh(refresh) => connection::refresh(frame, refresh).await,
    }
}
