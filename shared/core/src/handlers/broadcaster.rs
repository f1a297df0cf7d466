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
//! re-enqueues what it did not reach. A record is reported in
//! `batchItemFailures` only when its follow-up messages could not be sent
//! (or the job is unreadable), so SQS redelivers exactly those.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tracing::Instrument;

use crate::clock::{Clock, rfc3339_ms};
use crate::ids::ConnectionId;
use crate::limits::SQS_MAX_DELAY;
use crate::metrics::{self, Metric, MetricsSink};
use crate::outcome::{Outcome, RetryReason, classify};
use crate::plan::{DeadLetter, DeadLetterReason, DeliveryJob, JobHead, PlanError, cut_jobs};
use crate::ports::{
    ConnectionPoster, ConnectionStore, OutgoingMessage, PostError, Queue, QueueError, send_all,
};
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
        if let Err(error) = result {
            let message_id = record.message_id.clone().unwrap_or_default();
            tracing::error!(%error, %message_id, "delivery job returned to the queue");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
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
    let mut permanent: BTreeMap<&'static str, Failures> = BTreeMap::new();
    let mut last_retryable: Option<(RetryReason, String)> = None;
    let mut pending: Vec<&ConnectionId> = job.connections.iter().collect();
    let mut not_started: Vec<&ConnectionId> = Vec::new();
    let tries = settings.tries_per_invocation.max(1);
    for try_number in 1..=tries {
        let round = post_round(&pending, &frame, stop_at, deps).await;
        not_started.extend(round.not_started);
        let delivered_before = report.delivered;
        let mut retry = Vec::new();
        for (id, result) in round.finished {
            match classify(&result) {
                Outcome::Delivered => report.delivered += 1,
                Outcome::Gone => gone.push(id.clone()),
                Outcome::Retryable(reason) => {
                    if reason == RetryReason::Throttled {
                        report.throttled += 1;
                    }
                    last_retryable = Some((reason, error_text(&result)));
                    retry.push(id);
                }
                Outcome::Permanent(reason) => {
                    let detail = error_text(&result);
                    if reason.is_misconfiguration() {
                        report.misconfigured += 1;
                        tracing::error!(connection_id = %id, %detail,
                            "@connections answered 403: the deployment is misconfigured (endpoint or execute-api:ManageConnections)");
                    } else {
                        tracing::warn!(connection_id = %id, code = reason.code(), %detail, "post failed permanently");
                    }
                    report.failed += 1;
                    permanent.entry(reason.code()).or_default().add(id, detail);
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
        pending = retry;
        if pending.is_empty() || try_number == tries {
            break;
        }
        let delay = settings.retry_backoff.jittered(try_number);
        if Instant::now() + delay >= stop_at {
            break;
        }
        report.retried += pending.len();
        tokio::time::sleep(delay).await;
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
    if let Some((reason, detail)) = last_retryable.filter(|_| !pending.is_empty()) {
        if head.attempt < settings.max_attempts {
            let delay = settings
                .requeue_backoff
                .jittered(head.attempt)
                .min(SQS_MAX_DELAY);
            report.requeued = pending.len();
            tracing::warn!(connections = pending.len(), code = reason.code(), %detail, ?delay,
                next_attempt = head.attempt + 1, "posts still failing; re-enqueueing them");
            follow_ups.requeue(
                &head,
                head.attempt + 1,
                delay,
                &job.frame,
                &pending,
                &deps.jobs,
            )?;
        } else {
            report.dead_lettered += pending.len();
            let failures = Failures {
                ids: pending,
                detail,
            };
            follow_ups.dead_letter(
                &head,
                DeadLetterReason::RetriesExhausted,
                reason.code(),
                &failures,
                &job.frame,
                deps,
            )?;
        }
    }
    for (code, failures) in &permanent {
        report.dead_lettered += failures.ids.len();
        follow_ups.dead_letter(
            &head,
            DeadLetterReason::Permanent,
            code,
            failures,
            &job.frame,
            deps,
        )?;
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

/// Connections that failed permanently for one reason.
#[derive(Default)]
struct Failures<'a> {
    ids: Vec<&'a ConnectionId>,
    /// The last error message, for on-call.
    detail: String,
}

impl<'a> Failures<'a> {
    fn add(&mut self, id: &'a ConnectionId, detail: String) {
        self.ids.push(id);
        self.detail = detail;
    }
}

/// Messages a job leaves behind, sent together at its end.
#[derive(Default)]
struct FollowUps {
    requeue: Vec<OutgoingMessage>,
    dead_letter: Vec<OutgoingMessage>,
}

impl FollowUps {
    fn requeue(
        &mut self,
        head: &JobHead<'_>,
        attempt: u32,
        delay: Duration,
        frame: &serde_json::value::RawValue,
        ids: &[&ConnectionId],
        jobs: &JobSettings,
    ) -> Result<(), PlanError> {
        let head = JobHead { attempt, ..*head };
        let ids: Vec<ConnectionId> = ids.iter().map(|&id| id.clone()).collect();
        for body in cut_jobs(
            &head,
            frame,
            &ids,
            jobs.job_budget_bytes,
            jobs.max_connections_per_job,
        )? {
            let id = self.requeue.len().to_string();
            self.requeue
                .push(OutgoingMessage::new(id, body).with_delay(delay));
        }
        Ok(())
    }

    fn dead_letter(
        &mut self,
        head: &JobHead<'_>,
        reason: DeadLetterReason,
        code: &str,
        failures: &Failures<'_>,
        frame: &serde_json::value::RawValue,
        deps: &BroadcasterDeps,
    ) -> Result<(), PlanError> {
        let dead_letter = DeadLetter {
            reason,
            code: code.to_string(),
            detail: failures.detail.clone(),
            attempts: head.attempt,
            at: rfc3339_ms(deps.clock.now_ms()),
        };
        tracing::error!(connections = failures.ids.len(), ?reason, code, detail = %failures.detail,
            dead_letter_queue = deps.dead_letter_queue.name(), "dead-lettering connections");
        let head = JobHead {
            dead_letter: Some(&dead_letter),
            ..*head
        };
        let ids: Vec<ConnectionId> = failures.ids.iter().map(|&id| id.clone()).collect();
        for body in cut_jobs(
            &head,
            frame,
            &ids,
            deps.jobs.job_budget_bytes,
            deps.jobs.max_connections_per_job,
        )? {
            let id = self.dead_letter.len().to_string();
            self.dead_letter.push(OutgoingMessage::new(id, body));
        }
        Ok(())
    }

    async fn send(self, deps: &BroadcasterDeps) -> Result<(), QueueError> {
        if !self.requeue.is_empty() {
            send_all(deps.deliver_queue.as_ref(), &self.requeue).await?;
        }
        if !self.dead_letter.is_empty() {
            send_all(deps.dead_letter_queue.as_ref(), &self.dead_letter).await?;
        }
        Ok(())
    }
}

/// The posts of one try: what finished, and what was never started
/// because the deadline came near.
struct Round<'a> {
    finished: Vec<(&'a ConnectionId, Result<(), PostError>)>,
    not_started: Vec<&'a ConnectionId>,
}

/// Posts `frame` to `ids`, at most `max_in_flight` at once, each after a
/// token from the worker's gate, starting none after `stop_at`.
async fn post_round<'a>(
    ids: &[&'a ConnectionId],
    frame: &Bytes,
    stop_at: Instant,
    deps: &BroadcasterDeps,
) -> Round<'a> {
    let poster = deps.poster.as_ref();
    let gate = deps.gate.as_deref();
    let timeout = deps.settings.post_timeout;
    let limit = deps.settings.max_in_flight.max(1);
    let mut in_flight = FuturesUnordered::new();
    let mut finished = Vec::with_capacity(ids.len());
    let mut next = 0;
    let mut stopped = false;
    loop {
        let may_start = !stopped && next < ids.len() && in_flight.len() < limit;
        if !may_start && in_flight.is_empty() {
            break;
        }
        // Completions first, so in-flight posts are never starved while
        // this loop waits for a token.
        tokio::select! {
            biased;
            Some(done) = in_flight.next(), if !in_flight.is_empty() => finished.push(done),
            admitted = admit(gate, stop_at), if may_start => {
                if admitted {
                    in_flight.push(post_one(poster, ids[next], frame, timeout));
                    next += 1;
                } else {
                    stopped = true;
                }
            }
        }
    }
    Round {
        finished,
        not_started: ids[next..].to_vec(),
    }
}

/// Whether one more post may start: before `stop_at`, with a token.
async fn admit(gate: Option<&RateGate>, stop_at: Instant) -> bool {
    if Instant::now() >= stop_at {
        return false;
    }
    match gate {
        None => true,
        Some(gate) => gate.acquire_before(stop_at).await,
    }
}

async fn post_one<'a>(
    poster: &dyn ConnectionPoster,
    id: &'a ConnectionId,
    frame: &Bytes,
    timeout: Duration,
) -> (&'a ConnectionId, Result<(), PostError>) {
    let result = match tokio::time::timeout(timeout, poster.post(id, frame)).await {
        Ok(result) => result,
        Err(_) => Err(PostError::Transport(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    };
    (id, result)
}

fn error_text(result: &Result<(), PostError>) -> String {
    match result {
        Ok(()) => String::new(),
        Err(error) => error.to_string(),
    }
}

/// Deletes every gone connection in one batch. A failure is logged: the
/// records' TTL removes them, and the next 410 tries again.
async fn delete_gone(gone: &[ConnectionId], deps: &BroadcasterDeps) {
    if gone.is_empty() {
        return;
    }
    match deps.store.delete_connections(gone).await {
        Ok(removed) => tracing::info!(
            gone = gone.len(),
            removed = removed.len(),
            "deleted gone connections"
        ),
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
