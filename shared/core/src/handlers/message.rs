//! Client messages (`join`, `leave`, `publish`, `signal`, `history`,
//! `update`, `delete`, `presence`, `presence.update`, `ping`, `whoami`,
//! `refresh` and `$default`): admit the frame
//! against the connection's rate, check its token has not expired and its
//! rights on the room, persist, emit, and answer with one reply frame in
//! the route response (a `join` with `since` posts the replay before it).
//! Every bad input gets an error frame; nothing here panics. The only
//! connection it closes is one whose token has expired.
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

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use bytes::Bytes;

use crate::auth::{Right, Rights, TokenVerifier, effective_rights};
use crate::event::{
    BROADCAST, BroadcastEvent, CLIENT_SOURCE, LifecycleEvent, ROOM_JOINED, ROOM_LEFT, Sender,
};
use crate::handlers::{Caller, GatewayDeps, emit_lifecycle, presence, proxy_response};
use crate::ids::ConnectionId;
use crate::ids::RoomId;
use crate::limits::{connection_ttl_secs, record_ttl_secs};
use crate::ports::{
    BusEntry, BusError, ConnectionRecord, EntryKind, FrameAdmission, PresenceChange, StoreError,
    publish,
};
use crate::protocol::{ClientRequest, ErrorCode, RequestError, ServerFrame, parse_request};
use crate::stream::{self, Replay};
use serde_json::value::RawValue;

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
    let over_rate = |limit: String, wait: i64| {
        RequestError::rate_limited(rid.clone(), format!("{limit}; retry after {wait} ms"), wait)
    };
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
        .admit_frame(
            &caller.id,
            now_ms,
            deps.abuse.client_frames(),
            deps.settings.idle_until(now_ms),
        )
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
        return Err(over_rate(
            format!(
                "this connection sends more than {} frames per second",
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
    let sender = || Sender::Client {
        user: caller.user.clone(),
        connection: caller.id.clone(),
    };
    let require = |rights: Rights, room: &RoomId, right: Right| {
        if rights.contains(right) {
            Ok(())
        } else {
            Err(RequestError::missing_right(rid.clone(), room, right))
        }
    };
    // Sending to a room (publish, signal, edits): the connection must be a
    // member with `right`.
    let require_member = async |room: &RoomId, right: Right| -> Result<(), RequestError> {
        let granted = deps
            .store
            .membership(&caller.id, &caller.tenant, room)
            .await
            .map_err(|e| internal("could not check membership", &e))?
            .ok_or_else(|| RequestError {
                room: Some(room.clone()),
                ..fail(
                    ErrorCode::NotMember,
                    format!("join room '{room}' before publishing to it"),
                )
            })?;
        require(rights_on(room, granted), room, right)
    };
    // Reading a room (history, presence): `right` on it, through the
    // token or, for a member, a grant.
    let require_reader = async |room: &RoomId, right: Right| -> Result<(), RequestError> {
        let granted = deps
            .store
            .membership(&caller.id, &caller.tenant, room)
            .await
            .map_err(|e| internal("could not check membership", &e))?
            .unwrap_or(Rights::NONE);
        require(rights_on(room, granted), room, right)
    };
    // Publishes, updates and deletes count against the tenant's rate.
    let admit_publish = async || -> Result<(), RequestError> {
        if let Some(rate) = deps.abuse.tenant_publishes()
            && let Some(wait) = deps
                .store
                .admit_publish(&caller.tenant, now_ms, rate)
                .await
                .map_err(|e| internal("could not publish", &e))?
        {
            return Err(over_rate(
                format!(
                    "tenant '{}' publishes more than {} messages per second",
                    caller.tenant, deps.abuse.tenant_publish_rate
                ),
                wait,
            ));
        }
        Ok(())
    };
    // `update` and `delete`: the caller's user sent the live message, and
    // may still publish to the room.
    let check_own_message = async |room: &RoomId, seq: u64| -> Result<(), RequestError> {
        require_member(room, Right::Publish).await?;
        let message = deps
            .streams
            .get_entry(&caller.tenant, room, seq)
            .await
            .map_err(|e| internal("could not read the room's stream", &e))?
            .filter(|m| m.kind == EntryKind::Message && !m.deleted)
            .ok_or_else(|| RequestError {
                room: Some(room.clone()),
                ..fail(
                    ErrorCode::NotFound,
                    format!(
                        "room '{room}' has no message {seq} (never stored, expired or deleted)"
                    ),
                )
            })?;
        let own =
            matches!(&message.from, Some(Sender::Client { user, .. }) if *user == caller.user);
        if !own {
            return Err(RequestError {
                room: Some(room.clone()),
                ..fail(
                    ErrorCode::Forbidden,
                    format!(
                        "message {seq} of room '{room}' was sent by someone else; only its sender may change it"
                    ),
                )
            });
        }
        admit_publish().await
    };
    let emit_broadcast = async |event: &BroadcastEvent| -> Result<(), RequestError> {
        let detail =
            serde_json::to_string(event).map_err(|e| internal("could not encode the event", &e))?;
        let entry = BusEntry::new(CLIENT_SOURCE, BROADCAST, detail);
        match publish(deps.bus.as_ref(), &[entry]).await {
            Ok(_) => Ok(()),
            Err(BusError::Throttled(reason)) => Err(RequestError::rate_limited(
                rid.clone(),
                format!("publishing is throttled ({reason}); retry with backoff"),
                1_000,
            )),
            Err(e) => Err(internal("could not publish", &e)),
        }
    };
    match envelope.request {
        ClientRequest::Join {
            room,
            grant,
            since,
            presence,
        } => {
            let granted = match grant {
                Some(grant) => check_grant(verifier, &grant, &record, &room, now_ms)
                    .await
                    .map_err(|message| RequestError {
                        room: Some(room.clone()),
                        ..fail(ErrorCode::Forbidden, message)
                    })?,
                None => Rights::NONE,
            };
            let rights = rights_on(&room, granted);
            require(rights, &room, Right::Subscribe)?;
            if presence.is_some() {
                require(rights, &room, Right::Presence)?;
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
            emit_lifecycle(deps.bus.as_ref(), ROOM_JOINED, lifecycle(room.clone())).await;
            if let Some(state) = presence {
                let outcome = deps
                    .presence
                    .enter(
                        &caller.tenant,
                        &room,
                        &caller.user,
                        &caller.id,
                        state.as_deref(),
                        // Its longest life, not the token's expiry: a
                        // `refresh` moves the token on without touching
                        // presence, and an expired token closes the
                        // connection, which ends its presence.
                        connection_ttl_secs(
                            record.connected_at_ms,
                            deps.settings.max_connection_duration,
                        ),
                    )
                    .await
                    .map_err(|e| internal("could not enter the room's presence", &e))?;
                presence::announce(CLIENT_SOURCE, &caller.tenant, &room, outcome, deps).await;
            }
            // The membership is stored: whatever the stream reads now, an
            // event stored later finds the member when it is planned.
            let joined = |seq, recovered, oldest| {
                Reply::Frame(
                    ServerFrame::Joined {
                        request_id: rid.as_deref(),
                        room: room.as_str(),
                        seq,
                        recovered,
                        oldest,
                    }
                    .to_json(),
                )
            };
            let streams = deps.streams.as_ref();
            let Some(since) = since else {
                let head = streams
                    .head(&caller.tenant, &room)
                    .await
                    .map_err(|e| internal("could not read the room's stream", &e))?;
                return Ok(joined(head, None, None));
            };
            let replay = stream::replay(streams, &deps.stream, &caller.tenant, &room, since)
                .await
                .map_err(|e| internal("could not read the room's stream", &e))?;
            post_replay(&caller.id, &room, &replay, deps)
                .await
                .map_err(|e| internal("could not replay the room's stream", &e))?;
            Ok(joined(replay.head, Some(replay.recovered), replay.oldest))
        }
        ClientRequest::Leave { room } => {
            let was_member = deps
                .store
                .leave_room(&caller.id, &caller.tenant, &room)
                .await
                .map_err(|e| internal("could not leave the room", &e))?;
            if was_member {
                // Leaving ends this connection's presence, if it had one
                // (only members can be present).
                let outcome = deps
                    .presence
                    .exit(&caller.tenant, &room, &caller.user, &caller.id)
                    .await
                    .map_err(|e| internal("could not leave the room's presence", &e))?;
                presence::announce(CLIENT_SOURCE, &caller.tenant, &room, outcome, deps).await;
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
            require_member(&room, Right::Publish).await?;
            admit_publish().await?;
            let event = BroadcastEvent {
                from: Some(sender()),
                ..BroadcastEvent::to_room(caller.tenant.clone(), room, data)
            };
            emit_broadcast(&event).await?;
            Ok(ack())
        }
        ClientRequest::Signal { room, data } => {
            require_member(&room, Right::Signal).await?;
            if let Some(rate) = deps.abuse.client_signals()
                && let Some(wait) = deps
                    .store
                    .admit_signal(&caller.id, now_ms, rate)
                    .await
                    .map_err(|e| internal("could not send the signal", &e))?
            {
                return Err(over_rate(
                    format!(
                        "this connection sends more than {} signals per second",
                        deps.abuse.client_signal_rate
                    ),
                    wait,
                ));
            }
            // Never stored, never back to the sender.
            let event = BroadcastEvent {
                from: Some(sender()),
                signal: true,
                stream: false,
                exclude: vec![caller.id.clone()],
                ..BroadcastEvent::to_room(caller.tenant.clone(), room, data)
            };
            emit_broadcast(&event).await?;
            Ok(ack())
        }
        ClientRequest::PresenceUpdate { room, state } => {
            let outcome = deps
                .presence
                .set_state(&caller.tenant, &room, &caller.user, &caller.id, &state)
                .await
                .map_err(|e| internal("could not update the presence state", &e))?;
            if matches!(outcome.change, PresenceChange::Unchanged) {
                return Err(RequestError {
                    room: Some(room.clone()),
                    ..fail(
                        ErrorCode::NotMember,
                        format!(
                            "join room '{room}' with \"presence\": true before updating your presence"
                        ),
                    )
                });
            }
            presence::announce(CLIENT_SOURCE, &caller.tenant, &room, outcome, deps).await;
            Ok(ack())
        }
        ClientRequest::Presence {
            room,
            cursor,
            limit,
        } => {
            require_reader(&room, Right::Presence).await?;
            let limit = limit
                .unwrap_or(presence::PAGE_SIZE)
                .clamp(1, presence::PAGE_SIZE);
            let page = deps
                .presence
                .presence_page(&caller.tenant, &room, cursor.as_deref(), limit)
                .await
                .map_err(|e| match e {
                    StoreError::BadCursor => fail(
                        ErrorCode::BadRequest,
                        "cursor must be the one a presence reply gave".into(),
                    ),
                    e => internal("could not read the room's presence", &e),
                })?;
            let count = deps
                .presence
                .presence_count(&caller.tenant, &room)
                .await
                .map_err(|e| internal("could not read the room's presence", &e))?;
            Ok(Reply::Frame(presence::page_frame(
                rid.as_deref(),
                &room,
                &page,
                count,
            )))
        }
        ClientRequest::History { room, range, limit } => {
            require_reader(&room, Right::History).await?;
            let page = stream::history(
                deps.streams.as_ref(),
                &deps.stream,
                &caller.tenant,
                &room,
                range,
                limit,
            )
            .await
            .map_err(|e| internal("could not read the room's history", &e))?;
            Ok(Reply::Frame(stream::history_frame(
                rid.as_deref(),
                &room,
                &page,
            )))
        }
        ClientRequest::Update { room, seq, data } => {
            check_own_message(&room, seq).await?;
            let event = BroadcastEvent {
                from: Some(sender()),
                update: Some(seq),
                ..BroadcastEvent::to_room(caller.tenant.clone(), room, data)
            };
            emit_broadcast(&event).await?;
            Ok(ack())
        }
        ClientRequest::Delete { room, seq } => {
            check_own_message(&room, seq).await?;
            let null = RawValue::NULL.to_owned();
            let event = BroadcastEvent {
                from: Some(sender()),
                delete: Some(seq),
                ..BroadcastEvent::to_room(caller.tenant.clone(), room, null)
            };
            emit_broadcast(&event).await?;
            Ok(ack())
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

/// Posts a replay's frames to the joining connection, in order, before
/// the `joined` reply goes out: one @connections POST per 128 KB of
/// events.
async fn post_replay(
    id: &ConnectionId,
    room: &RoomId,
    replay: &Replay,
    deps: &GatewayDeps,
) -> Result<(), String> {
    if replay.entries.is_empty() {
        return Ok(());
    }
    let poster = deps
        .poster
        .as_ref()
        .ok_or("the message function has no @connections client")?;
    for frame in stream::replay_frames(room, &replay.entries) {
        poster
            .post(id, &Bytes::from(frame))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
