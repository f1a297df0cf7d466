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
use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::sqs::SqsEvent;

use super::{FunctionPool, InvokeError};
use crate::esm::{InvocationFailure, SqsHandler};
use crate::functions::{AuthorizerRefusal, GatewayFunctions};
use crate::stream_esm::StreamHandler;

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

/// An SQS mapping's handler: the batch to the bootstrap; any failure
/// fails the invocation, so the batch reappears after the visibility
/// timeout.
pub fn sqs_handler(pool: Arc<FunctionPool>) -> SqsHandler {
    Arc::new(move |event: SqsEvent, _deadline| {
        let pool = pool.clone();
        Box::pin(async move {
            pool.invoke(&event)
                .await
                .map_err(|e| InvocationFailure::Bootstrap(e.to_string()))
        })
    })
}

/// The stream mapping's handler: a failure retries the batch.
pub fn stream_handler(pool: Arc<FunctionPool>) -> StreamHandler {
    Arc::new(move |event: StreamEvent, _deadline| {
        let pool = pool.clone();
        Box::pin(async move {
            pool.invoke(&event)
                .await
                .map_err(|e| InvocationFailure::Bootstrap(e.to_string()))
        })
    })
}
