//! The `$connect` REQUEST authorizer: verifies the `token` query parameter
//! (HS256 JWT) and answers with an IAM policy and a flat context
//! (`tenant`, `user`) that API Gateway passes to every later request.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::json;

use crate::handlers::{CONTEXT_TENANT, CONTEXT_USER};
use crate::token::TokenVerifier;

/// The query parameter that carries the token.
pub const TOKEN_PARAM: &str = "token";

/// Returned when no token was presented. A REQUEST authorizer that fails
/// with exactly "Unauthorized" makes API Gateway answer 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized;

/// Allow with a context on a valid token; Deny (API Gateway answers 403)
/// on an invalid one; [`Unauthorized`] (401) when there is no token.
pub fn authorize(
    request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    verifier: &TokenVerifier,
) -> Result<ApiGatewayCustomAuthorizerResponse, Unauthorized> {
    let token = request
        .query_string_parameters
        .first(TOKEN_PARAM)
        .filter(|t| !t.is_empty())
        .ok_or(Unauthorized)?;
    let resource = request.method_arn.clone().unwrap_or_else(|| "*".into());
    Ok(match verifier.verify(token) {
        Ok(principal) => policy(
            principal.user.as_str(),
            IamPolicyEffect::Allow,
            resource,
            json!({
                CONTEXT_TENANT: principal.tenant.as_str(),
                CONTEXT_USER: principal.user.as_str(),
            }),
        ),
        Err(error) => {
            tracing::info!(%error, "authorizer denied connection");
            policy(
                "anonymous",
                IamPolicyEffect::Deny,
                resource,
                json!({ "reason": error.to_string() }),
            )
        }
    })
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

    fn request(token: Option<&str>) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
        let query = match token {
            Some(t) => json!({ "token": t }),
            None => json!({}),
        };
        serde_json::from_value(json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/local/$connect",
            "headers": {},
            "queryStringParameters": query,
            "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "L0SM9cOFvHcCIhw="}
        }))
        .unwrap()
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

    #[test]
    fn allows_a_valid_token_with_a_flat_context() {
        let now = chrono::Utc::now().timestamp();
        let r = authorize(&request(Some(&token(b"k", now))), &TokenVerifier::new(b"k")).unwrap();
        assert!(is_allowed(&r));
        assert_eq!(r.principal_id.as_deref(), Some("alice"));
        assert_eq!(r.context, json!({"tenant": "acme", "user": "alice"}));
        let text = serde_json::to_value(&r).unwrap();
        assert_eq!(text["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(
            text["policyDocument"]["Statement"][0]["Resource"][0],
            "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/local/$connect"
        );
    }

    #[test]
    fn denies_bad_and_expired_tokens() {
        let now = chrono::Utc::now().timestamp();
        let verifier = TokenVerifier::new(b"k");
        for t in [
            token(b"other", now),
            token(b"k", now - 3_600),
            "x.y.z".to_string(),
        ] {
            let r = authorize(&request(Some(&t)), &verifier).unwrap();
            assert!(!is_allowed(&r));
        }
    }

    #[test]
    fn no_token_is_unauthorized() {
        let verifier = TokenVerifier::new(b"k");
        assert_eq!(authorize(&request(None), &verifier), Err(Unauthorized));
        assert_eq!(authorize(&request(Some("")), &verifier), Err(Unauthorized));
    }
}
