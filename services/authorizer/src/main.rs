//! The `$connect` REQUEST authorizer Lambda: checks the Origin and
//! verifies the client's token (HS256 and/or JWKS keys).

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use fanout_core::handlers::authorizer::authorize;
use fanout_lambda::config::AuthorizerFunctionConfig;
use fanout_lambda::{Error, LambdaEvent, config_or_exit, run, service_fn, setup};

#[tokio::main]
async fn main() -> Result<(), Error> {
    setup::init_logging();
    let config = config_or_exit::<AuthorizerFunctionConfig>();
    setup::metrics(&config.metrics, "authorizer");
    let verifier = setup::token_verifier(&setup::sdk_config().await, &config.keys).await?;
    let (verifier, origins) = (&verifier, &config.keys.auth.allowed_origins);
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| async move {
            let now = chrono::Utc::now().timestamp();
            // An `Err("Unauthorized")` makes API Gateway answer 401.
            authorize(&event.payload, verifier, origins, now)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
