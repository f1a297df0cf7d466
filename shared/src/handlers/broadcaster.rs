//! The broadcaster (deliver queue consumer): posts each job's frame to its
//! connections with a bound on in-flight posts. A 410 deletes the
//! connection and its memberships. A job with posts that failed for a
//! retryable reason is reported in `batchItemFailures`, so SQS redelivers
//! it after the visibility timeout and dead-letters it past
//! maxReceiveCount; clients drop the resulting duplicates by event id.

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::join_all;

use crate::ids::ConnectionId;
use crate::plan::DeliveryJob;
use crate::ports::{ConnectionPoster, ConnectionStore, PostError};

/// Default bound on in-flight posts per invocation.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

#[derive(Clone)]
pub struct BroadcasterDeps {
    pub store: Arc<dyn ConnectionStore>,
    pub poster: Arc<dyn ConnectionPoster>,
    pub settings: BroadcasterSettings,
}

#[derive(Debug, Clone)]
pub struct BroadcasterSettings {
    pub max_in_flight: usize,
}

impl Default for BroadcasterSettings {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// Counts for one job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    pub delivered: usize,
    pub gone: usize,
    pub retryable: usize,
    pub permanent: usize,
}

pub async fn handle(event: SqsEvent, deps: &BroadcasterDeps) -> SqsBatchResponse {
    let reports = join_all(event.records.iter().map(|r| deliver_record(r, deps))).await;
    let mut response = SqsBatchResponse::default();
    for (record, report) in event.records.iter().zip(reports) {
        let retry = match report {
            Ok(report) => report.retryable > 0,
            Err(error) => {
                tracing::error!(%error, message_id = ?record.message_id, "unreadable delivery job");
                true
            }
        };
        if retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

async fn deliver_record(
    record: &SqsMessage,
    deps: &BroadcasterDeps,
) -> Result<JobReport, serde_json::Error> {
    let job: DeliveryJob = serde_json::from_str(record.body.as_deref().unwrap_or(""))?;
    let report = deliver(&job, deps).await;
    tracing::info!(event_id = %job.event_id, attempt = job.attempt, delivered = report.delivered,
        gone = report.gone, retryable = report.retryable, permanent = report.permanent, "delivered job");
    Ok(report)
}

/// Posts one job's frame to each of its connections.
pub async fn deliver(job: &DeliveryJob, deps: &BroadcasterDeps) -> JobReport {
    // One copy of the frame per job; every post shares it.
    let frame = Bytes::copy_from_slice(job.frame.get().as_bytes());
    let poster = deps.poster.as_ref();
    let limit = deps.settings.max_in_flight.max(1);
    // The futures are built up front (not by a closure inside the stream)
    // so the stream's type holds no higher-ranked closure and stays `Send`.
    let posts: Vec<_> = job
        .connections
        .iter()
        .map(|id| {
            let frame = frame.clone();
            async move { (id, poster.post(id, &frame).await) }
        })
        .collect();
    let outcomes: Vec<(&ConnectionId, Result<(), PostError>)> = futures::stream::iter(posts)
        .buffer_unordered(limit)
        .collect()
        .await;

    let mut report = JobReport::default();
    let mut gone = Vec::new();
    for (id, outcome) in outcomes {
        match outcome {
            Ok(()) => report.delivered += 1,
            Err(PostError::Gone) => gone.push(id),
            Err(error @ (PostError::Throttled(_) | PostError::Transport(_))) => {
                tracing::warn!(event_id = %job.event_id, connection_id = %id, %error, "post failed; will retry");
                report.retryable += 1;
            }
            Err(PostError::Http {
                status,
                ref message,
            }) if status >= 500 => {
                tracing::warn!(event_id = %job.event_id, connection_id = %id, status, %message, "post failed; will retry");
                report.retryable += 1;
            }
            Err(error) => {
                tracing::error!(event_id = %job.event_id, connection_id = %id, %error, "post failed permanently");
                report.permanent += 1;
            }
        }
    }
    report.gone = gone.len();
    let store = deps.store.as_ref();
    let deletes: Vec<_> = gone
        .into_iter()
        .map(|id| async move {
            if let Err(error) = store.delete_connection(id).await {
                // Its TTL will remove it; the next 410 will try again.
                tracing::error!(connection_id = %id, %error, "could not delete gone connection");
            }
        })
        .collect();
    futures::stream::iter(deletes)
        .buffer_unordered(limit)
        .collect::<Vec<()>>()
        .await;
    report
}
