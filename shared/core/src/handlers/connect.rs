//! `$connect`: persists the connection from the authorizer context and
//! emits `fanout.connection.opened`. It never posts to the connection (API
//! Gateway answers 410 to posts before the handshake completes).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use crate::event::{CONNECTION_OPENED, LifecycleEvent};
use crate::handlers::{Caller, GatewayDeps, TokenContext, emit_lifecycle, proxy_response};
use crate::ports::StoreError;

/// 200 when the connection is stored; 403 without an authorizer context
/// (misconfiguration); 429 when the user already holds the most
/// connections allowed; 500 when the store fails, which refuses the
/// connection rather than accepting one that no broadcast could find.
pub async fn handle(
    request: &ApiGatewayWebsocketProxyRequest,
    deps: &GatewayDeps,
) -> ApiGatewayProxyResponse {
    let (caller, token) = match Caller::from_request(request)
        .and_then(|c| Ok((c, TokenContext::from_request(request)?)))
    {
        Ok(c) => c,
        Err(reason) => {
            tracing::error!(%reason, "refusing connection: request has no authorizer context");
            return proxy_response(403, None);
        }
    };
    // One query of the user index per $connect (GSI1 on DynamoDB, which is
    // eventually consistent: simultaneous connects can pass the cap by the
    // few in flight).
    let max = deps.settings.max_connections_per_user;
    match user_connection_count(&caller, max, deps).await {
        Ok(open) if open >= max => {
            tracing::warn!(connection_id = %caller.id, tenant = %caller.tenant, user = %caller.user,
                open, max, "refusing connection: the user holds the most connections allowed");
            return proxy_response(429, None);
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(%error, connection_id = %caller.id, "refusing connection: could not count the user's connections");
            return proxy_response(500, None);
        }
    }
    let record = caller.record(token, &deps.settings, deps.clock.now_ms());
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

/// The user's live connections, counted up to `max` (no need to page
/// further once the cap is reached).
async fn user_connection_count(
    caller: &Caller,
    max: usize,
    deps: &GatewayDeps,
) -> Result<usize, StoreError> {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = deps
            .store
            .user_connections_page(&caller.tenant, &caller.user, cursor.as_deref())
            .await?;
        count += page.items.len();
        match page.next {
            Some(next) if count < max => cursor = Some(next),
            _ => return Ok(count),
        }
    }
}
