//! `$disconnect`: deletes the connection with all its memberships, ends
//! its presence in every room it was in (announcing `presence.left` where
//! it was its user's last connection) and emits `fanout.connection.closed`.
//! API Gateway runs it best-effort; 410s and TTLs clean up after the times
//! it does not.
//!
//! Store cost: the deletion (a query and a batch write), and one
//! conditional UpdateItem per room for presence (a no-op write where the
//! connection was not present).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use crate::event::{CONNECTION_CLOSED, GATEWAY_SOURCE, LifecycleEvent};
use crate::handlers::{GatewayDeps, emit_lifecycle, presence, proxy_response};
use crate::ids::ConnectionId;

pub async fn handle(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &GatewayDeps,
) -> ApiGatewayProxyResponse {
    let Some(id) = request
        .request_context
        .connection_id
        .as_deref()
        .and_then(|id| ConnectionId::new(id).ok())
    else {
        tracing::error!("disconnect without a valid requestContext.connectionId");
        return proxy_response(400, None);
    };
    match deps.store.delete_connection(&id).await {
        Ok(Some(removed)) => {
            let (tenant, user) = (&removed.record.tenant, &removed.record.user);
            for room in &removed.rooms {
                match deps.presence.exit(tenant, room, user, &id).await {
                    Ok(outcome) => {
                        presence::announce(GATEWAY_SOURCE, tenant, room, outcome, deps).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, connection_id = %id, %room,
                            "could not end presence; it ends with its TTL");
                    }
                }
            }
            emit_lifecycle(
                deps.bus.as_ref(),
                CONNECTION_CLOSED,
                LifecycleEvent {
                    tenant: removed.record.tenant,
                    user: removed.record.user,
                    connection_id: id,
                    room: None,
                    rooms: removed.rooms,
                    part: None,
                    parts: None,
                },
            )
            .await;
            proxy_response(200, None)
        }
        // Already removed (a 410 cleanup got there first): nothing to emit.
        Ok(None) => proxy_response(200, None),
        Err(error) => {
            // Memberships stay until a 410 or their TTL removes them.
            tracing::error!(%error, connection_id = %id, "could not delete connection on disconnect");
            proxy_response(500, None)
        }
    }
}
