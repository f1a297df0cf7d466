//! The local stack's configuration: command-line flags (with environment
//! fallbacks where a deployment would use one), read once at start-up.
//! Defaults are the AWS limits and the settings the SAM template deploys.

use std::time::Duration;

use clap::Parser;
use fanout_core::limits::{MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};
use fanout_core::rate::Rate;
use fanout_core::settings::{
    AbuseSettings, AuthSettings, BroadcasterSettings, BudgetSettings, GatewaySettings, JobSettings,
    MetricsSettings, PlannerSettings, PresenceSettings, StoreSettings, StreamSettings,
    parse_duration, positive_duration,
};

use crate::faults::FaultSettings;

/// Paths the local pages use (`web`); also refused as stage names.
pub const PAGE_PATHS: [&str; 4] = ["demo", "dashboard", "web", "sdk"];

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

    /// A connection must send a whole HTTP request head (the WebSocket
    /// upgrade or an API call) within this, or it is closed.
    #[arg(long, value_parser = positive_duration, default_value = "10s", value_name = "DURATION")]
    pub header_read_timeout: Duration,

    /// Open WebSocket connections at most; a `$connect` past it is refused
    /// with 503. Keep it under the process's open-file limit.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub max_connections: usize,

    /// TCP connections being served as HTTP (not yet upgraded) at once;
    /// past it new ones get 503 and are closed.
    #[arg(long, default_value_t = 1_024, value_name = "N")]
    pub max_pending_connections: usize,

    /// Close connections with no client traffic for this long (API
    /// Gateway's idle timeout is 10m).
    #[arg(long, value_parser = positive_duration, default_value = "10m")]
    pub idle_timeout: Duration,

    /// Largest single WebSocket frame from a client; larger closes with 1009.
    #[arg(long, default_value_t = MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Bytes of frames posted to one connection and not yet written to its
    /// socket; a post past this closes the connection with 1008 (it is
    /// not reading) and answers 410, so the pipeline deletes it.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_outbound_bytes: usize,

    /// Largest WebSocket message from a client; larger closes with 1009.
    #[arg(long, default_value_t = MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Planner event source mapping: messages per invocation.
    #[arg(long, default_value_t = 10)]
    pub planner_batch_size: usize,

    /// Planner event source mapping: concurrent invocations.
    #[arg(long, default_value_t = 2)]
    pub planner_concurrency: usize,

    /// Broadcaster event source mapping: messages per invocation. One job
    /// (up to 500 connections) per invocation keeps rate-limited workers
    /// evenly loaded; larger batches leave a tail where a few workers post
    /// while the rest idle.
    #[arg(long, default_value_t = 1)]
    pub broadcaster_batch_size: usize,

    /// Both mappings: how long to gather a batch (0 = invoke at once).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub batching_window: Duration,

    /// Planner function timeout: each invocation's deadline.
    #[arg(long, value_parser = positive_duration, default_value = "30s")]
    pub planner_timeout: Duration,

    /// Broadcaster function timeout: each invocation's deadline.
    #[arg(long, value_parser = positive_duration, default_value = "30s")]
    pub broadcaster_timeout: Duration,

    /// Sweeper stream mapping: change records per invocation (the
    /// template's SweeperBatchSize).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub sweeper_batch_size: usize,

    /// Sweeper stream mapping: retries of a failing batch before it is
    /// reported to the sweeper's dead-letter queue and skipped (the
    /// template's SweeperMaxRetryAttempts).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub sweeper_max_retry_attempts: u32,

    /// Sweeper function timeout: each invocation's deadline.
    #[arg(long, value_parser = positive_duration, default_value = "60s")]
    pub sweeper_timeout: Duration,

    /// Embedded store: how often connections whose heartbeat deadline
    /// passed are deleted, as DynamoDB's TTL does (on AWS that can lag
    /// by up to two days; reads filter them out meanwhile).
    #[arg(long, value_parser = positive_duration, default_value = "5s")]
    pub expiry_scan_interval: Duration,

    /// Visibility timeout of the plan and deliver queues (AWS advice: at
    /// least 6 × the function timeout). A crashed or timed-out
    /// invocation's messages come back after this.
    #[arg(long, value_parser = positive_duration, default_value = "180s")]
    pub visibility_timeout: Duration,

    /// Receives before a message moves to its queue's dead-letter queue.
    #[arg(long, default_value_t = 5)]
    pub max_receive_count: u32,

    /// The broadcast rule's target retry policy: retries after the first try.
    #[arg(long, default_value_t = 185)]
    pub bus_retry_attempts: u32,

    /// The broadcast rule's target retry policy: oldest event still retried.
    #[arg(long, value_parser = positive_duration, default_value = "1h")]
    pub bus_max_event_age: Duration,

    /// Fault injection: fraction (0–1) of @connections posts that answer
    /// 410 Gone and close the connection.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fault_gone: f64,

    /// Fault injection: fraction of posts that answer 429.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fault_throttle: f64,

    /// Fault injection: fraction of posts that answer 500.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fault_error: f64,

    /// Fault injection: latency added to every @connections call, in ms.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub fault_latency_ms: u64,

    /// Fault injection: fraction of planner and broadcaster invocations
    /// that panic (before or after doing their work).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fault_crash: f64,

    /// Seed for every fault decision (a fixed seed replays the same faults).
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,

    /// AWS-quota emulation: @connections calls per second before 429s
    /// (API Gateway's account default is 10,000). Off when not given.
    #[arg(long, value_name = "R")]
    pub quota_rps: Option<u32>,

    /// AWS-quota emulation: the bucket's burst (default: half of
    /// --quota-rps, as API Gateway's 10,000 / 5,000).
    #[arg(long, value_name = "B", requires = "quota_rps")]
    pub quota_burst: Option<u32>,

    /// Print CloudWatch Embedded Metric Format lines on stdout, as the
    /// Lambdas do.
    #[arg(long)]
    pub emf: bool,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten, next_help_heading = "Gateway")]
    pub gateway: GatewaySettings,

    #[command(flatten, next_help_heading = "Tokens and permissions")]
    pub auth: AuthSettings,

    #[command(flatten, next_help_heading = "Abuse limits")]
    pub abuse: AbuseSettings,

    #[command(flatten, next_help_heading = "Store")]
    pub store: StoreSettings,

    #[command(flatten, next_help_heading = "Delivery jobs")]
    pub jobs: JobSettings,

    #[command(flatten, next_help_heading = "Planner")]
    pub planner: PlannerSettings,

    #[command(flatten, next_help_heading = "Room streams (history and resume)")]
    pub stream: StreamSettings,

    #[command(flatten, next_help_heading = "Presence")]
    pub presence: PresenceSettings,

    #[command(flatten, next_help_heading = "Broadcaster")]
    pub broadcaster: BroadcasterSettings,

    #[command(flatten, next_help_heading = "@connections budget")]
    pub budget: BudgetSettings,

    #[command(flatten, next_help_heading = "Metrics (EMF, with --emf)")]
    pub metrics: MetricsSettings,

    /// Which adapters to run on: in-process (`embedded`), or DynamoDB,
    /// EventBridge and SQS (`aws`), creating the table, bus, rule, queues
    /// and dead-letter queues when missing. The gateway, @connections and
    /// the functions stay in this process either way.
    #[arg(long, value_enum, default_value_t = BackendKind::Embedded)]
    pub backend: BackendKind,

    /// With --backend aws: the AWS-compatible endpoint (e.g. moto's server,
    /// http://127.0.0.1:5000). Without it, the SDK's default endpoints
    /// (a real account, from the usual AWS environment variables).
    #[arg(long, value_name = "URL", value_parser = fanout_aws::parse_endpoint_url)]
    pub endpoint_url: Option<String>,

    /// With --backend aws: prefix for every resource name (several stacks
    /// on one endpoint).
    #[arg(long, default_value = "")]
    pub resource_prefix: String,

    /// The client SDK's build output, which the demo page (/demo) loads
    /// (default: clients/js/dist of the checkout this binary was built
    /// from).
    #[arg(long, env = "FANOUT_SDK_DIR", value_name = "DIR")]
    pub sdk_dir: Option<std::path::PathBuf>,

    /// With --backend aws: run the built Lambda bootstraps from DIR
    /// instead of the in-process handlers, each as child processes talking
    /// to a Lambda Runtime API this stack serves, with the environment the
    /// template gives it. DIR holds `fanout-<function>/bootstrap` (as
    /// `cargo lambda build` writes them) or `fanout-<function>` binaries
    /// (as `cargo build` does).
    #[arg(long, value_name = "DIR")]
    pub lambdas: Option<std::path::PathBuf>,

    /// With --lambdas: most execution environments (processes) per
    /// WebSocket function (authorizer, connect, disconnect, message); the
    /// planner and broadcaster get one per mapping worker, the sweeper
    /// one. Environments start on demand, like Lambda's cold starts.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub lambda_environments: usize,

    /// With --lambdas: the bootstraps' log level (`AWS_LAMBDA_LOG_LEVEL`);
    /// their lines are printed prefixed with the function's name.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub lambda_log_level: String,

    /// With --lambdas: a JSON object of each function's IAM role ARN
    /// (`{"connect": "arn:aws:iam::…:role/…", …}`). The stack assumes each
    /// role and the function runs with that role's credentials, as on
    /// Lambda, instead of the stack's own.
    #[arg(long, value_name = "FILE")]
    pub lambda_roles: Option<std::path::PathBuf>,

    /// With --lambdas and --endpoint-url: append every AWS call a function
    /// makes (its IAM action and exact resource, and the status it got;
    /// @connections calls included) to FILE as JSON lines, after a line
    /// with this stack's resource ARNs. Calls are told apart by the key
    /// they are signed with, so this needs --lambda-roles.
    #[arg(long, value_name = "FILE", requires = "lambda_roles")]
    pub lambda_call_log: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// In-process store, bus and queues (no account, the default).
    Embedded,
    /// DynamoDB, EventBridge and SQS through aws-sdk-rust.
    Aws,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (as the Lambdas log), with span fields
    /// such as the event id.
    Json,
}

impl StackConfig {
    /// The defaults, as `fanout-local` with no flags and no `FANOUT_*`
    /// variables would run.
    pub fn defaults() -> Self {
        fanout_core::settings::defaults()
    }

    /// Fails with a message naming the flag when a value cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--max-frame-bytes", self.max_frame_bytes),
            ("--max-message-bytes", self.max_message_bytes),
            ("--max-outbound-bytes", self.max_outbound_bytes),
            ("--max-connections", self.max_connections),
            ("--max-pending-connections", self.max_pending_connections),
            ("--planner-batch-size", self.planner_batch_size),
            ("--planner-concurrency", self.planner_concurrency),
            ("--broadcaster-batch-size", self.broadcaster_batch_size),
            ("--sweeper-batch-size", self.sweeper_batch_size),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{flag} must be at least 1"));
        }
        if self.max_receive_count == 0 {
            return Err("--max-receive-count must be at least 1".into());
        }
        if self.gateway.heartbeat_expiry < self.idle_timeout {
            return Err(format!(
                "--heartbeat-expiry ({}) must be at least --idle-timeout ({}): a connection the gateway keeps open must not be swept",
                humantime::format_duration(self.gateway.heartbeat_expiry),
                humantime::format_duration(self.idle_timeout)
            ));
        }
        if PAGE_PATHS.contains(&self.stage.as_str()) {
            return Err(format!(
                "--stage '{}' is taken by the stack's pages ({})",
                self.stage,
                PAGE_PATHS.join(", ")
            ));
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
        for (flag, timeout) in [
            ("--planner-timeout", self.planner_timeout),
            ("--broadcaster-timeout", self.broadcaster_timeout),
        ] {
            if timeout <= self.broadcaster.deadline_margin {
                return Err(format!(
                    "{flag} ({timeout:?}) must be longer than --deadline-margin ({:?}), or no post could start",
                    self.broadcaster.deadline_margin
                ));
            }
            if self.visibility_timeout < timeout {
                return Err(format!(
                    "--visibility-timeout ({:?}) must be at least {flag} ({timeout:?}), or messages reappear while still being processed",
                    self.visibility_timeout
                ));
            }
        }
        self.broadcaster.validate()?;
        if self.lambdas.is_some() && self.backend != BackendKind::Aws {
            return Err("--lambdas needs --backend aws: the bootstraps are separate processes and reach the table, bus and queues through the AWS API".into());
        }
        if self.lambda_roles.is_some() && self.lambdas.is_none() {
            return Err("--lambda-roles needs --lambdas: the roles are the bootstraps'".into());
        }
        if self.lambda_environments == 0 {
            return Err("--lambda-environments must be at least 1".into());
        }
        if let Some(secret) = &self.jwt_secret {
            fanout_core::token::check_secret(secret, false)
                .map_err(|e| format!("--jwt-secret / FANOUT_JWT_SECRET: {e}"))?;
        }
        let fractions = [
            ("--fault-gone", self.fault_gone),
            ("--fault-throttle", self.fault_throttle),
            ("--fault-error", self.fault_error),
            ("--fault-crash", self.fault_crash),
        ];
        if let Some((flag, p)) = fractions.iter().find(|(_, p)| !(0.0..=1.0).contains(p)) {
            return Err(format!("{flag} {p} must be a fraction between 0 and 1"));
        }
        if self.fault_gone + self.fault_throttle + self.fault_error > 1.0 {
            return Err("--fault-gone + --fault-throttle + --fault-error must not exceed 1".into());
        }
        if self.endpoint_url.is_some() && self.backend != BackendKind::Aws {
            return Err("--endpoint-url only applies with --backend aws".into());
        }
        if !self
            .resource_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "--resource-prefix '{}' must be letters, digits, - or _",
                self.resource_prefix
            ));
        }
        if self.quota_rps == Some(0) || self.quota_burst == Some(0) {
            return Err("--quota-rps and --quota-burst must be at least 1".into());
        }
        Ok(())
    }

    pub fn faults(&self) -> FaultSettings {
        FaultSettings {
            gone: self.fault_gone,
            throttle: self.fault_throttle,
            error: self.fault_error,
            latency: Duration::from_millis(self.fault_latency_ms),
            crash: self.fault_crash,
        }
    }

    /// The emulated account quota, when `--quota-rps` is given.
    pub fn quota(&self) -> Option<Rate> {
        let rps = self.quota_rps?;
        Rate::new(rps, self.quota_burst.unwrap_or((rps / 2).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_aws_limits() {
        let c = StackConfig::defaults();
        assert_eq!(c.port, 3001);
        assert_eq!(c.stage, "local");
        assert_eq!(c.idle_timeout, Duration::from_secs(10 * 60));
        assert_eq!(
            c.gateway.max_connection_duration,
            Duration::from_secs(2 * 60 * 60)
        );
        assert_eq!(c.max_frame_bytes, 32 * 1024);
        assert_eq!(c.max_message_bytes, 128 * 1024);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn invalid_values_name_the_flag() {
        for flag in ["--shards", "--max-in-flight", "--max-payload-bytes"] {
            let err = StackConfig::try_parse_from(["fanout-local", flag, "0"])
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag), "{err}");
            assert!(err.contains("must be at least 1"), "{err}");
        }
        assert!(StackConfig::try_parse_from(["fanout-local", "--idle-timeout", "soon"]).is_err());
        let c = StackConfig::parse_from(["fanout-local", "--fault-gone", "1.5"]);
        assert!(c.validate().unwrap_err().contains("--fault-gone"));
        let c = StackConfig::parse_from([
            "fanout-local",
            "--fault-gone",
            "0.6",
            "--fault-error",
            "0.6",
        ]);
        assert!(c.validate().unwrap_err().contains("must not exceed 1"));
        let c = StackConfig::parse_from(["fanout-local", "--broadcaster-timeout", "2s"]);
        assert!(c.validate().unwrap_err().contains("--broadcaster-timeout"));
        let c = StackConfig::parse_from(["fanout-local", "--visibility-timeout", "10s"]);
        assert!(c.validate().unwrap_err().contains("--visibility-timeout"));
        let c = StackConfig::parse_from(["fanout-local", "--post-timeout", "10s"]);
        assert!(c.validate().unwrap_err().contains("--post-timeout"));
        assert!(StackConfig::try_parse_from(["fanout-local", "--quota-burst", "5"]).is_err());
        for secret in ["", "not-32-bytes"] {
            let c = StackConfig::parse_from(["fanout-local", "--jwt-secret", secret]);
            let error = c.validate().unwrap_err();
            assert!(
                error.contains("--jwt-secret / FANOUT_JWT_SECRET"),
                "{error}"
            );
        }
    }

    #[test]
    fn budget_is_shared_between_workers_and_quota_defaults_to_half_burst() {
        let c = StackConfig::defaults();
        assert_eq!(c.budget.worker_rate(), Rate::new(1_250, 625));
        assert_eq!(c.quota(), None);
        let c = StackConfig::parse_from(["fanout-local", "--quota-rps", "10000"]);
        assert_eq!(c.quota(), Rate::new(10_000, 5_000));
        let c = StackConfig::parse_from(["fanout-local", "--api-budget-rps", "0"]);
        assert_eq!(c.budget.worker_rate(), None);
    }
}
