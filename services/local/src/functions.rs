//! The functions API Gateway invokes for a WebSocket — the `$connect`
//! authorizer and the connect, disconnect and message routes — behind one
//! interface: the library handlers in this process (the default), or the
//! built bootstraps through the Lambda Runtime API (`--lambdas`).

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
};
use fanout_core::auth::TokenVerifier;
use fanout_core::clock::Clock;
use fanout_core::handlers::authorizer::{Unauthorized, authorize};
use fanout_core::handlers::message::MessageDeps;
use fanout_core::handlers::{connect, disconnect, message};

/// Why `$connect` was refused before the connect function ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizerRefusal {
    /// The authorizer answered `Unauthorized`: API Gateway's 401.
    Unauthorized,
    /// The authorizer failed (crash, timeout, bad response): API
    /// Gateway's 500.
    Failed,
}

#[async_trait]
pub trait GatewayFunctions: Send + Sync {
    async fn authorize(
        &self,
        request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerRefusal>;

    /// A failed invocation answers 500, as API Gateway does.
    async fn connect(&self, request: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse;

    async fn disconnect(&self, request: &ApiGatewayWebsocketProxyRequest);

    /// `None` when the invocation failed (API Gateway then sends the
    /// client its "Internal server error" frame).
    async fn message(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> Option<ApiGatewayProxyResponse>;
}

/// The library handlers, called in this process on the stack's clock.
pub struct InProcessFunctions {
    pub verifier: Arc<TokenVerifier>,
    pub allowed_origins: Vec<String>,
    pub deps: MessageDeps,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl GatewayFunctions for InProcessFunctions {
    async fn authorize(
        &self,
        request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerRefusal> {
        let now_secs = self.clock.now_ms().div_euclid(1000);
        authorize(request, &self.verifier, &self.allowed_origins, now_secs)
            .await
            .map_err(|Unauthorized| AuthorizerRefusal::Unauthorized)
    }

    async fn connect(&self, request: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        connect::handle(request, &self.deps.gateway).await
    }

    async fn disconnect(&self, request: &ApiGatewayWebsocketProxyRequest) {
        disconnect::handle(request, &self.deps.gateway).await;
    }

    async fn message(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> Option<ApiGatewayProxyResponse> {
        Some(message::handle(request, &self.deps).await)
    }
}
