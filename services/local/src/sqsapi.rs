//! An SQS-compatible endpoint (AWS JSON 1.0, `POST /` with `X-Amz-Target:
//! AmazonSQS.<Operation>`) over the stack's queues, so operators and the
//! `fanout dlq` commands inspect and redrive the local stack's dead-letter
//! queues with the same SQS client they use on AWS. It serves what those
//! need: ListQueues, GetQueueUrl, GetQueueAttributes, ReceiveMessage,
//! ChangeMessageVisibility, SendMessageBatch and DeleteMessageBatch.
//! Requests are not signature-checked locally.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fanout_core::ports::{Attributes, OutgoingMessage, Queue, STRING_ATTRIBUTE_TYPE};
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The stack's queues by name, and which dead-letter queue each source
/// queue redrives to.
pub struct QueueDirectory {
    queues: Vec<Arc<dyn Queue>>,
    redrive: HashMap<String, (String, u32)>,
}

impl QueueDirectory {
    pub fn new(queues: Vec<Arc<dyn Queue>>, redrive: &[(&str, &str, u32)]) -> Self {
        Self {
            queues,
            redrive: redrive
                .iter()
                .map(|(source, dlq, max)| (source.to_string(), (dlq.to_string(), *max)))
                .collect(),
        }
    }

    fn by_name(&self, name: &str) -> Option<&Arc<dyn Queue>> {
        self.queues.iter().find(|q| q.name() == name)
    }
}

pub const TARGET_PREFIX: &str = "AmazonSQS.";
const ACCOUNT: &str = "000000000000";

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}

fn error(code: &str, message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": message}),
    )
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Request {
    queue_url: Option<String>,
    queue_name: Option<String>,
    queue_name_prefix: Option<String>,
    max_number_of_messages: Option<usize>,
    wait_time_seconds: Option<u64>,
    visibility_timeout: Option<u64>,
    receipt_handle: Option<String>,
    entries: Vec<Entry>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Entry {
    id: String,
    message_body: String,
    delay_seconds: u64,
    receipt_handle: String,
    message_attributes: HashMap<String, AttributeValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct AttributeValue {
    string_value: Option<String>,
}

/// `POST /` with an `AmazonSQS.*` target.
pub async fn handle(directory: &QueueDirectory, host: &str, target: &str, body: Bytes) -> Response {
    let operation = target.trim_start_matches(TARGET_PREFIX);
    let request: Request = if body.is_empty() {
        Request::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error("InvalidParameterValue", &e.to_string()),
        }
    };
    let url = |name: &str| format!("http://{host}/{ACCOUNT}/{name}");
    if operation == "ListQueues" {
        let prefix = request.queue_name_prefix.unwrap_or_default();
        let urls: Vec<String> = directory
            .queues
            .iter()
            .map(|q| q.name())
            .filter(|n| n.starts_with(&prefix))
            .map(url)
            .collect();
        return json_response(StatusCode::OK, json!({ "QueueUrls": urls }));
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
        "GetQueueUrl" => json_response(StatusCode::OK, json!({ "QueueUrl": url(&name) })),
        "GetQueueAttributes" => match queue.depth().await {
            Ok(depth) => {
                let mut attributes = json!({
                    "QueueArn": queue.arn(),
                    "ApproximateNumberOfMessages": depth.visible.to_string(),
                    "ApproximateNumberOfMessagesNotVisible": depth.in_flight.to_string(),
                    "ApproximateNumberOfMessagesDelayed": depth.delayed.to_string(),
                });
                if let Some((dlq, max)) = directory.redrive.get(&name)
                    && let Some(dlq) = directory.by_name(dlq)
                {
                    attributes["RedrivePolicy"] = json!({
                        "deadLetterTargetArn": dlq.arn(),
                        "maxReceiveCount": max,
                    })
                    .to_string()
                    .into();
                }
                json_response(StatusCode::OK, json!({ "Attributes": attributes }))
            }
            Err(e) => error("ServiceUnavailable", &e.to_string()),
        },
        "ReceiveMessage" => {
            let max = request.max_number_of_messages.unwrap_or(1);
            let wait = Duration::from_secs(request.wait_time_seconds.unwrap_or(0).min(20));
            let visibility = Duration::from_secs(request.visibility_timeout.unwrap_or(30));
            match queue.receive(max, wait, visibility).await {
                Ok(messages) => {
                    let messages: Vec<Value> = messages
                        .into_iter()
                        .map(|m| {
                            let attributes: Map<String, Value> = m
                                .attributes
                                .iter()
                                .map(|(k, v)| {
                                    (k.clone(), json!({"DataType": STRING_ATTRIBUTE_TYPE, "StringValue": v}))
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
                    json_response(StatusCode::OK, json!({ "Messages": messages }))
                }
                Err(e) => error("ServiceUnavailable", &e.to_string()),
            }
        }
        "ChangeMessageVisibility" => {
            let handle = request.receipt_handle.unwrap_or_default();
            let timeout = Duration::from_secs(request.visibility_timeout.unwrap_or(0));
            match queue.change_visibility(&handle, timeout).await {
                Ok(()) => json_response(StatusCode::OK, json!({})),
                Err(e) => error("ReceiptHandleIsInvalid", &e.to_string()),
            }
        }
        "SendMessageBatch" => {
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
            match queue.send_batch(&messages).await {
                Ok(failed) => {
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
                        .map(|f| {
                            json!({"Id": f.id, "SenderFault": !f.retryable,
                                "Code": f.code, "Message": f.message})
                        })
                        .collect();
                    json_response(
                        StatusCode::OK,
                        json!({"Successful": successful, "Failed": failed}),
                    )
                }
                Err(e) => error("InvalidParameterValue", &e.to_string()),
            }
        }
        "DeleteMessageBatch" => {
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
                    json_response(
                        StatusCode::OK,
                        json!({"Successful": successful, "Failed": []}),
                    )
                }
                Err(e) => error("ServiceUnavailable", &e.to_string()),
            }
        }
        other => error(
            "UnsupportedOperation",
            &format!("the local stack's SQS endpoint does not serve {other}"),
        ),
    }
}

/// The `Host` the client used, for queue URLs it can call back.
pub fn host_of(headers: &HeaderMap, fallback: &str) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or(fallback)
        .to_string()
}
