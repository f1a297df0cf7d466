//! The messages a job leaves behind: re-enqueued jobs (the same frame, the
//! remaining connections, a later attempt) and dead-lettered jobs (with
//! why), cut to fit one SQS message each and sent together at the job's end.

use std::time::Duration;

use serde_json::value::RawValue;

use super::BroadcasterDeps;
use crate::clock::rfc3339_ms;
use crate::ids::ConnectionId;
use crate::plan::{DeadLetter, DeadLetterReason, JobHead, PlanError, cut_jobs};
use crate::ports::{OutgoingMessage, QueueError, send_all};
use crate::settings::JobSettings;

/// Connections that failed for one reason.
#[derive(Default)]
pub(super) struct Failures<'a> {
    pub ids: Vec<&'a ConnectionId>,
    /// The last error message, for on-call.
    pub detail: String,
}

impl<'a> Failures<'a> {
    pub fn add(&mut self, id: &'a ConnectionId, detail: String) {
        self.ids.push(id);
        self.detail = detail;
    }
}

/// Messages a job leaves behind, sent together at its end.
#[derive(Default)]
pub(super) struct FollowUps {
    requeue: Vec<OutgoingMessage>,
    dead_letter: Vec<OutgoingMessage>,
}

impl FollowUps {
    pub fn requeue(
        &mut self,
        head: &JobHead<'_>,
        attempt: u32,
        delay: Duration,
        frame: &RawValue,
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

    pub fn dead_letter(
        &mut self,
        head: &JobHead<'_>,
        reason: DeadLetterReason,
        code: &str,
        failures: &Failures<'_>,
        frame: &RawValue,
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

    pub async fn send(self, deps: &BroadcasterDeps) -> Result<(), QueueError> {
        if !self.requeue.is_empty() {
            send_all(deps.deliver_queue.as_ref(), &self.requeue).await?;
        }
        if !self.dead_letter.is_empty() {
            send_all(deps.dead_letter_queue.as_ref(), &self.dead_letter).await?;
        }
        Ok(())
    }
}
