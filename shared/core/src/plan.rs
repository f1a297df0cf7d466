//! Pure planning: the delivery-job format, cutting a target's connections
//! into jobs that fit one SQS message. No I/O.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ids::ConnectionId;

/// One unit of work for a broadcaster: a frame and the connections to post
/// it to. The frame is embedded as raw JSON, so the broadcaster hands its
/// bytes to the poster without re-serializing.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryJob {
    pub event_id: String,
    /// 1 for the planner's jobs; each re-enqueue adds one.
    pub attempt: u32,
    /// When the event was published, ms since the epoch (for the
    /// publish-to-post latency metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at_ms: Option<i64>,
    /// Set on jobs in the deliver dead-letter queue: why they are there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
    pub connections: Vec<ConnectionId>,
    pub frame: Box<RawValue>,
}

/// Why a job was dead-lettered. A job redriven from the dead-letter queue
/// still carries it, which tells the broadcaster to start its attempts over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub reason: DeadLetterReason,
    /// The outcome code of the last failure (`throttled`, `forbidden`, …).
    pub code: String,
    /// The last error message, for on-call.
    pub detail: String,
    /// Attempts made before giving up.
    pub attempts: u32,
    /// RFC 3339 time it was dead-lettered.
    pub at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// Still failing with a retryable error after the maximum attempts.
    RetriesExhausted,
    /// Failed with an error retrying cannot fix (403, 413, other 4xx).
    Permanent,
}

/// Message attributes of a record dead-lettered because retrying cannot
/// fix it (an event that is not one, an invalid detail, an unreadable job):
/// a stable reason code, the error, and the event id when it is known.
pub const DEAD_LETTER_REASON: &str = "FANOUT_REASON";
pub const DEAD_LETTER_DETAIL: &str = "FANOUT_DETAIL";
pub const DEAD_LETTER_EVENT_ID: &str = "FANOUT_EVENT_ID";

/// Everything in a job except its connections and frame.
#[derive(Debug, Clone, Copy)]
pub struct JobHead<'a> {
    pub event_id: &'a str,
    pub attempt: u32,
    pub published_at_ms: Option<i64>,
    pub dead_letter: Option<&'a DeadLetter>,
}

impl<'a> JobHead<'a> {
    /// A first-attempt job head.
    pub fn new(event_id: &'a str, published_at_ms: Option<i64>) -> Self {
        Self {
            event_id,
            attempt: 1,
            published_at_ms,
            dead_letter: None,
        }
    }
}

impl DeliveryJob {
    pub fn head(&self) -> JobHead<'_> {
        JobHead {
            event_id: &self.event_id,
            attempt: self.attempt,
            published_at_ms: self.published_at_ms,
            dead_letter: self.dead_letter.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "the frame alone is {frame_bytes} bytes; a delivery job must fit {budget} bytes with at least one connection id"
    )]
    FrameTooLarge { frame_bytes: usize, budget: usize },
}

/// Bytes one more connection id adds to a job body: the id, its quotes and
/// a comma. Ids are validated to need no JSON escaping.
fn id_cost(id: &ConnectionId) -> usize {
    id.as_str().len() + 3
}

/// Cuts `connections` into job bodies of at most `budget` bytes and at most
/// `max_per_job` ids each. `frame` is serialized once by the caller.
pub fn cut_jobs(
    head: &JobHead<'_>,
    frame: &RawValue,
    connections: &[ConnectionId],
    budget: usize,
    max_per_job: usize,
) -> Result<Vec<String>, PlanError> {
    let empty = job_body(head, frame, &[]);
    let max_id_cost = connections.iter().map(id_cost).max().unwrap_or(0);
    if empty.len() + max_id_cost > budget {
        return Err(PlanError::FrameTooLarge {
            frame_bytes: frame.get().len(),
            budget,
        });
    }
    let mut bodies = Vec::new();
    let mut start = 0;
    while start < connections.len() {
        let mut size = empty.len();
        let mut end = start;
        while end < connections.len()
            && end - start < max_per_job.max(1)
            && size + id_cost(&connections[end]) <= budget
        {
            size += id_cost(&connections[end]);
            end += 1;
        }
        bodies.push(job_body(head, frame, &connections[start..end]));
        start = end;
    }
    Ok(bodies)
}

fn job_body(head: &JobHead<'_>, frame: &RawValue, connections: &[ConnectionId]) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct JobRef<'a> {
        event_id: &'a str,
        attempt: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        published_at_ms: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        dead_letter: Option<&'a DeadLetter>,
        connections: &'a [ConnectionId],
        frame: &'a RawValue,
    }
    serde_json::to_string(&JobRef {
        event_id: head.event_id,
        attempt: head.attempt,
        published_at_ms: head.published_at_ms,
        dead_letter: head.dead_letter,
        connections,
        frame,
    })
    .expect("a job of strings, numbers and raw JSON always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::SQS_MAX_MESSAGE_BYTES;

    fn ids(n: usize) -> Vec<ConnectionId> {
        (0..n)
            .map(|i| ConnectionId::new(format!("conn{i:012}=")).unwrap())
            .collect()
    }

    fn frame(bytes: usize) -> Box<RawValue> {
        RawValue::from_string(format!("{{\"data\":\"{}\"}}", "x".repeat(bytes))).unwrap()
    }

    #[test]
    fn every_job_fits_and_every_connection_is_planned_once() {
        let conns = ids(20_000);
        let f = frame(100_000);
        let bodies = cut_jobs(
            &JobHead::new("e1", None),
            &f,
            &conns,
            SQS_MAX_MESSAGE_BYTES,
            10_000,
        )
        .unwrap();
        assert!(bodies.len() > 1);
        let mut seen = Vec::new();
        for body in &bodies {
            assert!(body.len() <= SQS_MAX_MESSAGE_BYTES, "{}", body.len());
            let job: DeliveryJob = serde_json::from_str(body).unwrap();
            assert_eq!(job.frame.get(), f.get());
            assert_eq!(job.event_id, "e1");
            seen.extend(job.connections);
        }
        assert_eq!(seen, conns);
    }

    #[test]
    fn jobs_are_packed_close_to_the_budget() {
        let conns = ids(20_000);
        let f = frame(1_000);
        let budget = 64 * 1024;
        let bodies = cut_jobs(&JobHead::new("e1", None), &f, &conns, budget, usize::MAX).unwrap();
        for body in &bodies[..bodies.len() - 1] {
            assert!(
                body.len() > budget - 32,
                "under-filled job of {}",
                body.len()
            );
        }
    }

    #[test]
    fn max_per_job_caps_ids() {
        let bodies = cut_jobs(
            &JobHead::new("e", None),
            &frame(10),
            &ids(1_001),
            256 * 1024,
            500,
        )
        .unwrap();
        assert_eq!(bodies.len(), 3);
        let last: DeliveryJob = serde_json::from_str(&bodies[2]).unwrap();
        assert_eq!(last.connections.len(), 1);
    }

    #[test]
    fn no_connections_means_no_jobs() {
        assert!(
            cut_jobs(&JobHead::new("e", None), &frame(10), &[], 1024, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_frame_that_cannot_fit_is_an_error() {
        let err =
            cut_jobs(&JobHead::new("e", None), &frame(2_000), &ids(1), 1_000, 10).unwrap_err();
        assert!(matches!(
            err,
            PlanError::FrameTooLarge { budget: 1_000, .. }
        ));
    }
}
