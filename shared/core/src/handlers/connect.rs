//! `$connect`: persists the connection from the authorizer context and
//! emits `fanout.connection.opened`. It never posts to the connection (API
//! Gateway answers 410 to posts before the handshake completes).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use crate::event::{CONNECTION_OPENED, LifecycleEvent};
use crate::handlers::{Caller, GatewayDeps, emit_lifecycle, proxy_response};

/// 200 when the connection is stored; 403 without an authorizer context
/// (misconfiguration); 500 when the store fails, which refuses the
/// connection rather than accepting one that no broadcast could find.
pub async fn handle(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &GatewayDeps,
) -> ApiGatewayProxyResponse {
    let caller = match Caller::from_request(request) {
        Ok(c) => c,
        Err(reason) => {
            tracing::error!(%reason, "refusing connection: request has no authorizer context");
            return proxy_response(403, None);
        }
    };
    let record = caller.record(&deps.settings, deps.clock.now_ms());
    if let Err(error) = deps.store.put_connection(&record).await {
        tracing::error!(%error, connection_id = %caller.id, "refusing connection: could not store it");
        return proxy_response(500, None);
    }
    emit_lifecycle(
        deps.bus.as_ref(),
        CONNECTION_OPENED,
        LifecycleEvent {
            tenant: caller.tenant,
            user: caller.user,
            connection_id: caller.id,
            room: None,
            rooms: Vec::new(),
            part: None,
            parts: None,
        },
    )
    .await;
    proxy_response(200, None)
}
