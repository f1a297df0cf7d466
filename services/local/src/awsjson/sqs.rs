//! SQS operations (AWS JSON 1.0, `X-Amz-Target: AmazonSQS.<Operation>`)
//! over the stack's queues, so operators and the `fanout dlq` commands
//! inspect and redrive the local stack's dead-letter queues with the same
//! SQS client they use on AWS. It serves what those need: ListQueues,
//! GetQueueUrl, GetQueueAttributes, ReceiveMessage, ChangeMessageVisibility,
//! SendMessageBatch and DeleteMessageBatch; and the dead-letter redrive
//! tasks (StartMessageMoveTask, ListMessageMoveTasks, in [`super::move_task`]).

use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use fanout_awsjson::sqs::{Request, parse_request};
use fanout_core::ports::{Attributes, OutgoingMessage, Queue, STRING_ATTRIBUTE_TYPE};
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

use super::move_task::{self, MoveRequest, MoveTasks};
use super::sqs_reply::{error, ok};
use crate::queues::QueueDirectory;

/// `X-Amz-Target` of every SQS operation.
pub const TARGET_PREFIX: &str = "AmazonSQS.";
const ACCOUNT: &str = "000000000000";

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One SQS operation on the queue the request names.
pub async fn handle(
    directory: &QueueDirectory,
    tasks: &MoveTasks,
    host: &str,
    operation: &str,
    body: Bytes,
    now_ms: i64,
) -> Response {
    if matches!(operation, "StartMessageMoveTask" | "ListMessageMoveTasks") {
        let request: MoveRequest = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => return error("InvalidParameterValue", &e.to_string()),
        };
        return if operation == "StartMessageMoveTask" {
            move_task::start(directory, tasks, request, now_ms).await
        } else {
            move_task::list(tasks, request)
        };
    }
    let request = match parse_request(&body) {
        Ok(request) => request,
        Err(refusal) => return error(refusal.code, &refusal.message),
    };
    let urls = QueueUrls { host };
    if operation == "ListQueues" {
        return list_queues(directory, &urls, request);
    }
    let name = match (&request.queue_url, &request.queue_name) {
        (Some(u), _) => u.rsplit('/').next().unwrap_or_default().to_string(),
        (None, Some(n)) => n.clone(),
        (None, None) => return error("MissingParameter", "QueueUrl is required"),
    };
    let Some(queue) = directory.by_name(&name) else {
        return error(
            "QueueDoesNotExist",
            &format!("The specified queue {name} does not exist."),
        );
    };
    let queue = queue.as_ref();
    match operation {
        "GetQueueUrl" => ok(json!({ "QueueUrl": urls.of(&name) })),
        "GetQueueAttributes" => get_queue_attributes(directory, queue).await,
        "ReceiveMessage" => receive_message(queue, request).await,
        "ChangeMessageVisibility" => change_message_visibility(queue, request).await,
        "SendMessageBatch" => send_message_batch(queue, request).await,
        "DeleteMessageBatch" => delete_message_batch(queue, request).await,
        other => error(
            "UnsupportedOperation",
            &format!("the local stack's SQS endpoint does not serve {other}"),
        ),
    }
}

/// Queue URLs on the host the client called.
struct QueueUrls<'a> {
    host: &'a str,
}

impl QueueUrls<'_> {
    fn of(&self, name: &str) -> String {
        format!("http://{}/{ACCOUNT}/{name}", self.host)
    }
}

fn list_queues(directory: &QueueDirectory, urls: &QueueUrls<'_>, request: Request) -> Response {
    let prefix = request.queue_name_prefix.unwrap_or_default();
    let urls: Vec<String> = directory
        .names()
        .filter(|n| n.starts_with(&prefix))
        .map(|n| urls.of(n))
        .collect();
    ok(json!({ "QueueUrls": urls }))
}

async fn get_queue_attributes(directory: &QueueDirectory, queue: &dyn Queue) -> Response {
    let depth = match queue.depth().await {
        Ok(depth) => depth,
        Err(e) => return error("ServiceUnavailable", &e.to_string()),
    };
    let mut attributes = json!({
        "QueueArn": queue.arn(),
        "ApproximateNumberOfMessages": depth.visible.to_string(),
        "ApproximateNumberOfMessagesNotVisible": depth.in_flight.to_string(),
        "ApproximateNumberOfMessagesDelayed": depth.delayed.to_string(),
    });
    if let Some((dlq, max)) = directory.redrive_of(queue.name()) {
        attributes["RedrivePolicy"] = json!({
            "deadLetterTargetArn": dlq.arn(),
            "maxReceiveCount": max,
        })
        .to_string()
        .into();
    }
    ok(json!({ "Attributes": attributes }))
}

async fn receive_message(queue: &dyn Queue, request: Request) -> Response {
    let max = request.max_number_of_messages.unwrap_or(1) as usize;
    let wait = Duration::from_secs(request.wait_time_seconds.unwrap_or(0));
    let visibility = Duration::from_secs(request.visibility_timeout.unwrap_or(30));
    let messages = match queue.receive(max, wait, visibility).await {
        Ok(messages) => messages,
        Err(e) => return error("ServiceUnavailable", &e.to_string()),
    };
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({"DataType": STRING_ATTRIBUTE_TYPE, "StringValue": v}),
                    )
                })
                .collect();
            json!({
                "MessageId": m.message_id,
                "ReceiptHandle": m.receipt_handle,
                "MD5OfBody": md5_hex(&m.body),
                "Body": m.body,
                "Attributes": {
                    "ApproximateReceiveCount": m.receive_count.to_string(),
                    "SentTimestamp": m.sent_at_ms.to_string(),
                },
                "MessageAttributes": attributes,
            })
        })
        .collect();
    ok(json!({ "Messages": messages }))
}

async fn change_message_visibility(queue: &dyn Queue, request: Request) -> Response {
    let handle = request.receipt_handle.unwrap_or_default();
    let timeout = Duration::from_secs(request.visibility_timeout.unwrap_or(0));
    match queue.change_visibility(&handle, timeout).await {
        Ok(()) => ok(json!({})),
        Err(e) => error("ReceiptHandleIsInvalid", &e.to_string()),
    }
}

async fn send_message_batch(queue: &dyn Queue, request: Request) -> Response {
    let messages: Vec<OutgoingMessage> = request
        .entries
        .iter()
        .map(|e| {
            let mut m = OutgoingMessage::new(e.id.clone(), e.message_body.clone())
                .with_delay(Duration::from_secs(e.delay_seconds));
            m.attributes = e
                .message_attributes
                .iter()
                .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
                .collect::<Attributes>();
            m
        })
        .collect();
    let failed = match queue.send_batch(&messages).await {
        Ok(failed) => failed,
        Err(e) => return error("InvalidParameterValue", &e.to_string()),
    };
    let failed_ids: Vec<&str> = failed.iter().map(|f| f.id.as_str()).collect();
    let successful: Vec<Value> = request
        .entries
        .iter()
        .filter(|e| !failed_ids.contains(&e.id.as_str()))
        .map(|e| {
            json!({
                "Id": e.id,
                "MessageId": uuid::Uuid::new_v4().to_string(),
                "MD5OfMessageBody": md5_hex(&e.message_body),
            })
        })
        .collect();
    let failed: Vec<Value> = failed
        .iter()
        .map(|f| json!({"Id": f.id, "SenderFault": !f.retryable, "Code": f.code, "Message": f.message}))
        .collect();
    ok(json!({"Successful": successful, "Failed": failed}))
}

async fn delete_message_batch(queue: &dyn Queue, request: Request) -> Response {
    let handles: Vec<String> = request
        .entries
        .iter()
        .map(|e| e.receipt_handle.clone())
        .collect();
    match queue.delete(&handles).await {
        Ok(()) => {
            let successful: Vec<Value> = request
                .entries
                .iter()
                .map(|e| json!({"Id": e.id}))
                .collect();
            ok(json!({"Successful": successful, "Failed": []}))
        }
        Err(e) => error("ServiceUnavailable", &e.to_string()),
    }
}
