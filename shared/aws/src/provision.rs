//! Creates what fanout needs on an AWS-compatible endpoint when it is
//! missing: the single table (pk/sk, GSI1, TTL on `ttl`, on-demand), queues
//! with their dead-letter queues and redrive policies, and the bus with the
//! broadcast rule targeting the plan queue (retry policy and DLQ). Existing
//! resources are used as they are. The SAM template creates the same
//! things in a real account.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_eventbridge::types::{DeadLetterConfig, RetryPolicy, Target};
use aws_sdk_sqs::types::QueueAttributeName;

use super::describe;
use super::dynamo::GSI1;
use super::sqs::SqsQueue;

#[derive(Debug, thiserror::Error)]
#[error("could not create {resource}: {message}")]
pub struct ProvisionError {
    pub resource: String,
    pub message: String,
}

fn failed<E: std::error::Error>(resource: impl Into<String>) -> impl FnOnce(E) -> ProvisionError {
    let resource = resource.into();
    move |e| ProvisionError {
        resource,
        message: describe(&e),
    }
}

/// Creates the table if it does not exist (with its stream of old images,
/// which the sweeper reads), waits until it is active, and turns TTL on.
pub async fn table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), ProvisionError> {
    let what = format!("DynamoDB table {name}");
    let exists = client.describe_table().table_name(name).send().await;
    if let Err(e) = exists {
        if !e
            .as_service_error()
            .is_some_and(|s| s.is_resource_not_found_exception())
        {
            return Err(failed(what)(e));
        }
        let attribute = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set")
        };
        let key = |n: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .expect("name and type are set")
        };
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                aws_sdk_dynamodb::types::StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::OldImage)
                    .build()
                    .expect("enabled is set"),
            )
            .set_attribute_definitions(Some(vec![
                attribute("pk"),
                attribute("sk"),
                attribute("gsi1pk"),
                attribute("gsi1sk"),
            ]))
            .set_key_schema(Some(vec![
                key("pk", KeyType::Hash),
                key("sk", KeyType::Range),
            ]))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(GSI1)
                    .set_key_schema(Some(vec![
                        key("gsi1pk", KeyType::Hash),
                        key("gsi1sk", KeyType::Range),
                    ]))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("index name and key schema are set"),
            )
            .send()
            .await
            .map_err(failed(what.clone()))?;
    }
    for _ in 0..120 {
        let status = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(failed(what.clone()))?
            .table
            .and_then(|t| t.table_status);
        if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ttl_on = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .ok()
        .and_then(|o| o.time_to_live_description)
        .and_then(|d| d.time_to_live_status)
        .is_some_and(|s| s.as_str() == "ENABLED");
    if !ttl_on {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("ttl")
                    .enabled(true)
                    .build()
                    .expect("name and flag are set"),
            )
            .send()
            .await
            .map_err(failed(format!("TTL of {what}")))?;
    }
    Ok(())
}

/// Creates a queue (or reuses it), with a redrive policy to `dead_letter`
/// after `max_receive_count` receives when given.
pub async fn queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout: Duration,
    dead_letter: Option<(&SqsQueue, u32)>,
) -> Result<SqsQueue, ProvisionError> {
    let mut request = client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout.as_secs().to_string(),
        )
        // Dead letters are kept as long as SQS allows (14 days).
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .attributes(QueueAttributeName::SqsManagedSseEnabled, "true");
    if let Some((dlq, max_receive_count)) = dead_letter {
        request = request.attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({
                "deadLetterTargetArn": aws_sdk_sqs_arn(dlq),
                "maxReceiveCount": max_receive_count,
            })
            .to_string(),
        );
    }
    request
        .send()
        .await
        .map_err(failed(format!("SQS queue {name}")))?;
    SqsQueue::open(client.clone(), name)
        .await
        .map_err(|e| ProvisionError {
            resource: format!("SQS queue {name}"),
            message: e.to_string(),
        })
}

fn aws_sdk_sqs_arn(queue: &SqsQueue) -> String {
    fanout_core::ports::Queue::arn(queue)
}

/// The bus's broadcast rule and its target.
pub struct RuleSpec<'a> {
    pub bus: &'a str,
    pub rule: &'a str,
    pub pattern: &'a str,
    pub target: &'a SqsQueue,
    pub maximum_retry_attempts: u32,
    pub maximum_event_age: Duration,
    pub dead_letter: &'a SqsQueue,
}

/// Creates the bus (unless it is `default` or exists), the rule, and its
/// SQS target with a retry policy and a dead-letter queue.
pub async fn bus_rule(
    client: &aws_sdk_eventbridge::Client,
    spec: &RuleSpec<'_>,
) -> Result<(), ProvisionError> {
    if spec.bus != "default" {
        let exists = client.describe_event_bus().name(spec.bus).send().await;
        if exists.is_err() {
            client
                .create_event_bus()
                .name(spec.bus)
                .send()
                .await
                .map_err(failed(format!("event bus {}", spec.bus)))?;
        }
    }
    client
        .put_rule()
        .name(spec.rule)
        .event_bus_name(spec.bus)
        .event_pattern(spec.pattern)
        .send()
        .await
        .map_err(failed(format!("rule {}", spec.rule)))?;
    let target = Target::builder()
        .id("plan-queue")
        .arn(aws_sdk_sqs_arn(spec.target))
        .retry_policy(
            RetryPolicy::builder()
                .maximum_retry_attempts(spec.maximum_retry_attempts as i32)
                .maximum_event_age_in_seconds(spec.maximum_event_age.as_secs() as i32)
                .build(),
        )
        .dead_letter_config(
            DeadLetterConfig::builder()
                .arn(aws_sdk_sqs_arn(spec.dead_letter))
                .build(),
        )
        .build()
        .expect("id and arn are set");
    let out = client
        .put_targets()
        .rule(spec.rule)
        .event_bus_name(spec.bus)
        .targets(target)
        .send()
        .await
        .map_err(failed(format!("target of rule {}", spec.rule)))?;
    if out.failed_entry_count > 0 {
        return Err(ProvisionError {
            resource: format!("target of rule {}", spec.rule),
            message: format!("{:?}", out.failed_entries),
        });
    }
    Ok(())
}
