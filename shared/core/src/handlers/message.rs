//! Client messages (`join`, `leave`, `publish`, `ping`, `whoami`,
//! `refresh` and `$default`): admit the frame against the connection's
//! rate, check its token has not expired and its rights on the room,
//! persist, emit, and answer with one reply frame in the route response.
//! Every bad input gets an error frame; nothing here panics. The only
//! connection it closes is one whose token has expired.
//!
//! Store cost per frame (DynamoDB): one UpdateItem on the connection item
//! (the frame-rate gate and heartbeat, which also returns the record: its
//! expiry and capabilities), two when a burst follows a quiet spell; `ping`
//! costs nothing more; plus what the
//! action needs: `join` a COUNT query and two writes, `publish` one read
//! of the membership and one or two writes on the tenant's rate item,
//! `refresh` one write per item of the connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use bytes::Bytes;

use crate::auth::{Right, Rights, TokenVerifier, effective_rights};
use crate::event::{
    BROADCAST, BroadcastEvent, CLIENT_SOURCE, LifecycleEvent, ROOM_JOINED, ROOM_LEFT, Sender,
    Target,
};
use crate::handlers::{Caller, GatewayDeps, emit_lifecycle, proxy_response};
use crate::ids::RoomId;
use crate::limits::record_ttl_secs;
use crate::ports::{BusEntry, BusError, ConnectionRecord, FrameAdmission, publish};
use crate::protocol::{ClientRequest, ErrorCode, RequestError, ServerFrame, parse_request};

/// 200 with one frame in the body (`ack`, `pong`, `whoami`, `refreshed`
/// or `error`); no body when the connection was just closed for an
/// expired token (its last frame was posted before the close).
pub async fn handle(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &GatewayDeps,
) -> ApiGatewayProxyResponse {
    match reply(request, deps).await {
        Ok(Reply::Frame(frame)) => proxy_response(200, Some(frame)),
        Ok(Reply::Closed) => proxy_response(200, None),
        Err(error) => proxy_response(200, Some(error.to_frame())),
    }
}

enum Reply {
    Frame(String),
    /// The connection was closed; there is nobody to answer.
    Closed,
}

async fn reply(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &GatewayDeps,
) -> Result<Reply, RequestError> {
    let body = request.body.as_deref().unwrap_or("");
    let envelope = parse_request(body, deps.settings.max_payload_bytes)?;
    let rid = envelope.request_id;
    let fail = |code, message: String| RequestError::new(rid.clone(), code, message);
    let caller = Caller::from_request(request).map_err(|reason| {
        tracing::error!(%reason, "message without authorizer context");
        fail(ErrorCode::Forbidden, "connection is not authorized".into())
    })?;
    let internal = |what: &str, error: &dyn std::fmt::Display| {
        tracing::error!(%error, connection_id = %caller.id, "{what}");
        fail(ErrorCode::Internal, format!("{what}; try again"))
    };
    let verifier = deps.verifier.as_deref().ok_or_else(|| {
        internal(
            "the message function has no token verifier",
            &"misconfigured",
        )
    })?;
    let now_ms = deps.clock.now_ms();

    let FrameAdmission {
        record,
        retry_after_ms,
    } = deps
        .store
        .admit_frame(&caller.id, now_ms, deps.abuse.client_frames())
        .await
        .map_err(|e| internal("could not read the connection", &e))?
        .ok_or_else(|| {
            fail(
                ErrorCode::Forbidden,
                "connection is not registered; reconnect".into(),
            )
        })?;
    if record.token_expires_at * 1000 <= now_ms {
        return Ok(close_expired(&record, rid.as_deref(), deps).await);
    }
    if record.ttl * 1000 <= now_ms {
        return Err(fail(
            ErrorCode::Forbidden,
            "connection is not registered; reconnect".into(),
        ));
    }
    if let Some(wait) = retry_after_ms {
        return Err(RequestError::rate_limited(
            rid.clone(),
            format!(
                "this connection sends more than {} frames per second; retry after {wait} ms",
                deps.abuse.client_frame_rate
            ),
            wait,
        ));
    }
    let rights_on = |room: &RoomId, granted: Rights| {
        effective_rights(
            record.capabilities.as_ref(),
            verifier.default_policy(),
            granted,
            room,
        )
    };
    let lifecycle = |room| LifecycleEvent {
        tenant: caller.tenant.clone(),
        user: caller.user.clone(),
        connection_id: caller.id.clone(),
        room: Some(room),
        rooms: Vec::new(),
        part: None,
        parts: None,
    };
    let ack = || {
        Reply::Frame(
            ServerFrame::Ack {
                request_id: rid.as_deref(),
            }
            .to_json(),
        )
    };
    match envelope.request {
        ClientRequest::Join { room, grant } => {
            let granted = match grant {
                Some(grant) => check_grant(verifier, &grant, &record, &room, now_ms)
                    .await
                    .map_err(|message| RequestError {
                        room: Some(room.clone()),
                        ..fail(ErrorCode::Forbidden, message)
                    })?,
                None => Rights::NONE,
            };
            if !rights_on(&room, granted).contains(Right::Subscribe) {
                return Err(RequestError::missing_right(
                    rid.clone(),
                    &room,
                    Right::Subscribe,
                ));
            }
            // One COUNT query per join; the membership check only at the cap
            // (joining a room again is idempotent). Concurrent joins from
            // one connection can pass the cap by at most those in flight.
            let max = deps.settings.max_rooms_per_connection;
            let joined = deps
                .store
                .room_count(&caller.id)
                .await
                .map_err(|e| internal("could not join the room", &e))?;
            if joined >= max
                && !deps
                    .store
                    .is_member(&caller.id, &caller.tenant, &room)
                    .await
                    .map_err(|e| internal("could not join the room", &e))?
            {
                return Err(fail(
                    ErrorCode::LimitExceeded,
                    format!(
                        "a connection may be in at most {max} rooms; leave one before joining '{room}'"
                    ),
                ));
            }
            deps.store
                .join_room(&record, &room, granted)
                .await
                .map_err(|e| internal("could not join the room", &e))?;
            emit_lifecycle(deps.bus.as_ref(), ROOM_JOINED, lifecycle(room)).await;
            Ok(ack())
        }
        ClientRequest::Leave { room } => {
            let was_member = deps
                .store
                .leave_room(&caller.id, &caller.tenant, &room)
                .await
                .map_err(|e| internal("could not leave the room", &e))?;
            if was_member {
                emit_lifecycle(deps.bus.as_ref(), ROOM_LEFT, lifecycle(room)).await;
            }
            Ok(ack())
        }
        ClientRequest::WhoAmI => Ok(Reply::Frame(
            ServerFrame::Whoami {
                request_id: rid.as_deref(),
                connection_id: caller.id.as_str(),
                tenant: caller.tenant.as_str(),
                user: caller.user.as_str(),
                expires_at: record.token_expires_at,
            }
            .to_json(),
        )),
        // The admission above recorded the heartbeat.
        ClientRequest::Ping => Ok(Reply::Frame(
            ServerFrame::Pong {
                request_id: rid.as_deref(),
            }
            .to_json(),
        )),
        ClientRequest::Refresh { token } => {
            let verified = verifier
                .verify(&token, now_ms.div_euclid(1000))
                .await
                .map_err(|error| {
                    tracing::info!(connection_id = %caller.id, %error, "refresh token refused");
                    fail(
                        ErrorCode::Forbidden,
                        "the new token was refused (it must be valid, unexpired and from a trusted issuer)".into(),
                    )
                })?;
            if verified.principal.tenant != record.tenant || verified.principal.user != record.user
            {
                return Err(fail(
                    ErrorCode::Forbidden,
                    "a refresh token must be for the connection's own tenant and user".into(),
                ));
            }
            let ttl = record_ttl_secs(
                record.connected_at_ms,
                deps.settings.max_connection_duration,
                verified.expires_at,
            );
            let refreshed = deps
                .store
                .refresh_connection(
                    &caller.id,
                    verified.expires_at,
                    verified.capabilities.as_ref(),
                    ttl,
                )
                .await
                .map_err(|e| internal("could not refresh the token", &e))?;
            if !refreshed {
                return Err(fail(
                    ErrorCode::Forbidden,
                    "connection is not registered; reconnect".into(),
                ));
            }
            Ok(Reply::Frame(
                ServerFrame::Refreshed {
                    request_id: rid.as_deref(),
                    expires_at: verified.expires_at,
                }
                .to_json(),
            ))
        }
        ClientRequest::Publish { room, data } => {
            let granted = deps
                .store
                .membership(&caller.id, &caller.tenant, &room)
                .await
                .map_err(|e| internal("could not check membership", &e))?
                .ok_or_else(|| RequestError {
                    room: Some(room.clone()),
                    ..fail(
                        ErrorCode::NotMember,
                        format!("join room '{room}' before publishing to it"),
                    )
                })?;
            if !rights_on(&room, granted).contains(Right::Publish) {
                return Err(RequestError::missing_right(
                    rid.clone(),
                    &room,
                    Right::Publish,
                ));
            }
            if let Some(rate) = deps.abuse.tenant_publishes()
                && let Some(wait) = deps
                    .store
                    .admit_publish(&caller.tenant, now_ms, rate)
                    .await
                    .map_err(|e| internal("could not publish", &e))?
            {
                return Err(RequestError::rate_limited(
                    rid.clone(),
                    format!(
                        "tenant '{}' publishes more than {} messages per second; retry after {wait} ms",
                        caller.tenant, deps.abuse.tenant_publish_rate
                    ),
                    wait,
                ));
            }
            let event = BroadcastEvent {
                tenant: caller.tenant.clone(),
                target: Target::Room(room),
                data,
                exclude: Vec::new(),
                idempotency_key: None,
                from: Some(Sender::Client {
                    user: caller.user.clone(),
                    connection: caller.id.clone(),
                }),
            };
            let detail = serde_json::to_string(&event)
                .map_err(|e| internal("could not encode the event", &e))?;
            let entry = BusEntry::new(CLIENT_SOURCE, BROADCAST, detail);
            match publish(deps.bus.as_ref(), &[entry]).await {
                Ok(_) => Ok(ack()),
                Err(BusError::Throttled(reason)) => Err(RequestError::rate_limited(
                    rid.clone(),
                    format!("publishing is throttled ({reason}); retry with backoff"),
                    1_000,
                )),
                Err(e) => Err(internal("could not publish", &e)),
            }
        }
    }
}

/// The rights a grant adds on `room`, or why it is refused.
async fn check_grant(
    verifier: &TokenVerifier,
    grant: &str,
    record: &ConnectionRecord,
    room: &RoomId,
    now_ms: i64,
) -> Result<Rights, String> {
    let grant = verifier
        .verify_grant(grant, now_ms.div_euclid(1000))
        .await
        .map_err(|error| {
            tracing::info!(connection_id = %record.id, %room, %error, "room grant refused");
            format!("the grant for room '{room}' was refused ({error})")
        })?;
    if grant.principal.tenant != record.tenant || grant.principal.user != record.user {
        return Err(format!(
            "the grant for room '{room}' is for another user or tenant"
        ));
    }
    if &grant.room != room {
        return Err(format!(
            "the grant is for room '{}', not '{room}'",
            grant.room
        ));
    }
    Ok(grant.rights)
}

/// A connection whose token has expired: its last frame says why, then it
/// is closed (on AWS through @connections DELETE; `$disconnect` then
/// cleans up its records as for any other close).
async fn close_expired(
    record: &ConnectionRecord,
    request_id: Option<&str>,
    deps: &GatewayDeps,
) -> Reply {
    let frame = RequestError::token_expired(request_id.map(str::to_owned)).to_frame();
    let Some(poster) = &deps.poster else {
        return Reply::Frame(frame);
    };
    tracing::info!(connection_id = %record.id, expired_at = record.token_expires_at,
        "closing a connection whose token expired");
    if let Err(error) = poster.post(&record.id, &Bytes::from(frame.clone())).await {
        tracing::debug!(%error, connection_id = %record.id, "could not post the expiry frame");
    }
    match poster.delete(&record.id).await {
        Ok(()) => Reply::Closed,
        Err(error) => {
            tracing::warn!(%error, connection_id = %record.id, "could not close the expired connection");
            Reply::Frame(frame)
        }
    }
}
