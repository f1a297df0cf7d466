//! The stack's callers of the bootstraps: API Gateway's (the authorizer
//! and the route functions) and the mappings' (SQS and the table's
//! stream), each answering as the real caller does when an invocation
//! fails.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
};

use super::{FunctionPool, InvokeError};
use crate::esm::{InvocationFailure, MappingHandler};
use crate::functions::{AuthorizerRefusal, GatewayFunctions};

/// The WebSocket functions as bootstraps.
pub struct BootstrapGateway {
    pub authorizer: Arc<FunctionPool>,
    pub connect: Arc<FunctionPool>,
    pub disconnect: Arc<FunctionPool>,
    pub message: Arc<FunctionPool>,
}

fn failed(pool: &FunctionPool, error: &InvokeError) {
    tracing::error!(function = pool.spec.function, %error, "invocation failed");
}

#[async_trait]
impl GatewayFunctions for BootstrapGateway {
    async fn authorize(
        &self,
        request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerRefusal> {
        match self.authorizer.invoke(request).await {
            Ok(policy) => Ok(policy),
            // The authorizer's way to say 401 is an error whose message is
            // exactly "Unauthorized".
            Err(InvokeError::Function { message, .. }) if message == "Unauthorized" => {
                Err(AuthorizerRefusal::Unauthorized)
            }
            Err(error) => {
                failed(&self.authorizer, &error);
                Err(AuthorizerRefusal::Failed)
            }
        }
    }

    async fn connect(&self, request: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        self.connect.invoke(request).await.unwrap_or_else(|error| {
            failed(&self.connect, &error);
            let mut response = ApiGatewayProxyResponse::default();
            response.status_code = 500;
            response
        })
    }

    async fn disconnect(&self, request: &ApiGatewayWebsocketProxyRequest) {
        // API Gateway does not retry `$disconnect`; the sweeper catches up
        // through the connection's TTL.
        if let Err(error) = self.disconnect.invoke::<serde_json::Value>(request).await {
            failed(&self.disconnect, &error);
        }
    }

    async fn message(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> Option<ApiGatewayProxyResponse> {
        self.message
            .invoke(request)
            .await
            .inspect_err(|error| failed(&self.message, error))
            .ok()
    }
}

/// A mapping's handler (SQS or the table's stream): the batch to the
/// bootstrap; any failure fails the invocation, so an SQS batch reappears
/// after its visibility timeout and a stream batch is retried.
pub fn mapping_handler<E, R>(pool: Arc<FunctionPool>) -> MappingHandler<E, R>
where
    E: serde::Serialize + Send + Sync + 'static,
    R: serde::de::DeserializeOwned + Send + 'static,
{
    Arc::new(move |event: E, _deadline| {
        let pool = pool.clone();
        Box::pin(async move {
            pool.invoke(&event)
                .await
                .map_err(|e| InvocationFailure::Bootstrap(e.to_string()))
        })
    })
}
