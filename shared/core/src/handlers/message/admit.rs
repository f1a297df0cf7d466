//! Admitting a frame: the caller from the authorizer's context, and one
//! conditional write on the connection item that counts the frame against
//! the connection's rate, records the heartbeat and returns the record.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

use crate::handlers::Caller;
use crate::ports::FrameAdmission;
use crate::protocol::{ErrorCode, RequestError};

use super::MessageDeps;
use super::context::{Frame, Reply, internal, not_registered, over_rate};
use super::expiry;

pub(super) enum Admission<'a> {
    Admitted(Frame<'a>),
    /// The token had expired: the connection was closed (or told so).
    Closed(Reply),
}

pub(super) async fn admit<'a>(
    request: &ApiGatewayWebsocketProxyRequest,
    request_id: Option<String>,
    deps: &'a MessageDeps,
) -> Result<Admission<'a>, RequestError> {
    let caller = Caller::from_request(request).map_err(|reason| {
        tracing::error!(%reason, "message without authorizer context");
        RequestError::new(
            request_id.clone(),
            ErrorCode::Forbidden,
            "connection is not authorized",
        )
    })?;
    let gateway = &deps.gateway;
    let now_ms = gateway.clock.now_ms();
    let FrameAdmission {
        record,
        retry_after_ms,
    } = gateway
        .store
        .admit_frame(
            &caller.id,
            now_ms,
            deps.abuse.client_frames(),
            gateway.settings.idle_until(now_ms),
        )
        .await
        .map_err(|e| {
            internal(
                request_id.clone(),
                &caller,
                "could not read the connection",
                &e,
            )
        })?
        .ok_or_else(|| not_registered(request_id.clone()))?;
    if record.token_expires_at * 1000 <= now_ms {
        let reply = expiry::close_expired(&record, request_id.as_deref(), deps).await;
        return Ok(Admission::Closed(reply));
    }
    if record.ttl * 1000 <= now_ms {
        return Err(not_registered(request_id));
    }
    if let Some(wait) = retry_after_ms {
        let limit = format!(
            "this connection sends more than {} frames per second",
            deps.abuse.client_frame_rate
        );
        return Err(over_rate(request_id, limit, wait));
    }
    Ok(Admission::Admitted(Frame {
        caller,
        record,
        request_id,
        now_ms,
        deps,
    }))
}
