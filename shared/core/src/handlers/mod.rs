//! The functions, as library code. Each takes the event type the real
//! Lambda receives (from `aws_lambda_events`) and only the ports it needs;
//! the Lambda binaries and the local stack both call these.
//!
//! Architecture invariant: connect, disconnect and message never fan out.
//! They persist state and emit events; the planner and broadcaster deliver.

pub mod authorizer;
pub mod broadcaster;
pub mod connect;
pub mod disconnect;
pub mod message;
pub mod planner;
pub mod presence;
pub mod sweeper;

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::sqs::SqsMessage;

use crate::auth::Capabilities;
use crate::clock::Clock;
use crate::ids::{ConnectionId, TenantId, UserId};
use crate::limits::{connection_ttl_secs, record_ttl_secs};
use crate::plan::{DEAD_LETTER_DETAIL, DEAD_LETTER_EVENT_ID, DEAD_LETTER_REASON};
use crate::ports::{
    BusEntry, ConnectionRecord, ConnectionStore, EventBus, OutgoingMessage, PresenceStore, Queue,
    QueueError, publish, send_all,
};
pub use crate::settings::{AbuseSettings, GatewaySettings, PresenceSettings, StreamSettings};

/// Keys of the authorizer context (flat, as API Gateway requires).
pub const CONTEXT_TENANT: &str = "tenant";
pub const CONTEXT_USER: &str = "user";
/// The token's `exp`, seconds since the epoch.
pub const CONTEXT_TOKEN_EXPIRES_AT: &str = "tokenExpiresAt";
/// The token's capabilities as compact JSON; absent when it had none.
pub const CONTEXT_CAPABILITIES: &str = "capabilities";

/// What connect, disconnect, the sweeper and presence notices need; the
/// message function adds its own ([`message::MessageDeps`]).
#[derive(Clone)]
pub struct GatewayDeps {
    pub store: Arc<dyn ConnectionStore>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub settings: GatewaySettings,
    /// Presence, for `join` with `presence`, `leave`, `presence.update`,
    /// `presence` and the departures `$disconnect` announces.
    pub presence: Arc<dyn PresenceStore>,
    pub presence_settings: PresenceSettings,
}

/// Who is behind a WebSocket request, from `requestContext`.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub id: ConnectionId,
    pub tenant: TenantId,
    pub user: UserId,
    pub connected_at_ms: i64,
}

/// What is wrong with a request's `requestContext`: the API is
/// misconfigured (no authorizer, or one that sets other context keys).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("requestContext.{0} is missing")]
    Missing(String),
    #[error("requestContext.{field}: {source}")]
    Invalid {
        field: String,
        #[source]
        source: crate::ids::IdError,
    },
    #[error("requestContext.authorizer.{CONTEXT_CAPABILITIES}: {0}")]
    Capabilities(String),
}

/// What the authorizer learned from the token, which `$connect` stores
/// with the connection. Later requests read it from the store instead,
/// where `refresh` may have replaced it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenContext {
    pub expires_at: Option<i64>,
    pub capabilities: Option<Capabilities>,
}

impl TokenContext {
    pub fn from_request(req: &ApiGatewayWebsocketProxyRequest) -> Result<Self, ContextError> {
        let fields = &req.request_context.authorizer.fields;
        // API Gateway may hand context numbers over as strings.
        let expires_at = match fields.get(CONTEXT_TOKEN_EXPIRES_AT) {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let capabilities = match fields.get(CONTEXT_CAPABILITIES) {
            Some(serde_json::Value::String(text)) => {
                Some(Capabilities::from_json(text).map_err(ContextError::Capabilities)?)
            }
            _ => None,
        };
        Ok(Self {
            expires_at,
            capabilities,
        })
    }
}

impl Caller {
    /// Reads the connection id and the authorizer context. `Err` names what
    /// is missing; it means the API is misconfigured (no authorizer).
    pub fn from_request(req: &ApiGatewayWebsocketProxyRequest) -> Result<Self, ContextError> {
        let ctx = &req.request_context;
        let invalid = |field: &str| {
            let field = field.to_owned();
            move |source| ContextError::Invalid { field, source }
        };
        let id = ctx
            .connection_id
            .as_deref()
            .ok_or_else(|| ContextError::Missing("connectionId".into()))?;
        let id = ConnectionId::new(id).map_err(invalid("connectionId"))?;
        let field = |key: &str| -> Result<String, ContextError> {
            ctx.authorizer
                .fields
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| ContextError::Missing(format!("authorizer.{key}")))
        };
        let tenant = field(CONTEXT_TENANT)?;
        let user = field(CONTEXT_USER)?;
        Ok(Self {
            id,
            tenant: TenantId::new(tenant).map_err(invalid("authorizer.tenant"))?,
            user: UserId::new(user).map_err(invalid("authorizer.user"))?,
            connected_at_ms: ctx.connected_at,
        })
    }

    /// The record `$connect` stores (a token without `exp` cannot pass the
    /// authorizer; without one in the context the connection's longest
    /// life stands in).
    pub fn record(
        &self,
        token: TokenContext,
        settings: &GatewaySettings,
        now_ms: i64,
    ) -> ConnectionRecord {
        let max = settings.max_connection_duration;
        let token_expires_at = token
            .expires_at
            .unwrap_or_else(|| connection_ttl_secs(self.connected_at_ms, max));
        ConnectionRecord {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            user: self.user.clone(),
            connected_at_ms: self.connected_at_ms,
            last_seen_ms: now_ms,
            ttl: record_ttl_secs(self.connected_at_ms, max, token_expires_at),
            idle_until: settings.idle_until(now_ms),
            token_expires_at,
            capabilities: token.capabilities,
        }
    }
}

/// An integration response with a status and an optional body.
pub fn proxy_response(status: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = body.map(Body::Text);
    response
}

/// Emits a lifecycle event, split into parts when its rooms would not fit
/// one bus entry. These are informational (presence, audit): a failure is
/// logged with its reason and does not fail the request.
pub(crate) async fn emit_lifecycle(
    bus: &dyn EventBus,
    detail_type: &str,
    detail: crate::event::LifecycleEvent,
) {
    let connection_id = detail.connection_id.clone();
    let mut entries = Vec::new();
    for part in detail.into_parts() {
        match serde_json::to_string(&part) {
            Ok(d) => entries.push(BusEntry::new(crate::event::GATEWAY_SOURCE, detail_type, d)),
            Err(error) => {
                tracing::error!(%error, detail_type, "could not serialize lifecycle event");
                return;
            }
        }
    }
    if let Err(error) = publish(bus, &entries).await {
        tracing::error!(%error, detail_type, connection_id = %connection_id, "lifecycle event not emitted");
    }
}

/// Sends a record that retrying cannot fix to a dead-letter queue at once,
/// with why (`FANOUT_REASON`, `FANOUT_DETAIL`) and, when known, the event id
/// (`FANOUT_EVENT_ID`), so on-call sees the cause without the logs.
pub(crate) async fn dead_letter_at_once(
    queue: &dyn Queue,
    record: &SqsMessage,
    reason: &str,
    detail: &str,
    event_id: Option<&str>,
) -> Result<(), QueueError> {
    let mut message = OutgoingMessage::new("0", record.body.clone().unwrap_or_default());
    let attributes = &mut message.attributes;
    attributes.insert(DEAD_LETTER_REASON.into(), reason.into());
    attributes.insert(DEAD_LETTER_DETAIL.into(), detail.into());
    if let Some(id) = event_id {
        attributes.insert(DEAD_LETTER_EVENT_ID.into(), id.into());
    }
    send_all(queue, &[message]).await
}
