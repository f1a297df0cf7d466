//! The adapters the stack runs on: the embedded ones (default: in-process,
//! no account), or the AWS ones on an AWS-compatible endpoint
//! (`--backend aws --endpoint-url …`: moto's server, or a real account),
//! with the table, bus, rule, queues and dead-letter queues created when
//! missing. The rest of the stack sees only ports.

use std::sync::Arc;

use anyhow::Context;
use fanout_aws::provision::{self, RuleSpec};
use fanout_aws::{DynamoChangeFeed, DynamoStore, EventBridgeBus};
use fanout_core::clock::Clock;
use fanout_core::event::BROADCAST;
use fanout_core::ports::{
    ChangeFeed, ConnectionStore, EventBus, EventDedupe, PresenceStore, Queue, RoomStreams,
};
use fanout_embedded::pattern::Pattern;
use fanout_embedded::{
    BusRule, MemoryBus, MemoryQueue, MemoryStore, QueueSettings, Redrive, RetryPolicy,
};

use crate::config::StackConfig;

/// Queue names, as the SAM template names them.
pub const PLAN_QUEUE: &str = "fanout-plan";
pub const PLAN_DLQ: &str = "fanout-plan-dlq";
pub const DELIVER_QUEUE: &str = "fanout-deliver";
pub const DELIVER_DLQ: &str = "fanout-deliver-dlq";
/// Where the broadcast rule puts events it could not deliver to the plan
/// queue.
pub const BUS_DLQ: &str = "fanout-bus-dlq";
/// Where the sweeper's stream mapping reports batches it gave up on.
pub const SWEEPER_DLQ: &str = "fanout-sweeper-dlq";
/// The bus and the table.
pub use fanout_core::local_api::BUS;
pub const TABLE: &str = BUS;
/// The rule that sends broadcasts to the planner.
pub const BROADCAST_RULE_PATTERN: &str = r#"{"detail-type":["fanout.broadcast"]}"#;

pub struct Backend {
    pub store: Arc<dyn ConnectionStore>,
    pub dedupe: Arc<dyn EventDedupe>,
    pub streams: Arc<dyn RoomStreams>,
    pub presence: Arc<dyn PresenceStore>,
    pub bus: Arc<dyn EventBus>,
    pub plan_queue: Arc<dyn Queue>,
    pub plan_dlq: Arc<dyn Queue>,
    pub deliver_queue: Arc<dyn Queue>,
    pub deliver_dlq: Arc<dyn Queue>,
    pub bus_dlq: Arc<dyn Queue>,
    /// The table's change records, which drive the sweeper.
    pub changes: Arc<dyn ChangeFeed>,
    pub sweeper_dlq: Arc<dyn Queue>,
    /// The embedded store, whose TTL process the stack runs; `None` on
    /// AWS, where DynamoDB runs it (moto does not: tests delete expired
    /// items themselves).
    pub expiring: Option<Arc<MemoryStore>>,
    /// On AWS: what the bootstraps are wired to (`--lambdas`).
    pub aws: Option<AwsResources>,
}

/// The AWS resources by the names and URLs a deployed function gets them.
#[derive(Clone)]
pub struct AwsResources {
    pub sdk: aws_config::SdkConfig,
    pub table: String,
    pub event_bus: String,
    pub plan_queue_url: String,
    pub deliver_queue_url: String,
    pub deliver_dlq_url: String,
    pub plan_dlq_url: String,
    pub sweeper_dlq_url: String,
    pub bus_dlq_url: String,
}

fn broadcast_rule_name() -> String {
    format!("{BROADCAST}-to-planner")
}

/// In-process adapters.
pub fn embedded(config: &StackConfig, clock: Arc<dyn Clock>) -> Backend {
    let store = Arc::new(
        MemoryStore::new(clock.clone(), config.store.shards)
            .with_stream_cap(config.stream.stream_max_events),
    );
    let queue_with_dlq = |name: &str, dlq: &Arc<MemoryQueue>| {
        MemoryQueue::new(
            name,
            QueueSettings {
                redrive: Some(Redrive {
                    dead_letter: dlq.clone(),
                    max_receive_count: config.max_receive_count,
                }),
                ..QueueSettings::default()
            },
        )
    };
    let plan_dlq = MemoryQueue::new(PLAN_DLQ, QueueSettings::default());
    let plan_queue = queue_with_dlq(PLAN_QUEUE, &plan_dlq);
    let deliver_dlq = MemoryQueue::new(DELIVER_DLQ, QueueSettings::default());
    let deliver_queue = queue_with_dlq(DELIVER_QUEUE, &deliver_dlq);
    let bus_dlq = MemoryQueue::new(BUS_DLQ, QueueSettings::default());
    let mut rule = BusRule::new(
        broadcast_rule_name(),
        Pattern::parse(BROADCAST_RULE_PATTERN).expect("the built-in rule pattern is valid"),
        plan_queue.clone(),
    );
    rule.retry = RetryPolicy {
        maximum_retry_attempts: config.bus_retry_attempts,
        maximum_event_age: config.bus_max_event_age,
    };
    rule.dead_letter = Some(bus_dlq.clone());
    Backend {
        store: store.clone(),
        dedupe: store.clone(),
        streams: store.clone(),
        presence: store.clone(),
        changes: store.clone(),
        sweeper_dlq: MemoryQueue::new(SWEEPER_DLQ, QueueSettings::default()),
        expiring: Some(store),
        aws: None,
        bus: Arc::new(MemoryBus::new(BUS, clock, vec![rule])),
        plan_queue,
        plan_dlq,
        deliver_queue,
        deliver_dlq,
        bus_dlq,
    }
}

/// AWS adapters on `--endpoint-url` (or the SDK's default endpoints),
/// creating whatever is missing. Names get `--resource-prefix`.
pub async fn aws(config: &StackConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Backend> {
    let sdk = fanout_aws::sdk_config(config.endpoint_url.as_deref()).await;
    let name = |base: &str| format!("{}{base}", config.resource_prefix);
    let endpoint = config
        .endpoint_url
        .as_deref()
        .unwrap_or("the default AWS endpoints");

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    provision::table(&dynamodb, &name(TABLE))
        .await
        .with_context(|| format!("--backend aws on {endpoint}"))?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let visibility = config.visibility_timeout;
    let plan_dlq = provision::queue(&sqs, &name(PLAN_DLQ), visibility, None).await?;
    let deliver_dlq = provision::queue(&sqs, &name(DELIVER_DLQ), visibility, None).await?;
    let bus_dlq = provision::queue(&sqs, &name(BUS_DLQ), visibility, None).await?;
    let sweeper_dlq = provision::queue(&sqs, &name(SWEEPER_DLQ), visibility, None).await?;
    let redrive = config.max_receive_count;
    let plan_queue = provision::queue(
        &sqs,
        &name(PLAN_QUEUE),
        visibility,
        Some((&plan_dlq, redrive)),
    )
    .await?;
    let deliver_queue = provision::queue(
        &sqs,
        &name(DELIVER_QUEUE),
        visibility,
        Some((&deliver_dlq, redrive)),
    )
    .await?;
    let eventbridge = aws_sdk_eventbridge::Client::new(&sdk);
    provision::bus_rule(
        &eventbridge,
        &RuleSpec {
            bus: &name(BUS),
            rule: &broadcast_rule_name(),
            pattern: BROADCAST_RULE_PATTERN,
            target: &plan_queue,
            maximum_retry_attempts: config.bus_retry_attempts,
            maximum_event_age: config.bus_max_event_age,
            dead_letter: &bus_dlq,
        },
    )
    .await?;
    let changes = DynamoChangeFeed::open(&sdk, &dynamodb, &name(TABLE))
        .await
        .with_context(|| format!("--backend aws on {endpoint}"))?;
    let store = Arc::new(DynamoStore::new(
        dynamodb,
        name(TABLE),
        clock,
        config.store.shards,
    ));
    let resources = AwsResources {
        sdk: sdk.clone(),
        table: name(TABLE),
        event_bus: name(BUS),
        plan_queue_url: plan_queue.url().to_string(),
        deliver_queue_url: deliver_queue.url().to_string(),
        deliver_dlq_url: deliver_dlq.url().to_string(),
        plan_dlq_url: plan_dlq.url().to_string(),
        sweeper_dlq_url: sweeper_dlq.url().to_string(),
        bus_dlq_url: bus_dlq.url().to_string(),
    };
    Ok(Backend {
        aws: Some(resources),
        store: store.clone(),
        dedupe: store.clone(),
        streams: store.clone(),
        presence: store,
        bus: Arc::new(EventBridgeBus::new(eventbridge, name(BUS))),
        plan_queue: Arc::new(plan_queue),
        plan_dlq: Arc::new(plan_dlq),
        deliver_queue: Arc::new(deliver_queue),
        deliver_dlq: Arc::new(deliver_dlq),
        bus_dlq: Arc::new(bus_dlq),
        changes: Arc::new(changes),
        sweeper_dlq: Arc::new(sweeper_dlq),
        expiring: None,
    })
}
