//! `$disconnect`: deletes the connection's item, and nothing else. The
//! removal is a change record the sweeper reacts to (memberships,
//! presence, `fanout.connection.closed`), exactly as for a connection a
//! 410 or its TTL removed, so a departure is carried out the same way
//! whichever path saw it first, and only once. API Gateway runs
//! `$disconnect` best-effort; the other two paths cover the times it does
//! not.
//!
//! Store cost: one DeleteItem.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use crate::handlers::{GatewayDeps, proxy_response};
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
        Ok(removed) => {
            // Not removed: a 410 cleanup or the TTL got there first, and
            // the sweeper has it.
            tracing::debug!(connection_id = %id, removed, "connection item deleted");
            proxy_response(200, None)
        }
        Err(error) => {
            // The item stays until a 410 or its heartbeat deadline removes
            // it; the sweeper then does the rest.
            tracing::error!(%error, connection_id = %id, "could not delete connection on disconnect");
            proxy_response(500, None)
        }
    }
}
