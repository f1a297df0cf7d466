//! The `disconnect` WebSocket route Lambda.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use fanout_core::handlers::disconnect;
use fanout_lambda::config::{Env, GatewayConfig};
use fanout_lambda::{Error, LambdaEvent, config_or_exit, run, service_fn, setup};

#[tokio::main]
async fn main() -> Result<(), Error> {
    setup::init_logging();
    let config = config_or_exit(|| GatewayConfig::read(&Env::process()));
    let deps = setup::gateway_deps(&setup::sdk_config().await, &config);
    let deps = &deps;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(disconnect::handle(&event.payload, deps).await)
        },
    ))
    .await
}
