//! `POST /_fanout/dev/token` and `POST /_fanout/dev/grant`: connection
//! tokens and room grants for the demo page and SDK tests, signed with the
//! development secret. They exist only while the stack runs with that
//! (public) secret: with `FANOUT_JWT_SECRET` set they answer 404, so a
//! stack holding a real secret never hands out tokens to whoever asks.
//!
//! Tokens carry the claim names the stack is configured to read
//! (`--tenant-claim`, `--user-claim`, `--capabilities-claim`), and the
//! issuer and first audience when those are checked, so they open a
//! connection whatever those settings are.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use fanout_core::auth::Right;
use fanout_core::ids::{RoomId, TenantId, UserId};
use fanout_core::token::{DEV_JWT_SECRET, TokenSigner};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::state::AppState;

pub const TOKEN_PATH: &str = "/_fanout/dev/token";
pub const GRANT_PATH: &str = "/_fanout/dev/grant";
/// A token's life when the request does not say.
const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(TOKEN_PATH, axum::routing::post(token))
        .route(GRANT_PATH, axum::routing::post(grant))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenRequest {
    tenant: String,
    user: String,
    /// Room patterns to rights, as the capabilities claim holds them.
    capabilities: Option<Value>,
    ttl_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GrantRequest {
    tenant: String,
    user: String,
    room: String,
    rights: Vec<Right>,
    ttl_seconds: Option<u64>,
}

/// Why a request got no token: the status and a message saying why.
type Refusal = (StatusCode, String);

/// The development signer, or the 404 that says why there is none.
fn dev_signer(app: &AppState) -> Result<TokenSigner, Refusal> {
    if app.config.jwt_secret.is_some() {
        return Err((
            StatusCode::NOT_FOUND,
            "development tokens are off: this stack runs with its own secret (FANOUT_JWT_SECRET / --jwt-secret); mint tokens with your own signer".into(),
        ));
    }
    Ok(TokenSigner::new(DEV_JWT_SECRET.as_bytes()))
}

/// A lifetime within (0, --max-token-lifetime].
fn lifetime(app: &AppState, ttl_seconds: Option<u64>) -> Result<Duration, Refusal> {
    let max = app.config.auth.max_token_lifetime;
    let ttl = ttl_seconds.map_or(DEFAULT_TTL.min(max), Duration::from_secs);
    if ttl.is_zero() || ttl > max {
        return Err(bad(format!(
            "ttlSeconds must be between 1 and {} (--max-token-lifetime)",
            max.as_secs()
        )));
    }
    Ok(ttl)
}

fn issued(token: String, expires_at: i64) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "token": token, "expiresAt": expires_at }).to_string(),
    )
        .into_response()
}

/// The signer and the parsed body, or why the request is refused: the
/// development secret check comes first, so a stack with its own secret
/// says so whatever the body.
fn accept<T>(
    app: &AppState,
    body: Result<Json<T>, JsonRejection>,
    expected: &str,
) -> Result<(TokenSigner, T), Refusal> {
    let signer = dev_signer(app)?;
    let Json(request) = body.map_err(|e| bad(format!("{e}; expected {expected}")))?;
    Ok((signer, request))
}

fn bad(message: String) -> Refusal {
    (StatusCode::BAD_REQUEST, message)
}

fn answer(result: Result<Response, Refusal>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn token(
    State(app): State<Arc<AppState>>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Response {
    answer(issue_token(&app, body))
}

async fn grant(
    State(app): State<Arc<AppState>>,
    body: Result<Json<GrantRequest>, JsonRejection>,
) -> Response {
    answer(issue_grant(&app, body))
}

fn issue_token(
    app: &AppState,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<Response, Refusal> {
    let (signer, request) = accept(
        app,
        body,
        r#"{"tenant":…,"user":…[,"capabilities":{…}][,"ttlSeconds":N]}"#,
    )?;
    let tenant = TenantId::new(request.tenant).map_err(|e| bad(format!("tenant: {e}")))?;
    let user = UserId::new(request.user).map_err(|e| bad(format!("user: {e}")))?;
    let ttl = lifetime(app, request.ttl_seconds)?;
    let auth = &app.config.auth;
    let now = app.clock.now_ms() / 1000;
    let exp = now + ttl.as_secs() as i64;
    let mut claims = Map::new();
    if auth.fixed_tenant.is_none() {
        claims.insert(auth.tenant_claim.clone(), tenant.as_str().into());
    }
    claims.insert(auth.user_claim.clone(), user.as_str().into());
    if let Some(capabilities) = request.capabilities {
        claims.insert(auth.capabilities_claim.clone(), capabilities);
    }
    if let Some(issuer) = &auth.token_issuer {
        claims.insert("iss".into(), issuer.as_str().into());
    }
    if let Some(audience) = auth.token_audience.first() {
        claims.insert("aud".into(), audience.as_str().into());
    }
    for (claim, value) in [("iat", now), ("nbf", now), ("exp", exp)] {
        claims.insert(claim.into(), value.into());
    }
    let token = signer
        .sign(&Value::Object(claims))
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(issued(token, exp))
}

fn issue_grant(
    app: &AppState,
    body: Result<Json<GrantRequest>, JsonRejection>,
) -> Result<Response, Refusal> {
    let (signer, request) = accept(
        app,
        body,
        r#"{"tenant":…,"user":…,"room":…,"rights":[…][,"ttlSeconds":N]}"#,
    )?;
    let tenant = TenantId::new(request.tenant).map_err(|e| bad(format!("tenant: {e}")))?;
    let user = UserId::new(request.user).map_err(|e| bad(format!("user: {e}")))?;
    let room = RoomId::new(request.room).map_err(|e| bad(format!("room: {e}")))?;
    let ttl = lifetime(app, request.ttl_seconds)?;
    let now = app.clock.now_ms() / 1000;
    let grant = signer
        .mint_grant(&tenant, &user, &room, &request.rights, now, ttl)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(issued(grant, now + ttl.as_secs() as i64))
}
