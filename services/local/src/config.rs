//! The local stack's configuration: command-line flags (with environment
//! fallbacks where a deployment would use one), read once at start-up.
//! Defaults are the AWS limits and the settings the SAM template deploys.

use std::time::Duration;

use clap::Parser;
use fanout::limits::{
    DEFAULT_MAX_CONNECTIONS_PER_JOB, DEFAULT_ROOM_SHARDS, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
};
use fanout::token::parse_duration;

/// Run the whole fanout system in one process on 127.0.0.1: a WebSocket
/// endpoint that behaves like API Gateway, its @connections management API,
/// an EventBridge-compatible PutEvents endpoint, and the planner and
/// broadcaster driven like Lambda event source mappings. No AWS account.
#[derive(Debug, Clone, Parser)]
#[command(name = "fanout-local", version, about, long_about = None)]
pub struct StackConfig {
    /// Port on 127.0.0.1 for every endpoint (0 picks a free one).
    #[arg(long, default_value_t = 3001)]
    pub port: u16,

    /// Stage name: the WebSocket URL is ws://127.0.0.1:<port>/<stage>.
    #[arg(long, default_value = "local")]
    pub stage: String,

    /// HS256 secret for client tokens. Defaults to the documented
    /// development secret (the CLI's `fanout token` uses the same one).
    #[arg(long, env = "FANOUT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Close connections with no client traffic for this long (e.g. 10m).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub idle_timeout: Duration,

    /// Close every connection after this long (e.g. 2h).
    #[arg(long, value_parser = parse_duration, default_value = "2h")]
    pub max_connection_duration: Duration,

    /// Largest single WebSocket frame from a client; larger closes with 1009.
    #[arg(long, default_value_t = MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Largest WebSocket message from a client; larger closes with 1009.
    #[arg(long, default_value_t = MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Largest `data` a client may publish (serialized); larger gets a
    /// `payload_too_large` error frame.
    #[arg(long, default_value_t = MAX_PAYLOAD_BYTES)]
    pub max_payload_bytes: usize,

    /// Shards each room's memberships are spread over.
    #[arg(long, default_value_t = DEFAULT_ROOM_SHARDS)]
    pub shards: u32,

    /// Most connection ids in one delivery job.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS_PER_JOB)]
    pub max_connections_per_job: usize,

    /// Planner event source mapping: messages per invocation.
    #[arg(long, default_value_t = 10)]
    pub planner_batch_size: usize,

    /// Planner event source mapping: concurrent invocations.
    #[arg(long, default_value_t = 2)]
    pub planner_concurrency: usize,

    /// Broadcaster event source mapping: messages per invocation.
    #[arg(long, default_value_t = 10)]
    pub broadcaster_batch_size: usize,

    /// Broadcaster event source mapping: concurrent invocations.
    #[arg(long, default_value_t = 8)]
    pub broadcaster_concurrency: usize,

    /// Both mappings: how long to gather a batch (0 = invoke at once).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub batching_window: Duration,

    /// Visibility timeout of the plan and deliver queues.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub visibility_timeout: Duration,

    /// Receives before a message moves to its queue's dead-letter queue.
    #[arg(long, default_value_t = 5)]
    pub max_receive_count: u32,

    /// In-flight @connections posts per broadcaster invocation.
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
}

impl StackConfig {
    /// The defaults, as `fanout-local` with no flags would run.
    pub fn defaults() -> Self {
        Self::parse_from(["fanout-local"])
    }

    /// Fails with a message naming the flag when a value cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--max-frame-bytes", self.max_frame_bytes),
            ("--max-message-bytes", self.max_message_bytes),
            ("--max-payload-bytes", self.max_payload_bytes),
            ("--max-connections-per-job", self.max_connections_per_job),
            ("--planner-batch-size", self.planner_batch_size),
            ("--planner-concurrency", self.planner_concurrency),
            ("--broadcaster-batch-size", self.broadcaster_batch_size),
            ("--broadcaster-concurrency", self.broadcaster_concurrency),
            ("--max-in-flight", self.max_in_flight),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{flag} must be at least 1"));
        }
        if self.shards == 0 {
            return Err("--shards must be at least 1".into());
        }
        if self.max_receive_count == 0 {
            return Err("--max-receive-count must be at least 1".into());
        }
        if self.stage.is_empty()
            || !self
                .stage
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "--stage '{}' must be letters, digits, - or _",
                self.stage
            ));
        }
        if self.idle_timeout.is_zero() || self.max_connection_duration.is_zero() {
            return Err("--idle-timeout and --max-connection-duration must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout::limits::{CONNECTION_IDLE_TIMEOUT, CONNECTION_MAX_DURATION};

    #[test]
    fn defaults_follow_aws_limits() {
        let c = StackConfig::defaults();
        assert_eq!(c.port, 3001);
        assert_eq!(c.stage, "local");
        assert_eq!(c.idle_timeout, CONNECTION_IDLE_TIMEOUT);
        assert_eq!(c.max_connection_duration, CONNECTION_MAX_DURATION);
        assert_eq!(c.max_frame_bytes, 32 * 1024);
        assert_eq!(c.max_message_bytes, 128 * 1024);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn invalid_values_name_the_flag() {
        let c = StackConfig::parse_from(["fanout-local", "--shards", "0"]);
        assert_eq!(c.validate().unwrap_err(), "--shards must be at least 1");
        let c = StackConfig::parse_from(["fanout-local", "--max-in-flight", "0"]);
        assert!(c.validate().unwrap_err().contains("--max-in-flight"));
        assert!(StackConfig::try_parse_from(["fanout-local", "--idle-timeout", "soon"]).is_err());
    }
}
