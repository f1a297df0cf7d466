//! AWS limits fanout designs to. The tunables that default to them are in
//! [`crate::settings`].

use std::time::Duration;

/// Added to every TTL so clock skew never expires a live record early.
pub const TTL_SLACK: Duration = Duration::from_secs(5 * 60);

/// Largest WebSocket message API Gateway accepts or posts (128 KB).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// Largest single WebSocket frame API Gateway accepts (32 KB).
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
/// Bytes reserved for the `message` frame's envelope (`type`, `id`, `room`,
/// `sentAt`), so a `data` payload that passes validation always yields a
/// frame that fits one 128 KB post.
pub const FRAME_ENVELOPE_RESERVE: usize = 1024;
/// Largest `data` payload, serialized, a broadcast may carry.
pub const MAX_PAYLOAD_BYTES: usize = MAX_MESSAGE_BYTES - FRAME_ENVELOPE_RESERVE;

/// SQS message size budget (256 KB; larger quotas exist but are opt-in).
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Entries per SendMessageBatch / DeleteMessageBatch.
pub const SQS_MAX_BATCH_ENTRIES: usize = 10;
/// Total payload of one SendMessageBatch call.
pub const SQS_MAX_BATCH_BYTES: usize = 256 * 1024;
/// Longest per-message delay SQS allows.
pub const SQS_MAX_DELAY: Duration = Duration::from_secs(900);
/// Longest visibility timeout SQS allows (12 h).
pub const SQS_MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(43_200);
/// Longest long-poll wait of one ReceiveMessage.
pub const SQS_MAX_WAIT: Duration = Duration::from_secs(20);

/// Checks a visibility timeout and a long-poll wait against SQS's ranges,
/// naming the parameter as SQS does.
pub fn check_sqs_receive(wait: Duration, visibility: Duration) -> Result<(), String> {
    if visibility > SQS_MAX_VISIBILITY_TIMEOUT {
        return Err(format!(
            "Value {} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and {}.",
            visibility.as_secs(),
            SQS_MAX_VISIBILITY_TIMEOUT.as_secs()
        ));
    }
    if wait > SQS_MAX_WAIT {
        return Err(format!(
            "Value {} for parameter WaitTimeSeconds is invalid. Reason: Must be between 0 and {}.",
            wait.as_secs(),
            SQS_MAX_WAIT.as_secs()
        ));
    }
    Ok(())
}

/// Entries per PutEvents call.
pub const EVENTBRIDGE_MAX_ENTRIES: usize = 10;
/// Largest PutEvents entry (Time + Source + DetailType + Detail + Resources).
pub const EVENTBRIDGE_MAX_ENTRY_BYTES: usize = 256 * 1024;

/// Connection record TTL: API Gateway can never keep a connection longer
/// than its max duration, so the record can go after that plus slack.
pub fn connection_ttl_secs(connected_at_ms: i64, max_duration: Duration) -> i64 {
    connected_at_ms.div_euclid(1000) + max_duration.as_secs() as i64 + TTL_SLACK.as_secs() as i64
}

/// The TTL of a connection's items: the earlier of its longest life and
/// its token's expiry, so reads stop finding it when either passes.
pub fn record_ttl_secs(connected_at_ms: i64, max_duration: Duration, token_expires_at: i64) -> i64 {
    connection_ttl_secs(connected_at_ms, max_duration).min(token_expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_that_expires_first_bounds_the_ttl() {
        let two_hours = Duration::from_secs(2 * 60 * 60);
        assert_eq!(record_ttl_secs(1_000_000, two_hours, 2_000), 2_000);
        assert_eq!(record_ttl_secs(1_000_000, two_hours, 99_999), 8_500);
    }

    #[test]
    fn ttl_is_connected_at_plus_two_hours_plus_slack() {
        assert_eq!(
            connection_ttl_secs(1_000_000, Duration::from_secs(2 * 60 * 60)),
            1_000 + 7_200 + 300
        );
    }
}
