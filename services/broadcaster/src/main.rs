//! The broadcaster Lambda (deliver queue, ReportBatchItemFailures).

use aws_lambda_events::sqs::SqsEvent;
use fanout_core::handlers::broadcaster;
use fanout_lambda::config::BroadcasterConfig;
use fanout_lambda::{Error, LambdaEvent, config_or_exit, deadline, run, service_fn, setup};

#[tokio::main]
async fn main() -> Result<(), Error> {
    setup::init_logging();
    let config = config_or_exit::<BroadcasterConfig>();
    let sdk = setup::sdk_config().await;
    let deps = setup::broadcaster_deps(&sdk, &config)?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = deadline(&event.context);
        Ok::<_, Error>(broadcaster::handle(event.payload, deadline, deps).await)
    }))
    .await
}
