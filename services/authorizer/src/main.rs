//! The `$connect` REQUEST authorizer Lambda: verifies the client's token.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use fanout_core::handlers::authorizer::authorize;
use fanout_core::token::TokenVerifier;
use fanout_lambda::config::AuthorizerConfig;
use fanout_lambda::{Error, LambdaEvent, config_or_exit, run, service_fn, setup};

#[tokio::main]
async fn main() -> Result<(), Error> {
    setup::init_logging();
    let config = config_or_exit::<AuthorizerConfig>();
    let source = config.jwt_secret()?;
    let secret = setup::jwt_secret(&setup::sdk_config().await, &source).await?;
    let verifier = TokenVerifier::new(secret.as_bytes());
    let verifier = &verifier;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| async move {
            // An `Err("Unauthorized")` makes API Gateway answer 401.
            authorize(&event.payload, verifier).map_err(Error::from)
        },
    ))
    .await
}
