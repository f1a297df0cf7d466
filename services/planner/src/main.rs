//! The planner Lambda (plan queue, ReportBatchItemFailures).

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use fanout_core::clock::SystemClock;
use fanout_core::handlers::planner::{self, PlannerDeps};
use fanout_core::metrics::EmfWriter;
use fanout_lambda::config::PlannerConfig;
use fanout_lambda::{Error, LambdaEvent, config_or_exit, deadline, run, service_fn, setup};

#[tokio::main]
async fn main() -> Result<(), Error> {
    setup::init_logging();
    let config = config_or_exit::<PlannerConfig>();
    let sdk = setup::sdk_config().await;
    // The fast path posts with the broadcaster's own dependencies.
    let direct = setup::broadcaster_deps(&sdk, &config.store, &config.delivery).await?;
    let store = setup::store(&sdk, &config.store);
    let deps = PlannerDeps {
        store: store.clone(),
        dedupe: store,
        deliver_queue: direct.deliver_queue.clone(),
        clock: Arc::new(SystemClock),
        metrics: Arc::new(EmfWriter::new(std::io::stdout())),
        direct: (config.settings.direct_max_connections > 0).then(|| Arc::new(direct)),
        settings: config.settings.clone(),
        jobs: config.delivery.jobs.clone(),
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = deadline(&event.context);
        Ok::<_, Error>(planner::handle(event.payload, deadline, deps).await)
    }))
    .await
}
