//! The broadcaster (deliver queue consumer). For each delivery job it posts
//! the frame to every connection, at most `max_in_flight` at a time and no
//! faster than this worker's share of the account's @connections budget.
//! Every answer is classified ([`crate::outcome`]):
//! - delivered: done;
//! - gone (410): the connection and its memberships are deleted, in one
//!   batch per job;
//! - retryable (429, 5xx, timeouts): tried again within the invocation
//!   after a full-jitter backoff; still failing, re-enqueued as a smaller
//!   job (attempt + 1, delayed); past the maximum attempts, dead-lettered;
//! - permanent (413, 403, other 4xx): dead-lettered with the reason. A 403
//!   is logged and counted as a misconfiguration.
//!
//! It stops starting posts a margin before the invocation's deadline and
//! re-enqueues what it did not reach. A job no broadcaster can read goes to
//! the dead-letter queue at once. A record is reported in
//! `batchItemFailures` only when its follow-up messages could not be sent,
//! so SQS redelivers exactly those.

//!
//! Layout: [`decision`] is the pure per-connection decision, `post_loop`
//! the posting, `follow_ups` the re-enqueued and dead-lettered jobs; this
//! module ties them together per job.

pub mod decision;
mod follow_ups;
mod post_loop;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use futures::future::join_all;
use tokio::time::Instant;
use tracing::Instrument;

use self::decision::{Decision, TryContext, decide};
use self::follow_ups::{Failures, FollowUps};
use self::post_loop::{error_text, post_round};
use crate::clock::Clock;
use crate::handlers::dead_letter_at_once;
use crate::ids::ConnectionId;
use crate::limits::SQS_MAX_DELAY;
use crate::metrics::{self, Metric, MetricsSink};
use crate::outcome::{Outcome, RetryReason, classify};
use crate::plan::{DeadLetterReason, DeliveryJob, PlanError};
use crate::ports::{ConnectionPoster, ConnectionStore, Queue, QueueError};
use crate::rate::RateGate;
pub use crate::settings::{BroadcasterSettings, JobSettings};

/// The function name in metrics.
pub const FUNCTION: &str = "broadcaster";

#[derive(Clone)]
pub struct BroadcasterDeps {
    pub store: Arc<dyn ConnectionStore>,
    pub poster: Arc<dyn ConnectionPoster>,
    /// Where retries are re-enqueued.
    pub deliver_queue: Arc<dyn Queue>,
    /// Where jobs go that cannot be delivered.
    pub dead_letter_queue: Arc<dyn Queue>,
    /// This worker's share of the account's @connections budget; `None`
    /// posts as fast as `max_in_flight` allows.
    pub gate: Option<Arc<RateGate>>,
    pub metrics: Arc<dyn MetricsSink>,
    pub clock: Arc<dyn Clock>,
    pub settings: BroadcasterSettings,
    /// How re-enqueued and dead-lettered jobs are cut.
    pub jobs: JobSettings,
}

/// What happened to one job's connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    pub delivered: usize,
    /// Answered 410; deleted.
    pub gone: usize,
    /// 429 answers (each try counts).
    pub throttled: usize,
    /// Posts tried again within the invocation.
    pub retried: usize,
    /// Permanent failures (dead-lettered).
    pub failed: usize,
    /// 403 answers: the deployment is misconfigured.
    pub misconfigured: usize,
    /// Connections re-enqueued for a later attempt.
    pub requeued: usize,
    /// Connections not reached before the deadline, re-enqueued.
    pub deferred: usize,
    /// Connections dead-lettered (permanent or out of attempts).
    pub dead_lettered: usize,
    /// Publish-to-post time of the job's last delivered post.
    pub latency_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("the delivery job is not valid JSON of the expected shape: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error("could not cut the follow-up job: {0}")]
    Plan(#[from] PlanError),
    #[error("could not send the follow-up job: {0}")]
    Queue(#[from] QueueError),
}

/// Delivers every record's job; see the module docs.
pub async fn handle(
    event: SqsEvent,
    deadline: Instant,
    deps: &BroadcasterDeps,
) -> SqsBatchResponse {
    let results = join_all(
        event
            .records
            .iter()
            .map(|r| deliver_record(r, deadline, deps)),
    )
    .await;
    let mut response = SqsBatchResponse::default();
    for (record, result) in event.records.iter().zip(results) {
        let Err(error) = result else { continue };
        let message_id = record.message_id.clone().unwrap_or_default();
        if let DeliverError::Unreadable(_) = &error
            && dead_letter_unreadable(record, &error, deps).await
        {
            continue;
        }
        tracing::error!(%error, %message_id, "delivery job returned to the queue");
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message_id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// Sends a job no broadcaster can read to the dead-letter queue at once
/// (retrying cannot fix it). Returns whether it was accepted.
async fn dead_letter_unreadable(
    record: &SqsMessage,
    error: &DeliverError,
    deps: &BroadcasterDeps,
) -> bool {
    let queue = deps.dead_letter_queue.as_ref();
    match dead_letter_at_once(queue, record, "unreadable_job", &error.to_string(), None).await {
        Ok(()) => {
            tracing::error!(%error, message_id = record.message_id.as_deref().unwrap_or(""),
                dead_letter_queue = deps.dead_letter_queue.name(),
                "unreadable delivery job sent to the dead-letter queue at once");
            true
        }
        Err(send_error) => {
            tracing::error!(%error, %send_error, "could not dead-letter an unreadable job");
            false
        }
    }
}

async fn deliver_record(
    record: &SqsMessage,
    deadline: Instant,
    deps: &BroadcasterDeps,
) -> Result<JobReport, DeliverError> {
    let job: DeliveryJob = serde_json::from_str(record.body.as_deref().unwrap_or(""))?;
    let span = tracing::info_span!("job", event_id = %job.event_id, attempt = job.attempt);
    deliver(&job, deadline, deps).instrument(span).await
}

/// Delivers one job and sends its follow-ups (retries, dead letters).
pub async fn deliver(
    job: &DeliveryJob,
    deadline: Instant,
    deps: &BroadcasterDeps,
) -> Result<JobReport, DeliverError> {
    let settings = &deps.settings;
    let mut head = job.head();
    if let Some(dead_letter) = &job.dead_letter {
        tracing::info!(reason = ?dead_letter.reason, code = %dead_letter.code,
            "job redriven from the dead-letter queue; its attempts start over");
        head.attempt = 1;
        head.dead_letter = None;
    }
    // One copy of the frame per job; every post shares it.
    let frame = Bytes::copy_from_slice(job.frame.get().as_bytes());
    let stop_at = deadline
        .checked_sub(settings.deadline_margin)
        .unwrap_or(deadline);

    let mut report = JobReport::default();
    let mut gone: Vec<ConnectionId> = Vec::new();
    // Where the connections that leave this invocation go, by reason: every
    // reason is kept, not only the last one seen.
    let mut requeue: BTreeMap<&'static str, Failures> = BTreeMap::new();
    let mut dead: BTreeMap<(DeadLetterReason, &'static str), Failures> = BTreeMap::new();
    let mut not_started: Vec<&ConnectionId> = Vec::new();
    let mut pending: Vec<&ConnectionId> = job.connections.iter().collect();
    let mut try_number = 1;
    while !pending.is_empty() {
        let round = post_round(&pending, &frame, stop_at, deps).await;
        not_started.extend(round.not_started);
        let delay = settings.retry_backoff.jittered(try_number);
        let context = TryContext {
            try_number,
            tries_per_invocation: settings.tries_per_invocation.max(1),
            attempt: head.attempt,
            max_attempts: settings.max_attempts,
            time_for_another_try: Instant::now() + delay < stop_at,
        };
        let delivered_before = report.delivered;
        let mut retry = Vec::new();
        for (id, result) in round.finished {
            let outcome = classify(&result);
            if outcome == Outcome::Retryable(RetryReason::Throttled) {
                report.throttled += 1;
            }
            match decide(outcome, &context) {
                Decision::Delivered => report.delivered += 1,
                Decision::Gone => gone.push(id.clone()),
                Decision::RetryNow => retry.push(id),
                Decision::Requeue { code } => {
                    requeue
                        .entry(code)
                        .or_default()
                        .add(id, error_text(&result));
                }
                Decision::DeadLetter { reason, code } => {
                    let detail = error_text(&result);
                    if reason == DeadLetterReason::Permanent {
                        report.failed += 1;
                        if matches!(outcome, Outcome::Permanent(p) if p.is_misconfiguration()) {
                            report.misconfigured += 1;
                            tracing::error!(connection_id = %id, %detail,
                                "@connections answered 403: the deployment is misconfigured (endpoint or execute-api:ManageConnections)");
                        } else {
                            tracing::warn!(connection_id = %id, code, %detail, "post failed permanently");
                        }
                    }
                    dead.entry((reason, code)).or_default().add(id, detail);
                }
            }
        }
        // One clock read per round, not per post: the round's last post
        // finished just now.
        if report.delivered > delivered_before
            && let Some(published) = head.published_at_ms
        {
            report.latency_ms = Some(deps.clock.now_ms() - published);
        }
        if retry.is_empty() {
            break;
        }
        report.retried += retry.len();
        tokio::time::sleep(delay).await;
        pending = retry;
        try_number += 1;
    }

    delete_gone(&gone, deps).await;
    report.gone = gone.len();

    let mut follow_ups = FollowUps::default();
    if !not_started.is_empty() {
        // Not a failure: the same attempt, right away, in another invocation.
        report.deferred = not_started.len();
        tracing::info!(
            connections = not_started.len(),
            "deadline near; re-enqueueing the rest of the job"
        );
        follow_ups.requeue(
            &head,
            head.attempt,
            Duration::ZERO,
            &job.frame,
            &not_started,
            &deps.jobs,
        )?;
    }
    let requeued: Vec<&ConnectionId> = requeue
        .values()
        .flat_map(|f| f.ids.iter().copied())
        .collect();
    if !requeued.is_empty() {
        let delay = settings
            .requeue_backoff
            .jittered(head.attempt)
            .min(SQS_MAX_DELAY);
        report.requeued = requeued.len();
        for (code, failures) in &requeue {
            tracing::warn!(connections = failures.ids.len(), code, detail = %failures.detail,
                ?delay, next_attempt = head.attempt + 1, "posts still failing; re-enqueueing them");
        }
        follow_ups.requeue(
            &head,
            head.attempt + 1,
            delay,
            &job.frame,
            &requeued,
            &deps.jobs,
        )?;
    }
    for ((reason, code), failures) in &dead {
        report.dead_lettered += failures.ids.len();
        follow_ups.dead_letter(&head, *reason, code, failures, &job.frame, deps)?;
    }
    follow_ups.send(deps).await?;

    record_metrics(job, &report, deps);
    tracing::info!(
        delivered = report.delivered,
        gone = report.gone,
        throttled = report.throttled,
        retried = report.retried,
        requeued = report.requeued,
        deferred = report.deferred,
        dead_lettered = report.dead_lettered,
        "job done"
    );
    Ok(report)
}

/// Deletes every gone connection's item in one batch (the sweeper does
/// the rest for each). A failure is logged: the items' heartbeat deadline
/// removes them, and the next 410 tries again.
async fn delete_gone(gone: &[ConnectionId], deps: &BroadcasterDeps) {
    if gone.is_empty() {
        return;
    }
    match deps.store.delete_connections(gone).await {
        Ok(()) => tracing::info!(gone = gone.len(), "deleted gone connections"),
        Err(error) => {
            tracing::error!(gone = gone.len(), %error, "could not delete gone connections")
        }
    }
}

fn record_metrics(job: &DeliveryJob, report: &JobReport, deps: &BroadcasterDeps) {
    let mut m = vec![
        Metric::count(metrics::DELIVERED, report.delivered),
        Metric::count(metrics::GONE, report.gone),
        Metric::count(metrics::THROTTLED, report.throttled),
        Metric::count(metrics::RETRIED, report.retried),
        Metric::count(metrics::FAILED, report.failed),
        Metric::count(metrics::MISCONFIGURED, report.misconfigured),
        Metric::count(metrics::REQUEUED, report.requeued + report.deferred),
        Metric::count(metrics::DEAD_LETTERED, report.dead_lettered),
    ];
    if let Some(latency) = report.latency_ms {
        m.push(Metric::millis(metrics::PUBLISH_TO_POST_LATENCY, latency));
    }
    deps.metrics.record(FUNCTION, &job.event_id, &m);
}
