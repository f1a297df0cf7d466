//! The harness's flags: the scenario, the target, and the prices its cost
//! estimate uses (defaults from the AWS price list the project designs to).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Drive real WebSocket connections through fanout and measure delivery:
/// publish→receive latency (HDR histogram), throughput, loss, duplicates,
/// ordering, errors and CPU time, with a JSON report, SVG charts and an
/// estimate of what the run would cost on AWS. Without --url it starts the
/// local stack in this process.
#[derive(Debug, Clone, Parser)]
#[command(name = "fanout-loadtest", version, about, long_about = None)]
pub struct Scenario {
    /// WebSocket connections to open.
    #[arg(long, default_value_t = 1_000)]
    pub connections: usize,

    /// Rooms the connections are spread over (1 = one room holds all).
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,

    /// New connections per second while ramping up (API Gateway's default
    /// quota is 500/s).
    #[arg(long, default_value_t = 500)]
    pub ramp_rate: u32,

    /// Messages to publish (round-robin over the rooms).
    #[arg(long, default_value_t = 10)]
    pub messages: usize,

    /// Messages published per second.
    #[arg(long, default_value_t = 10.0)]
    pub publish_rate: f64,

    /// Bytes of padding in each message's data.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,

    /// How messages are published: EventBridge PutEvents, or a client's
    /// `publish` action.
    #[arg(long, value_enum, default_value_t = Via::Events)]
    pub via: Via,

    /// `pipeline`: through the bus, planner and broadcaster. `direct`: the
    /// gateway posts to every member without the pipeline (the machine's
    /// upper bound; local stack only).
    #[arg(long, value_enum, default_value_t = Mode::Pipeline)]
    pub mode: Mode,

    /// Where to write the JSON report (charts go beside it as
    /// <stem>-latency.svg and <stem>-deliveries.svg). The default folder
    /// is git-ignored and created when missing.
    #[arg(long, default_value = "loadtest-reports/report.json")]
    pub report: PathBuf,

    /// Seconds to wait for deliveries after the last publish.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,

    /// A deployed stage's WebSocket URL (wss://…/stage). Omit to start the
    /// local stack in this process.
    #[arg(long, requires = "publish_endpoint")]
    pub url: Option<String>,

    /// Where PutEvents goes for --url (an EventBridge endpoint URL, or
    /// "aws" for the SDK's default endpoint and credentials).
    #[arg(long)]
    pub publish_endpoint: Option<String>,

    /// With --url at a stack on this machine (`fanout-local` in its own
    /// process): its process id, so the report shows its CPU per phase
    /// beside the generator's (read from /proc/<pid>/stat).
    #[arg(long, value_name = "PID", requires = "url")]
    pub stack_pid: Option<u32>,

    /// Event bus for --via events.
    #[arg(long, default_value = "fanout")]
    pub bus: String,

    /// HS256 secret to mint client tokens (default: the local stack's
    /// development secret).
    #[arg(long, env = "FANOUT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// A ready token for every connection, instead of minting one.
    #[arg(long)]
    pub token: Option<String>,

    /// Tenant of every connection.
    #[arg(long, default_value = "loadtest")]
    pub tenant: String,

    /// Spread client sockets over this many 127.0.0.x source addresses
    /// (0: one per 5,000 connections), so 50,000+ connections fit the
    /// ephemeral ports of loopback.
    #[arg(long, default_value_t = 0)]
    pub source_addresses: usize,

    /// A flag for the in-process local stack (repeatable), e.g.
    /// --stack-arg=--api-budget-rps=0.
    #[arg(long = "stack-arg", allow_hyphen_values = true)]
    pub stack_args: Vec<String>,

    /// Presence churn: this many connections per second join room 0 with
    /// presence and leave it again after --churn-stay, while the room's
    /// listeners time the presence notices (0: off).
    #[arg(long, default_value_t = 0.0, value_name = "PER_SECOND")]
    pub presence_churn: f64,

    /// How many churners in all (with --presence-churn).
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub churners: usize,

    /// How long each churner stays present.
    #[arg(long, default_value = "1s", value_parser = fanout_core::settings::positive_duration)]
    pub churn_stay: std::time::Duration,

    /// Store every message in its room's stream (`seq`, history), as a
    /// deployment does by default; `false` delivers them unstored (the
    /// events say `"stream": false`, and the in-process stack treats
    /// every room as ephemeral), to measure what streams cost.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub streams: bool,

    /// Spread the client connections over this many worker processes
    /// (this binary again), each with its own open-file limit and runtime;
    /// 0 holds them in this process. Their CPU counts as the generator's.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub workers: usize,

    /// Run as one of the generator's worker processes (the generator
    /// starts these itself; the ramp plan comes on stdin).
    #[arg(long, hide = true)]
    pub worker: bool,

    /// The binary worker processes run (default: this one).
    #[arg(long, hide = true, value_name = "PATH")]
    pub worker_binary: Option<PathBuf>,

    /// Hide the progress bars (tests, logs).
    #[arg(long)]
    pub quiet: bool,

    #[command(flatten)]
    pub prices: Prices,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Events,
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Pipeline,
    Direct,
}

/// Prices for the cost estimate, in USD.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Prices {
    /// API Gateway WebSocket messages, per million (32 KB units, both ways).
    #[arg(long, default_value_t = 1.00)]
    pub price_apigw_messages_per_million: f64,
    /// API Gateway connection minutes, per million.
    #[arg(long, default_value_t = 0.25)]
    pub price_apigw_connection_minutes_per_million: f64,
    /// EventBridge custom events, per million.
    #[arg(long, default_value_t = 1.00)]
    pub price_eventbridge_events_per_million: f64,
    /// SQS requests, per million (64 KB units).
    #[arg(long, default_value_t = 0.40)]
    pub price_sqs_requests_per_million: f64,
    /// Lambda requests, per million.
    #[arg(long, default_value_t = 0.20)]
    pub price_lambda_requests_per_million: f64,
    /// Lambda GB-seconds on arm64.
    #[arg(long, default_value_t = 0.000_013_333_4)]
    pub price_lambda_gb_second: f64,
    /// DynamoDB on-demand write units, per million.
    #[arg(long, default_value_t = 0.625)]
    pub price_dynamodb_writes_per_million: f64,
    /// DynamoDB on-demand read units, per million.
    #[arg(long, default_value_t = 0.125)]
    pub price_dynamodb_reads_per_million: f64,
    /// Memory of every function, for GB-seconds.
    #[arg(long, default_value_t = 256)]
    pub lambda_memory_mb: u32,
    /// Assumed billed duration of one invocation of every function but
    /// the broadcaster (authorizer, connect, message, disconnect,
    /// planner), in ms.
    #[arg(long, default_value_t = 20)]
    pub lambda_ms_per_invocation: u32,
    /// The broadcaster's CPU time per delivered post, in µs of one vCPU:
    /// measured through its @connections client (SigV4 and HTTP) by
    /// `cargo bench -p fanout-local --bench poster` (BENCHMARKS.md). A job
    /// is billed that time per post scaled to the function's vCPU share
    /// (memory / 1,769 MB), or 1 ms at least.
    #[arg(long, default_value_t = 52.3)]
    pub broadcaster_cpu_us_per_post: f64,
}

impl Scenario {
    /// Fails with a message naming the flag when a value cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 || self.rooms == 0 || self.messages == 0 {
            return Err("--connections, --rooms and --messages must be at least 1".into());
        }
        if self.rooms > self.connections {
            return Err(format!(
                "--rooms {} is more than --connections {}: some rooms would be empty",
                self.rooms, self.connections
            ));
        }
        if self.ramp_rate == 0 || self.publish_rate <= 0.0 {
            return Err("--ramp-rate and --publish-rate must be positive".into());
        }
        if self.mode == Mode::Direct && self.url.is_some() {
            return Err("--mode direct needs the in-process local stack (no --url)".into());
        }
        if self.workers > self.connections {
            return Err(format!(
                "--workers {} is more than --connections {}",
                self.workers, self.connections
            ));
        }
        if self.source_addresses > 254 {
            return Err("--source-addresses is at most 254 (127.0.0.1–127.0.0.254)".into());
        }
        Ok(())
    }

    /// Source addresses to spread sockets over.
    pub fn source_address_count(&self) -> usize {
        if self.source_addresses > 0 {
            self.source_addresses
        } else {
            self.connections.div_ceil(5_000).max(1)
        }
    }
}
