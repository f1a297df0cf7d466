//! The `$connect` REQUEST authorizer: checks the Origin against the
//! allow-list, verifies the `token` query parameter (HS256 or a JWKS key)
//! and answers with an IAM policy and a flat context (`tenant`, `user`,
//! `tokenExpiresAt`, `capabilities`) that API Gateway passes to every later
//! request of the connection. Why a connection is refused is logged, never
//! sent: API Gateway answers a bare 401 or 403.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::json;

use crate::auth::TokenVerifier;
use crate::handlers::{
    CONTEXT_CAPABILITIES, CONTEXT_TENANT, CONTEXT_TOKEN_EXPIRES_AT, CONTEXT_USER,
};

/// The query parameter that carries the token.
pub const TOKEN_PARAM: &str = "token";

/// Returned when no token was presented. A REQUEST authorizer that fails
/// with exactly "Unauthorized" makes API Gateway answer 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized;

/// Whether `origin` may connect: any when the allow-list is empty,
/// otherwise only a listed one (a request without an Origin header, which
/// browsers always send, is refused then too).
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    allowed.is_empty()
        || origin.is_some_and(|o| allowed.iter().any(|a| a.trim_end_matches('/') == o))
}

/// Allow with a context on a valid token from an allowed Origin; Deny (API
/// Gateway answers 403) otherwise; [`Unauthorized`] (401) when there is no
/// token.
pub async fn authorize(
    request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    verifier: &TokenVerifier,
    allowed_origins: &[String],
    now_secs: i64,
) -> Result<ApiGatewayCustomAuthorizerResponse, Unauthorized> {
    let resource = request.method_arn.clone().unwrap_or_else(|| "*".into());
    let request_id = request.request_context.request_id.as_deref().unwrap_or("");
    let stage = request.request_context.stage.as_deref().unwrap_or("");
    let origin = request.headers.get("origin").and_then(|v| v.to_str().ok());
    if !origin_allowed(allowed_origins, origin) {
        tracing::info!(
            request_id,
            stage,
            origin = origin.unwrap_or("(none)"),
            "authorizer denied connection: Origin not in the allow-list"
        );
        return Ok(deny(resource));
    }
    let token = request
        .query_string_parameters
        .first(TOKEN_PARAM)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            tracing::info!(request_id, stage, "authorizer refused connection: no token");
            Unauthorized
        })?;
    Ok(match verifier.verify(token, now_secs).await {
        Ok(verified) => {
            let mut context = json!({
                CONTEXT_TENANT: verified.principal.tenant.as_str(),
                CONTEXT_USER: verified.principal.user.as_str(),
                CONTEXT_TOKEN_EXPIRES_AT: verified.expires_at,
            });
            if let Some(caps) = &verified.capabilities {
                context[CONTEXT_CAPABILITIES] = json!(caps.to_json());
            }
            policy(
                verified.principal.user.as_str(),
                IamPolicyEffect::Allow,
                resource,
                context,
            )
        }
        Err(error) => {
            tracing::info!(request_id, stage, %error, "authorizer denied connection");
            deny(resource)
        }
    })
}

fn deny(resource: String) -> ApiGatewayCustomAuthorizerResponse {
    policy("anonymous", IamPolicyEffect::Deny, resource, json!({}))
}

/// Did the authorizer allow the request?
pub fn is_allowed(response: &ApiGatewayCustomAuthorizerResponse) -> bool {
    let statements = &response.policy_document.statement;
    !statements.is_empty()
        && statements
            .iter()
            .all(|s| s.effect == IamPolicyEffect::Allow)
}

fn policy(
    principal: &str,
    effect: IamPolicyEffect,
    resource: String,
    context: serde_json::Value,
) -> ApiGatewayCustomAuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = effect;
    statement.resource = vec![resource];
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".into());
    document.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(principal.into());
    response.policy_document = document;
    response.context = context;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TenantId, UserId};
    use crate::token::TokenSigner;
    use std::time::Duration;

    fn request(
        token: Option<&str>,
        origin: Option<&str>,
    ) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
        let query = match token {
            Some(t) => json!({ "token": t }),
            None => json!({}),
        };
        let headers = match origin {
            Some(o) => json!({ "Origin": o }),
            None => json!({}),
        };
        serde_json::from_value(json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/local/$connect",
            "headers": headers,
            "queryStringParameters": query,
            "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "L0SM9cOFvHcCIhw="}
        }))
        .unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn token(secret: &[u8], now: i64) -> String {
        TokenSigner::new(secret)
            .mint(
                &TenantId::new("acme").unwrap(),
                &UserId::new("alice").unwrap(),
                now,
                Duration::from_secs(60),
            )
            .unwrap()
    }

    #[tokio::test]
    async fn allows_a_valid_token_with_a_flat_context() {
        let now = now();
        let r = authorize(
            &request(Some(&token(b"k", now)), None),
            &TokenVerifier::hs256(b"k"),
            &[],
            now,
        )
        .await
        .unwrap();
        assert!(is_allowed(&r));
        assert_eq!(r.principal_id.as_deref(), Some("alice"));
        assert_eq!(
            r.context,
            json!({"tenant": "acme", "user": "alice", "tokenExpiresAt": now + 60})
        );
        let text = serde_json::to_value(&r).unwrap();
        assert_eq!(text["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(
            text["policyDocument"]["Statement"][0]["Resource"][0],
            "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/local/$connect"
        );
    }

    #[tokio::test]
    async fn denies_bad_and_expired_tokens() {
        let now = now();
        let verifier = TokenVerifier::hs256(b"k");
        for t in [
            token(b"other", now),
            token(b"k", now - 3_600),
            "x.y.z".to_string(),
        ] {
            let r = authorize(&request(Some(&t), None), &verifier, &[], now)
                .await
                .unwrap();
            assert!(!is_allowed(&r));
        }
    }

    #[tokio::test]
    async fn no_token_is_unauthorized() {
        let verifier = TokenVerifier::hs256(b"k");
        assert_eq!(
            authorize(&request(None, None), &verifier, &[], now()).await,
            Err(Unauthorized)
        );
        assert_eq!(
            authorize(&request(Some(""), None), &verifier, &[], now()).await,
            Err(Unauthorized)
        );
    }

    #[tokio::test]
    async fn origins_outside_the_allow_list_are_denied() {
        let now = now();
        let verifier = TokenVerifier::hs256(b"k");
        let allowed = vec!["https://app.example.com".to_string()];
        let t = token(b"k", now);
        let from_app = request(Some(&t), Some("https://app.example.com"));
        let ok = authorize(&from_app, &verifier, &allowed, now)
            .await
            .unwrap();
        assert!(is_allowed(&ok));
        for origin in [Some("https://evil.example"), None] {
            let r = authorize(&request(Some(&t), origin), &verifier, &allowed, now)
                .await
                .unwrap();
            assert!(!is_allowed(&r), "{origin:?}");
        }
        assert!(origin_allowed(&[], None));
    }
}
