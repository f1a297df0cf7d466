//! The planner Lambda (plan queue, ReportBatchItemFailures).

use aws_lambda_events::sqs::SqsEvent;
use fanout_core::handlers::planner;
use fanout_lambda::config::PlannerConfig;
use fanout_lambda::{Error, LambdaEvent, config_or_exit, deadline, run, service_fn, setup};

#[tokio::main]
async fn main() -> Result<(), Error> {
    setup::init_logging();
    let config = config_or_exit::<PlannerConfig>();
    let deps = setup::planner_deps(&setup::sdk_config().await, &config)?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = deadline(&event.context);
        Ok::<_, Error>(planner::handle(event.payload, deadline, deps).await)
    }))
    .await
}
