//! SQS's dead-letter queue redrive (`StartMessageMoveTask`,
//! `ListMessageMoveTasks`) on the stack's queues, as SQS runs it: a task
//! per dead-letter queue that moves every message back to the queue that
//! dead-lettered it (or to a given one) in the background, at an optional
//! rate, and reports its progress. `fanout dlq redrive` uses it where the
//! endpoint serves it, as on AWS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::response::Response;
use fanout_core::ports::Queue;
use serde::Deserialize;
use serde_json::json;

use super::sqs_reply::{error, ok};
use crate::queues::QueueDirectory;

/// Messages moved per step of a task (one receive, send and delete).
const STEP: usize = 10;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct MoveRequest {
    source_arn: Option<String>,
    destination_arn: Option<String>,
    max_number_of_messages_per_second: Option<u32>,
    max_results: Option<u32>,
}

/// One task's state, as `ListMessageMoveTasks` reports it.
struct MoveTask {
    handle: String,
    source_arn: String,
    destination_arn: Option<String>,
    rate: Option<u32>,
    started_ms: i64,
    to_move: u64,
    moved: AtomicU64,
    /// `RUNNING`, `COMPLETED` or `FAILED`, with a failure's reason.
    status: Mutex<(&'static str, Option<String>)>,
}

/// Every task started on this stack, newest last.
#[derive(Default)]
pub struct MoveTasks {
    tasks: Mutex<Vec<Arc<MoveTask>>>,
}

fn queue_of_arn<'a>(directory: &'a QueueDirectory, arn: &str) -> Option<&'a Arc<dyn Queue>> {
    directory.by_name(arn.rsplit(':').next()?)
}

/// `StartMessageMoveTask`.
pub async fn start(
    directory: &QueueDirectory,
    tasks: &MoveTasks,
    request: MoveRequest,
    now_ms: i64,
) -> Response {
    let Some(source_arn) = request.source_arn else {
        return error("MissingParameter", "SourceArn is required");
    };
    if let Some(rate) = request.max_number_of_messages_per_second
        && !(1..=500).contains(&rate)
    {
        return error(
            "InvalidParameterValue",
            &format!(
                "Value {rate} for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: Must be between 1 and 500."
            ),
        );
    }
    let Some(source) = queue_of_arn(directory, &source_arn).cloned() else {
        return error(
            "ResourceNotFoundException",
            &format!(
                "The resource that you specified for the SourceArn parameter doesn't exist: {source_arn}"
            ),
        );
    };
    // SQS moves messages only out of a queue that is some queue's
    // dead-letter queue, and back to that queue when no destination is
    // given.
    let Some(origin) = directory.dead_letters_into(source.name()) else {
        return error(
            "InvalidParameterValue",
            "Source queue must be configured as a Dead Letter Queue.",
        );
    };
    let destination = match &request.destination_arn {
        Some(arn) => match queue_of_arn(directory, arn) {
            Some(queue) => queue.clone(),
            None => {
                return error(
                    "ResourceNotFoundException",
                    &format!(
                        "The resource that you specified for the DestinationArn parameter doesn't exist: {arn}"
                    ),
                );
            }
        },
        None => origin.clone(),
    };
    let to_move = match source.depth().await {
        Ok(depth) => depth.visible,
        Err(e) => return error("InternalError", &e.to_string()),
    };
    let task = {
        let mut all = tasks.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if all.iter().any(|t| {
            t.source_arn == source_arn
                && t.status.lock().unwrap_or_else(|e| e.into_inner()).0 == "RUNNING"
        }) {
            return error(
                "UnsupportedOperation",
                "There is already a task running. Only one active task is allowed for each source queue arn at a given time.",
            );
        }
        let task = Arc::new(MoveTask {
            handle: uuid::Uuid::new_v4().to_string(),
            source_arn,
            destination_arn: request.destination_arn,
            rate: request.max_number_of_messages_per_second,
            started_ms: now_ms,
            to_move,
            moved: AtomicU64::new(0),
            status: Mutex::new(("RUNNING", None)),
        });
        all.push(task.clone());
        task
    };
    tokio::spawn(run(task.clone(), source, destination));
    ok(json!({ "TaskHandle": task.handle }))
}

/// Moves until the source is empty (messages that arrive meanwhile
/// included, as SQS does).
async fn run(task: Arc<MoveTask>, source: Arc<dyn Queue>, destination: Arc<dyn Queue>) {
    let outcome = loop {
        match fanout_aws::dlq::redrive(source.as_ref(), destination.as_ref(), STEP, task.rate).await
        {
            Ok(0) => break ("COMPLETED", None),
            Ok(n) => {
                task.moved.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => break ("FAILED", Some(e.to_string())),
        }
    };
    *task.status.lock().unwrap_or_else(|e| e.into_inner()) = outcome;
}

/// `ListMessageMoveTasks`: the source's most recent tasks, newest first.
pub fn list(tasks: &MoveTasks, request: MoveRequest) -> Response {
    let Some(source_arn) = request.source_arn else {
        return error("MissingParameter", "SourceArn is required");
    };
    let max = request.max_results.unwrap_or(1);
    if !(1..=10).contains(&max) {
        return error(
            "InvalidParameterValue",
            &format!(
                "Value {max} for parameter MaxResults is invalid. Reason: Must be between 1 and 10."
            ),
        );
    }
    let all = tasks.tasks.lock().unwrap_or_else(|e| e.into_inner());
    let results: Vec<_> = all
        .iter()
        .rev()
        .filter(|t| t.source_arn == source_arn)
        .take(max as usize)
        .map(|t| {
            let (status, reason) = t.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut result = json!({
                "Status": status,
                "SourceArn": t.source_arn,
                "ApproximateNumberOfMessagesMoved": t.moved.load(Ordering::Relaxed),
                "ApproximateNumberOfMessagesToMove": t.to_move,
                "StartedTimestamp": t.started_ms,
            });
            if status == "RUNNING" {
                result["TaskHandle"] = json!(t.handle);
            }
            if let Some(arn) = &t.destination_arn {
                result["DestinationArn"] = json!(arn);
            }
            if let Some(rate) = t.rate {
                result["MaxNumberOfMessagesPerSecond"] = json!(rate);
            }
            if let Some(reason) = reason {
                result["FailureReason"] = json!(reason);
            }
            result
        })
        .collect();
    ok(json!({ "Results": results }))
}
