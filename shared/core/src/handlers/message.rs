//! Client messages (`join`, `leave`, `publish`, `ping`, `whoami` and
//! `$default`):
//! validate, persist, emit, and answer with one reply frame in the route
//! response. Every bad input gets an error frame; nothing here panics or
//! closes the connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use crate::event::{
    BROADCAST, BroadcastEvent, CLIENT_SOURCE, LifecycleEvent, ROOM_JOINED, ROOM_LEFT, Target,
};
use crate::handlers::{Caller, GatewayDeps, emit_lifecycle, proxy_response};
use crate::ports::{BusEntry, BusError, publish};
use crate::protocol::{ClientRequest, ErrorCode, RequestError, ServerFrame, parse_request};

/// Always 200 with one frame in the body: `ack`, `pong` or `error`.
pub async fn handle(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &GatewayDeps,
) -> ApiGatewayProxyResponse {
    let frame = match reply(request, deps).await {
        Ok(frame) => frame,
        Err(error) => error.to_frame(),
    };
    proxy_response(200, Some(frame))
}

async fn reply(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &GatewayDeps,
) -> Result<String, RequestError> {
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
    let lifecycle = |room| LifecycleEvent {
        tenant: caller.tenant.clone(),
        user: caller.user.clone(),
        connection_id: caller.id.clone(),
        room: Some(room),
        rooms: Vec::new(),
        part: None,
        parts: None,
    };
    let now_ms = deps.clock.now_ms();
    match envelope.request {
        ClientRequest::Join { room } => {
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
            let record = caller.record(&deps.settings, now_ms);
            deps.store
                .join_room(&record, &room)
                .await
                .map_err(|e| internal("could not join the room", &e))?;
            emit_lifecycle(deps.bus.as_ref(), ROOM_JOINED, lifecycle(room)).await;
            Ok(ServerFrame::Ack {
                request_id: rid.as_deref(),
            }
            .to_json())
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
            Ok(ServerFrame::Ack {
                request_id: rid.as_deref(),
            }
            .to_json())
        }
        ClientRequest::WhoAmI => Ok(ServerFrame::Whoami {
            request_id: rid.as_deref(),
            connection_id: caller.id.as_str(),
            tenant: caller.tenant.as_str(),
            user: caller.user.as_str(),
        }
        .to_json()),
        ClientRequest::Ping => {
            let known = deps
                .store
                .touch_connection(&caller.id, now_ms)
                .await
                .map_err(|e| internal("could not record the heartbeat", &e))?;
            if !known {
                return Err(fail(
                    ErrorCode::Forbidden,
                    "connection is not registered; reconnect".into(),
                ));
            }
            Ok(ServerFrame::Pong {
                request_id: rid.as_deref(),
            }
            .to_json())
        }
        ClientRequest::Publish { room, data } => {
            let member = deps
                .store
                .is_member(&caller.id, &caller.tenant, &room)
                .await
                .map_err(|e| internal("could not check membership", &e))?;
            if !member {
                return Err(fail(
                    ErrorCode::NotMember,
                    format!("join room '{room}' before publishing to it"),
                ));
            }
            let event = BroadcastEvent {
                tenant: caller.tenant.clone(),
                target: Target::Room(room),
                data,
                exclude: Vec::new(),
                idempotency_key: None,
            };
            let detail = serde_json::to_string(&event)
                .map_err(|e| internal("could not encode the event", &e))?;
            let entry = BusEntry::new(CLIENT_SOURCE, BROADCAST, detail);
            match publish(deps.bus.as_ref(), &[entry]).await {
                Ok(_) => Ok(ServerFrame::Ack {
                    request_id: rid.as_deref(),
                }
                .to_json()),
                Err(BusError::Throttled(reason)) => Err(fail(
                    ErrorCode::RateLimited,
                    format!("publishing is throttled ({reason}); retry with backoff"),
                )),
                Err(e) => Err(internal("could not publish", &e)),
            }
        }
    }
}
