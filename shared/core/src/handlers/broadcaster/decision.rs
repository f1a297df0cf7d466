//! What the broadcaster does about one connection after one post: deliver,
//! forget (gone), try again now, re-enqueue for a later attempt, or
//! dead-letter, with the reason. Pure: no I/O, no clock, table-tested.

use crate::outcome::Outcome;
use crate::plan::DeadLetterReason;

/// Where a connection stands in its job's life when a post answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryContext {
    /// This invocation's try (1-based).
    pub try_number: u32,
    /// Tries allowed per invocation.
    pub tries_per_invocation: u32,
    /// The job's attempt (1 for the planner's jobs; each re-enqueue adds 1).
    pub attempt: u32,
    /// Attempts before a still-failing post is dead-lettered.
    pub max_attempts: u32,
    /// Whether another try's backoff still ends before the deadline margin.
    pub time_for_another_try: bool,
}

/// The decision for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    /// 410: delete the connection and its memberships.
    Gone,
    /// Post again in this invocation, after a backoff.
    RetryNow,
    /// Re-enqueue in a job with `attempt + 1`, delayed.
    Requeue {
        code: &'static str,
    },
    /// Send to the deliver dead-letter queue with this reason and code.
    DeadLetter {
        reason: DeadLetterReason,
        code: &'static str,
    },
}

/// Decides what happens to a connection whose post ended in `outcome`.
pub fn decide(outcome: Outcome, at: &TryContext) -> Decision {
    match outcome {
        Outcome::Delivered => Decision::Delivered,
        Outcome::Gone => Decision::Gone,
        Outcome::Permanent(reason) => Decision::DeadLetter {
            reason: DeadLetterReason::Permanent,
            code: reason.code(),
        },
        Outcome::Retryable(reason) => {
            if at.try_number < at.tries_per_invocation && at.time_for_another_try {
                Decision::RetryNow
            } else if at.attempt < at.max_attempts {
                Decision::Requeue {
                    code: reason.code(),
                }
            } else {
                Decision::DeadLetter {
                    reason: DeadLetterReason::RetriesExhausted,
                    code: reason.code(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{PermanentReason, RetryReason};

    fn at(try_number: u32, attempt: u32, time: bool) -> TryContext {
        TryContext {
            try_number,
            tries_per_invocation: 3,
            attempt,
            max_attempts: 5,
            time_for_another_try: time,
        }
    }

    #[test]
    fn decisions() {
        use Decision::*;
        let throttled = Outcome::Retryable(RetryReason::Throttled);
        let transport = Outcome::Retryable(RetryReason::Transport);
        let forbidden = Outcome::Permanent(PermanentReason::Forbidden);
        let too_large = Outcome::Permanent(PermanentReason::PayloadTooLarge);
        let exhausted = |code| DeadLetter {
            reason: DeadLetterReason::RetriesExhausted,
            code,
        };
        let permanent = |code| DeadLetter {
            reason: DeadLetterReason::Permanent,
            code,
        };
        let table = [
            // (outcome, try, attempt, time left, decision)
            (Outcome::Delivered, 1, 1, true, Delivered),
            (Outcome::Delivered, 3, 5, false, Delivered),
            (Outcome::Gone, 1, 1, true, Gone),
            (Outcome::Gone, 3, 5, false, Gone),
            // Retryable: again now while tries and time remain…
            (throttled, 1, 1, true, RetryNow),
            (throttled, 2, 5, true, RetryNow),
            // …then a later attempt…
            (throttled, 3, 1, true, Requeue { code: "throttled" }),
            (throttled, 1, 1, false, Requeue { code: "throttled" }),
            (transport, 3, 4, true, Requeue { code: "transport" }),
            // …and at the last attempt, the dead-letter queue.
            (throttled, 3, 5, true, exhausted("throttled")),
            (transport, 1, 5, false, exhausted("transport")),
            (transport, 3, 9, true, exhausted("transport")),
            // Permanent: dead-lettered at once, whatever is left.
            (forbidden, 1, 1, true, permanent("forbidden")),
            (too_large, 1, 1, true, permanent("payload_too_large")),
            (too_large, 3, 5, false, permanent("payload_too_large")),
        ];
        for (outcome, try_number, attempt, time, expected) in table {
            assert_eq!(
                decide(outcome, &at(try_number, attempt, time)),
                expected,
                "{outcome:?} on try {try_number}, attempt {attempt}, time left {time}"
            );
        }
    }

    #[test]
    fn one_try_per_invocation_never_retries_now() {
        let ctx = TryContext {
            tries_per_invocation: 1,
            ..at(1, 1, true)
        };
        assert_eq!(
            decide(Outcome::Retryable(RetryReason::ServerError), &ctx),
            Decision::Requeue {
                code: "server_error"
            }
        );
    }
}
