//! The queue on SQS: `SendMessageBatch` of at most ten entries with each
//! body's size checked first and `Failed` entries handed back (retryable
//! unless SQS blames the sender), `DelaySeconds`, message attributes,
//! long-polling receives with receive counts, batched deletes, and the
//! approximate depth the DLQ tooling reports.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};

use super::describe;
use fanout_core::limits::{SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY, SQS_MAX_MESSAGE_BYTES};
use fanout_core::ports::{
    Attributes, Cause, FailedEntry, OutgoingMessage, Queue, QueueDepth, QueueError,
    ReceivedMessage, STRING_ATTRIBUTE_TYPE,
};

pub struct SqsQueue {
    client: Client,
    name: String,
    url: String,
    arn: String,
    max_message_bytes: usize,
}

/// SQS's whole seconds, rounded up so a delay is never shortened.
fn whole_seconds(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.min(SQS_MAX_DELAY.as_secs()) as i32
}

impl SqsQueue {
    /// Opens an existing queue by name (its URL and ARN are looked up).
    pub async fn open(client: Client, name: &str) -> Result<Self, QueueError> {
        let unavailable = |message: String| QueueError::Unavailable {
            queue: name.to_string(),
            message: message.into(),
        };
        let url = client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?
            .queue_url
            .ok_or_else(|| unavailable("GetQueueUrl returned no URL".into()))?;
        let arn = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| unavailable("GetQueueAttributes returned no QueueArn".into()))?;
        Ok(Self {
            client,
            name: name.to_string(),
            url,
            arn,
            max_message_bytes: SQS_MAX_MESSAGE_BYTES,
        })
    }

    /// A queue by its URL (what CloudFormation's `!Ref` gives), with no
    /// request: a Lambda learns its queues from its environment instead of
    /// two lookups per queue on every cold start. The name is the URL's
    /// last segment; the ARN is built from the account in the URL and the
    /// region of the URL's host (`sqs.<region>.amazonaws.com`) or, for
    /// AWS-compatible servers, of the client.
    pub fn at_url(client: Client, url: &str) -> Result<Self, QueueError> {
        let invalid = |why: &str| {
            QueueError::Unavailable {
            queue: url.to_string(),
            message: format!(
                "{why}: expected a queue URL like https://sqs.<region>.amazonaws.com/<account>/<name>"
            ).into(),
        }
        };
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| invalid("not an http(s) URL"))?;
        let mut parts = rest.split('/');
        let host = parts.next().unwrap_or_default();
        let (Some(account), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("the path is not /<account>/<name>"));
        };
        if account.is_empty() || name.is_empty() {
            return Err(invalid("the path is not /<account>/<name>"));
        }
        let region = host
            .strip_prefix("sqs.")
            .and_then(|h| h.split('.').next())
            .filter(|_| host.contains(".amazonaws."))
            .map(str::to_string)
            .or_else(|| client.config().region().map(|r| r.to_string()))
            .ok_or_else(|| invalid("no region in the URL and none configured"))?;
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Ok(Self {
            client,
            name: name.to_string(),
            url: url.to_string(),
            arn: format!("arn:{partition}:sqs:{region}:{account}:{name}"),
            max_message_bytes: SQS_MAX_MESSAGE_BYTES,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn unavailable<E: std::error::Error + Send + Sync + 'static>(&self, error: E) -> QueueError {
        QueueError::Unavailable {
            queue: self.name.clone(),
            message: Cause::new(error),
        }
    }
}

fn to_attribute_values(attributes: &Attributes) -> Option<HashMap<String, MessageAttributeValue>> {
    if attributes.is_empty() {
        return None;
    }
    Some(
        attributes
            .iter()
            .map(|(k, v)| {
                let value = MessageAttributeValue::builder()
                    .data_type(STRING_ATTRIBUTE_TYPE)
                    .string_value(v)
                    .build()
                    .expect("data type is set");
                (k.clone(), value)
            })
            .collect(),
    )
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn arn(&self) -> String {
        self.arn.clone()
    }

    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, QueueError> {
        if messages.len() > SQS_MAX_BATCH_ENTRIES {
            return Err(QueueError::Invalid {
                queue: self.name.clone(),
                message: format!(
                    "{} entries; at most {SQS_MAX_BATCH_ENTRIES}",
                    messages.len()
                )
                .into(),
            });
        }
        let mut failed = Vec::new();
        let mut entries = Vec::new();
        for m in messages {
            // Checked here, as the embedded queue does, so one oversized
            // body fails alone instead of failing the whole call.
            if m.size() > self.max_message_bytes || m.delay > SQS_MAX_DELAY {
                failed.push(FailedEntry {
                    id: m.id.clone(),
                    code: "InvalidParameterValue".into(),
                    message: format!(
                        "message is {} bytes with delay {:?}; the limits are {} bytes and {:?}",
                        m.size(),
                        m.delay,
                        self.max_message_bytes,
                        SQS_MAX_DELAY
                    ),
                    retryable: false,
                });
                continue;
            }
            entries.push(
                SendMessageBatchRequestEntry::builder()
                    .id(&m.id)
                    .message_body(&m.body)
                    .delay_seconds(whole_seconds(m.delay))
                    .set_message_attributes(to_attribute_values(&m.attributes))
                    .build()
                    .expect("id and body are set"),
            );
        }
        if entries.is_empty() {
            return Ok(failed);
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        failed.extend(out.failed.into_iter().map(|f| FailedEntry {
            retryable: !f.sender_fault,
            id: f.id,
            code: f.code,
            message: f.message.unwrap_or_default(),
        }));
        Ok(failed)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, SQS_MAX_BATCH_ENTRIES) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .visibility_timeout(whole_seconds(visibility).max(0))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let system = m.attributes.unwrap_or_default();
                let number = |name: MessageSystemAttributeName| {
                    system
                        .get(&name)
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or(0)
                };
                ReceivedMessage {
                    receive_count: number(MessageSystemAttributeName::ApproximateReceiveCount)
                        as u32,
                    sent_at_ms: number(MessageSystemAttributeName::SentTimestamp),
                    message_id: m.message_id.unwrap_or_default(),
                    receipt_handle: m.receipt_handle.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                    attributes: m
                        .message_attributes
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
                        .collect(),
                }
            })
            .collect())
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<(), QueueError> {
        for chunk in receipt_handles.chunks(SQS_MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .expect("id and handle are set")
                })
                .collect();
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.unavailable(e))?;
            // A stale receipt handle (the message was received again) is not
            // an error: the newer receiver owns the message now.
            for f in out.failed {
                tracing::warn!(queue = %self.name, code = %f.code, message = ?f.message,
                    "a message could not be deleted; it will be received again");
            }
        }
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(whole_seconds(timeout))
            .send()
            .await
            .map_err(|e| QueueError::Invalid {
                queue: self.name.clone(),
                message: describe(&e).into(),
            })?;
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        let attributes = out.attributes.unwrap_or_default();
        let count = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_queue_url_gives_its_name_and_arn_without_a_request() {
        let client = |region: &str| {
            let conf = aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new(region.to_string()))
                // Nothing listens here: building the queue must not call it.
                .endpoint_url("http://127.0.0.1:1")
                .build();
            super::Client::from_conf(conf)
        };
        let q = super::SqsQueue::at_url(
            client("us-east-1"),
            "https://sqs.eu-west-1.amazonaws.com/123456789012/fanout-deliver",
        )
        .unwrap();
        use fanout_core::ports::Queue;
        assert_eq!(q.name(), "fanout-deliver");
        assert_eq!(q.arn(), "arn:aws:sqs:eu-west-1:123456789012:fanout-deliver");
        let moto = super::SqsQueue::at_url(
            client("cn-north-1"),
            "http://127.0.0.1:5000/123456789012/fanout-plan-dlq",
        )
        .unwrap();
        assert_eq!(
            moto.arn(),
            "arn:aws-cn:sqs:cn-north-1:123456789012:fanout-plan-dlq"
        );
        for bad in [
            "fanout-deliver",
            "https://sqs.eu-west-1.amazonaws.com/fanout",
            "ftp://x/1/q",
        ] {
            assert!(
                super::SqsQueue::at_url(client("us-east-1"), bad).is_err(),
                "{bad}"
            );
        }
    }

    use super::*;

    #[test]
    fn delays_round_up_to_whole_seconds_within_the_limit() {
        let table = [
            (0, 0),
            (1, 1),
            (999, 1),
            (1_000, 1),
            (1_001, 2),
            (2_000_000, 900),
        ];
        for (ms, secs) in table {
            assert_eq!(whole_seconds(Duration::from_millis(ms)), secs, "{ms} ms");
        }
    }
}
