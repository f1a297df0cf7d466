//! Every tunable, defined once: name, default, unit, validation and help,
//! as `clap` argument groups. `fanout-local` flattens them into its flags;
//! each Lambda reads the same groups from its environment only (the `env`
//! names below); the SAM template's agreement test compares its parameters
//! against these defaults. Durations are written like `500ms`, `3s`, `1h`
//! (a bare number is seconds).
//!
//! Architecture invariant: this module declares settings; it never reads
//! the environment itself (the binaries parse, and name the flag or the
//! variable in their errors).

use std::time::Duration;

use clap::{Args, Command, FromArgMatches};

use crate::auth::RoomPattern;
use crate::backoff::Backoff;
use crate::ids::RoomId;
use crate::limits::{MAX_MESSAGE_BYTES, MAX_PAYLOAD_BYTES, SQS_MAX_MESSAGE_BYTES};
use crate::rate::Rate;

/// What connect, disconnect and message need to know.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct GatewaySettings {
    /// Largest `data` a client may publish (serialized, bytes); larger gets
    /// a `payload_too_large` error frame. The default keeps every message
    /// frame within API Gateway's 128 KB.
    #[arg(long, env = "FANOUT_MAX_PAYLOAD_BYTES", value_name = "BYTES",
          default_value_t = MAX_PAYLOAD_BYTES, value_parser = at_least_one::<usize>)]
    pub max_payload_bytes: usize,

    /// A connection's longest life (API Gateway's hard cap is 2h); sets the
    /// TTL of its records.
    #[arg(long, env = "FANOUT_MAX_CONNECTION_DURATION", value_name = "DURATION",
          default_value = "2h", value_parser = positive_duration)]
    pub max_connection_duration: Duration,

    /// How long a connection lives without a client frame (any action,
    /// `ping` included) before its item expires and the sweeper removes
    /// it: API Gateway's 10-minute idle timeout plus a minute of slack.
    /// Clients heartbeat at least every half of it (the SDK: every 5 min).
    #[arg(long, env = "FANOUT_HEARTBEAT_EXPIRY", value_name = "DURATION",
          default_value = "11m", value_parser = positive_duration)]
    pub heartbeat_expiry: Duration,

    /// Rooms one connection may be a member of at once; a `join` past it
    /// gets `limit_exceeded`. Bounds a connection's store items and keeps
    /// its lifecycle events small.
    #[arg(long, env = "FANOUT_MAX_ROOMS_PER_CONNECTION", value_name = "N",
          default_value_t = 100, value_parser = at_least_one::<usize>)]
    pub max_rooms_per_connection: usize,

    /// Live connections one user (of a tenant) may hold; `$connect` past it
    /// is refused with 429. Bounds what one token can open.
    #[arg(long, env = "FANOUT_MAX_CONNECTIONS_PER_USER", value_name = "N",
          default_value_t = 100, value_parser = at_least_one::<usize>)]
    pub max_connections_per_user: usize,
}

impl GatewaySettings {
    /// The heartbeat deadline of a frame admitted at `now_ms` (epoch
    /// seconds, the connection item's TTL).
    pub fn idle_until(&self, now_ms: i64) -> i64 {
        now_ms.div_euclid(1000) + self.heartbeat_expiry.as_secs() as i64
    }
}

/// Per-client and per-tenant rate limits, enforced by the message
/// function through the connection store (so they hold across concurrent
/// Lambda invocations). A rate of 0 turns that limit off.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct AbuseSettings {
    /// Frames per second one connection may send (sustained); past it a
    /// frame gets `rate_limited` with a retry-after.
    #[arg(
        long,
        env = "FANOUT_CLIENT_FRAME_RATE",
        value_name = "PER_SECOND",
        default_value_t = 20
    )]
    pub client_frame_rate: u32,

    /// Frames one connection may send at once after being quiet.
    #[arg(long, env = "FANOUT_CLIENT_FRAME_BURST", value_name = "FRAMES",
          default_value_t = 40, value_parser = at_least_one::<u32>)]
    pub client_frame_burst: u32,

    /// Publishes per second from all clients of one tenant together.
    #[arg(
        long,
        env = "FANOUT_TENANT_PUBLISH_RATE",
        value_name = "PER_SECOND",
        default_value_t = 500
    )]
    pub tenant_publish_rate: u32,

    /// Publishes one tenant's clients may make at once after being quiet.
    #[arg(long, env = "FANOUT_TENANT_PUBLISH_BURST", value_name = "PUBLISHES",
          default_value_t = 1_000, value_parser = at_least_one::<u32>)]
    pub tenant_publish_burst: u32,

    /// Signals (typing, …) per second one connection may send: tighter
    /// than its frame rate, since each reaches every member of the room.
    #[arg(
        long,
        env = "FANOUT_CLIENT_SIGNAL_RATE",
        value_name = "PER_SECOND",
        default_value_t = 5
    )]
    pub client_signal_rate: u32,

    /// Signals one connection may send at once after being quiet.
    #[arg(long, env = "FANOUT_CLIENT_SIGNAL_BURST", value_name = "SIGNALS",
          default_value_t = 5, value_parser = at_least_one::<u32>)]
    pub client_signal_burst: u32,
}

impl AbuseSettings {
    pub fn client_frames(&self) -> Option<Rate> {
        Rate::new(self.client_frame_rate, self.client_frame_burst)
    }

    pub fn tenant_publishes(&self) -> Option<Rate> {
        Rate::new(self.tenant_publish_rate, self.tenant_publish_burst)
    }

    pub fn client_signals(&self) -> Option<Rate> {
        Rate::new(self.client_signal_rate, self.client_signal_burst)
    }
}

/// How tokens are verified and what their claims mean (the authorizer, and
/// the message function for grants and `refresh`). Keys: the HS256 secret
/// (configured beside these) and/or a JWKS from a URL or a file.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct AuthSettings {
    /// JWKS URL of an OIDC issuer (its `jwks_uri`), e.g.
    /// https://cognito-idp.<region>.amazonaws.com/<pool-id>/.well-known/jwks.json.
    /// RS256, ES256 and EdDSA keys are used, each pinned to its algorithm.
    #[arg(long, env = "FANOUT_JWKS_URL", value_name = "URL")]
    pub jwks_url: Option<String>,

    /// A JWKS document on disk, read like the URL (re-read when the cache
    /// expires, so rotating the file rotates the keys).
    #[arg(
        long,
        env = "FANOUT_JWKS_FILE",
        value_name = "PATH",
        conflicts_with = "jwks_url"
    )]
    pub jwks_file: Option<std::path::PathBuf>,

    /// How long fetched keys are used before fetching again.
    #[arg(long, env = "FANOUT_JWKS_CACHE_TTL", value_name = "DURATION",
          default_value = "10m", value_parser = positive_duration)]
    pub jwks_cache_ttl: Duration,

    /// Shortest time between two fetches: a token with an unknown `kid`
    /// triggers at most one early fetch per interval.
    #[arg(long, env = "FANOUT_JWKS_MIN_REFRESH_INTERVAL", value_name = "DURATION",
          default_value = "30s", value_parser = parse_duration)]
    pub jwks_min_refresh_interval: Duration,

    /// Required `iss` (checked when set), e.g. the Cognito user pool URL.
    #[arg(long, env = "FANOUT_TOKEN_ISSUER", value_name = "ISSUER")]
    pub token_issuer: Option<String>,

    /// Accepted `aud` values, comma-separated (checked when set), e.g. the
    /// Cognito app client id.
    #[arg(
        long,
        env = "FANOUT_TOKEN_AUDIENCE",
        value_name = "AUDIENCE",
        value_delimiter = ','
    )]
    pub token_audience: Vec<String>,

    /// Longest a token may still be valid for: one whose `exp` lies further
    /// ahead is refused.
    #[arg(long, env = "FANOUT_MAX_TOKEN_LIFETIME", value_name = "DURATION",
          default_value = "24h", value_parser = positive_duration)]
    pub max_token_lifetime: Duration,

    /// Clock skew tolerated on `exp`, `nbf` and the lifetime check.
    #[arg(long, env = "FANOUT_TOKEN_LEEWAY", value_name = "DURATION",
          default_value = "5s", value_parser = parse_duration)]
    pub token_leeway: Duration,

    /// The claim that names the tenant (e.g. `custom:tenant` for Cognito).
    #[arg(
        long,
        env = "FANOUT_TENANT_CLAIM",
        value_name = "CLAIM",
        default_value = "tenant"
    )]
    pub tenant_claim: String,

    /// The claim that names the user.
    #[arg(
        long,
        env = "FANOUT_USER_CLAIM",
        value_name = "CLAIM",
        default_value = "sub"
    )]
    pub user_claim: String,

    /// The claim that holds the room capabilities: an object (or a string
    /// of JSON) of room patterns to rights.
    #[arg(
        long,
        env = "FANOUT_CAPABILITIES_CLAIM",
        value_name = "CLAIM",
        default_value = "capabilities"
    )]
    pub capabilities_claim: String,

    /// Single-tenant deployments: every connection belongs to this tenant
    /// and no tenant claim is read.
    #[arg(long, env = "FANOUT_FIXED_TENANT", value_name = "TENANT",
          value_parser = |s: &str| crate::ids::TenantId::new(s).map_err(|e| e.to_string()))]
    pub fixed_tenant: Option<crate::ids::TenantId>,

    /// What a token without the capabilities claim may do: `open` (every
    /// room of its tenant, for local development) or `deny` (nothing
    /// unless a grant lets it in; the SAM template's default).
    #[arg(
        long,
        env = "FANOUT_DEFAULT_POLICY",
        value_name = "POLICY",
        value_enum,
        default_value = "open"
    )]
    pub default_policy: crate::auth::DefaultPolicy,

    /// Origins allowed to connect, comma-separated (e.g.
    /// https://app.example.com); a `$connect` from another Origin is
    /// refused with 403. Empty allows every Origin (and clients that send
    /// none, such as servers).
    #[arg(
        long,
        env = "FANOUT_ALLOWED_ORIGINS",
        value_name = "ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
}

/// How the connection store spreads member sets.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StoreSettings {
    /// Shards each room's (and tenant's) memberships are spread over, so
    /// planning pages them in parallel and no partition runs hot.
    #[arg(long, env = "FANOUT_SHARDS", value_name = "N",
          default_value_t = 4, value_parser = at_least_one::<u32>)]
    pub shards: u32,
}

/// How delivery jobs are cut (the planner's, and the broadcaster's
/// re-enqueued ones).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct JobSettings {
    /// Most connection ids in one delivery job: small enough that one
    /// room's jobs spread over many broadcaster workers.
    #[arg(long, env = "FANOUT_MAX_CONNECTIONS_PER_JOB", value_name = "N",
          default_value_t = 500, value_parser = at_least_one::<usize>)]
    pub max_connections_per_job: usize,

    /// Size budget of one job: one SQS message.
    #[arg(skip = SQS_MAX_MESSAGE_BYTES)]
    pub job_budget_bytes: usize,
}

/// The planner's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct PlannerSettings {
    /// Targets of at most this many connections are posted by the planner
    /// itself, skipping the deliver queue (0 turns the fast path off).
    #[arg(
        long,
        env = "FANOUT_DIRECT_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 10
    )]
    pub direct_max_connections: usize,

    /// How long an event's idempotency key is remembered after planning.
    #[arg(long, env = "FANOUT_DEDUPE_TTL", value_name = "DURATION",
          default_value = "1h", value_parser = positive_duration)]
    pub dedupe_ttl: Duration,

    /// Refuse broadcasts whose `Source` does not speak for their tenant:
    /// a publisher for `acme` must use `acme` or `acme.<service>` (the
    /// convention an IAM `events:source` condition enforces). Broadcasts
    /// from the gateway itself (`fanout.client`) are always accepted.
    #[arg(long, env = "FANOUT_TENANT_BOUND_SOURCES", value_name = "BOOL",
          default_value_t = true, action = clap::ArgAction::Set)]
    pub tenant_bound_sources: bool,

    /// Largest frame API Gateway will post.
    #[arg(skip = MAX_MESSAGE_BYTES)]
    pub max_frame_bytes: usize,
}

/// Room streams: what the planner stores for history and resume, and
/// what the message function replays (both read the same group).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StreamSettings {
    /// How long a room's stored events are kept: `history` and `join`
    /// with `since` reach back this far (the items' TTL).
    #[arg(long, env = "FANOUT_STREAM_RETENTION", value_name = "DURATION",
          default_value = "24h", value_parser = positive_duration)]
    pub stream_retention: Duration,

    /// Most events kept per room: older ones are out of reach of history
    /// and resume even within the retention (and, locally, dropped).
    #[arg(long, env = "FANOUT_STREAM_MAX_EVENTS", value_name = "N",
          default_value_t = 10_000, value_parser = at_least_one::<u64>)]
    pub stream_max_events: u64,

    /// Most events a `join` with `since` replays; past it the reply says
    /// `recovered: false` and the client pages the rest with `history`.
    #[arg(long, env = "FANOUT_REPLAY_MAX_EVENTS", value_name = "N",
          default_value_t = 1_000, value_parser = at_least_one::<usize>)]
    pub replay_max_events: usize,

    /// Most events one `history` reply holds (a larger `limit` is cut to
    /// it; the reply's `more` says whether to page on).
    #[arg(long, env = "FANOUT_HISTORY_MAX_PAGE", value_name = "N",
          default_value_t = 100, value_parser = at_least_one::<usize>)]
    pub history_max_page: usize,

    /// Rooms whose events are delivered but never stored (no `seq`, no
    /// history): exact names or prefixes ending in `*`, comma-separated.
    #[arg(long, env = "FANOUT_EPHEMERAL_ROOMS", value_name = "PATTERNS",
          value_delimiter = ',', value_parser = RoomPattern::parse)]
    pub ephemeral_rooms: Vec<RoomPattern>,
}

impl StreamSettings {
    /// Whether events to `room` are stored in its stream.
    pub fn is_streamed(&self, room: &RoomId) -> bool {
        !self.ephemeral_rooms.iter().any(|p| p.matches(room))
    }
}

/// Presence: when a room switches from per-member notices to counts.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct PresenceSettings {
    /// Above this many present users a room gets `presence.count` notices
    /// instead of `presence.joined`/`left`/`updated` (which grow with the
    /// square of the room).
    #[arg(long, env = "FANOUT_PRESENCE_MAX_MEMBERS", value_name = "N",
          default_value_t = 1_000, value_parser = at_least_one::<u64>)]
    pub presence_max_members: u64,

    /// At most one `presence.count` per room this often.
    #[arg(long, env = "FANOUT_PRESENCE_COUNT_INTERVAL", value_name = "DURATION",
          default_value = "5s", value_parser = positive_duration)]
    pub presence_count_interval: Duration,
}

/// The broadcaster's own settings (also the planner's fast path).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct BroadcasterSettings {
    /// @connections posts in flight at once per broadcaster invocation.
    #[arg(long, env = "FANOUT_MAX_IN_FLIGHT", value_name = "N",
          default_value_t = 64, value_parser = at_least_one::<usize>)]
    pub max_in_flight: usize,

    /// Tries per connection within one broadcaster invocation.
    #[arg(long, env = "FANOUT_TRIES_PER_INVOCATION", value_name = "N",
          default_value_t = 3, value_parser = at_least_one::<u32>)]
    pub tries_per_invocation: u32,

    /// Delivery attempts (each a re-enqueued job) before posts that keep
    /// failing go to the deliver dead-letter queue.
    #[arg(long, env = "FANOUT_MAX_ATTEMPTS", value_name = "N",
          default_value_t = 5, value_parser = at_least_one::<u32>)]
    pub max_attempts: u32,

    /// A post with no answer after this is retried as a timeout. Must be
    /// shorter than the deadline margin, so posts end before the deadline.
    #[arg(long, env = "FANOUT_POST_TIMEOUT", value_name = "DURATION",
          default_value = "3s", value_parser = positive_duration)]
    pub post_timeout: Duration,

    /// No post starts later than this before the invocation's deadline.
    #[arg(long, env = "FANOUT_DEADLINE_MARGIN", value_name = "DURATION",
          default_value = "5s", value_parser = positive_duration)]
    pub deadline_margin: Duration,

    /// Delay before another try within the invocation.
    #[arg(skip = RETRY_BACKOFF)]
    pub retry_backoff: Backoff,

    /// `DelaySeconds` of a re-enqueued job, by attempt.
    #[arg(skip = REQUEUE_BACKOFF)]
    pub requeue_backoff: Backoff,
}

/// Tries within one invocation back off from 50 ms up to 1 s.
pub const RETRY_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(50),
    cap: Duration::from_secs(1),
};

/// Re-enqueued jobs wait from 2 s up to 2 min (SQS allows 15 min).
pub const REQUEUE_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(2),
    cap: Duration::from_secs(120),
};

impl BroadcasterSettings {
    /// The rule between two settings that neither parser can check alone.
    pub fn validate(&self) -> Result<(), String> {
        if self.post_timeout >= self.deadline_margin {
            return Err(format!(
                "--post-timeout / FANOUT_POST_TIMEOUT ({:?}) must be shorter than --deadline-margin / FANOUT_DEADLINE_MARGIN ({:?}), so posts end before the deadline",
                self.post_timeout, self.deadline_margin
            ));
        }
        Ok(())
    }
}

/// The stage's share of the account-wide @connections quota, and how it is
/// split between broadcaster workers.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct BudgetSettings {
    /// The account's @connections budget in calls per second that this
    /// stage may use (API Gateway's account default is 10,000, shared with
    /// all other API Gateway traffic). Each broadcaster worker gets budget ÷
    /// broadcaster concurrency. 0 turns the workers' rate limiters off.
    #[arg(
        long,
        env = "FANOUT_API_BUDGET_RPS",
        value_name = "RPS",
        default_value_t = 10_000
    )]
    pub api_budget_rps: u32,

    /// The budget's burst (API Gateway's account default is 5,000), split
    /// between workers the same way.
    #[arg(
        long,
        env = "FANOUT_API_BUDGET_BURST",
        value_name = "CALLS",
        default_value_t = 5_000
    )]
    pub api_budget_burst: u32,

    /// Concurrent broadcaster invocations (the deliver queue mapping's
    /// maximum concurrency), which the budget is split over.
    #[arg(long, env = "FANOUT_BROADCASTER_CONCURRENCY", value_name = "N",
          default_value_t = 8, value_parser = at_least_one::<usize>)]
    pub broadcaster_concurrency: usize,
}

impl BudgetSettings {
    /// One broadcaster worker's share of the budget (`None`: unlimited).
    pub fn worker_rate(&self) -> Option<Rate> {
        Rate::share(
            self.api_budget_rps,
            self.api_budget_burst,
            self.broadcaster_concurrency as u32,
        )
    }
}

/// Where a function's metrics go: the CloudWatch namespace and the
/// `Service` dimension every metric carries beside `Function`. The
/// template sets the service to the stack's name, so two stacks in one
/// account and region write apart, and each stack's alarms watch its own.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct MetricsSettings {
    /// The CloudWatch namespace of the EMF metrics.
    #[arg(long, env = "FANOUT_METRICS_NAMESPACE", value_name = "NAMESPACE",
          default_value = "fanout", value_parser = non_blank)]
    pub metrics_namespace: String,

    /// The `Service` dimension of every metric (the stack's name when
    /// deployed).
    #[arg(long, env = "FANOUT_SERVICE_NAME", value_name = "NAME",
          default_value = "fanout", value_parser = non_blank)]
    pub service_name: String,
}

fn non_blank(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("must not be blank".into());
    }
    Ok(text.trim().to_string())
}

macro_rules! defaults_from_the_definitions {
    ($($group:ty),*) => {$(
        impl Default for $group {
            /// The defaults declared on the flags, whatever the environment
            /// holds; parsed once per process, then cloned.
            fn default() -> Self {
                static DEFAULTS: std::sync::OnceLock<$group> = std::sync::OnceLock::new();
                DEFAULTS.get_or_init(defaults).clone()
            }
        }
    )*};
}

defaults_from_the_definitions!(
    GatewaySettings,
    AbuseSettings,
    AuthSettings,
    StoreSettings,
    JobSettings,
    PlannerSettings,
    StreamSettings,
    PresenceSettings,
    BroadcasterSettings,
    BudgetSettings,
    MetricsSettings
);

/// A group's declared defaults: parsed from no arguments with every
/// environment fallback removed, so the definition above is the only
/// place a default is written.
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let command =
        T::augment_args(Command::new("defaults")).mut_args(|arg| arg.env(None::<&'static str>));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("every setting in a group has a default");
    T::from_arg_matches(&matches).expect("defaults match their own definitions")
}

/// A duration like `500ms`, `3s`, `15m`, `1h` or `2d` (humantime's
/// syntax); a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration like 500ms, 30s, 15m, 1h or 2d ({e})"))
}

/// A duration greater than zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d)
}

/// A whole number of at least 1.
pub fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: std::fmt::Display,
{
    let n: T = text.trim().parse().map_err(|e: T::Err| e.to_string())?;
    if n < T::from(1u8) {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(positive_duration("0s").is_err());
    }

    #[test]
    fn numbers_below_one_are_refused() {
        assert_eq!(at_least_one::<u32>("4"), Ok(4));
        assert_eq!(at_least_one::<u32>("0").unwrap_err(), "must be at least 1");
        assert!(at_least_one::<usize>("four").is_err());
    }

    #[test]
    fn defaults_are_the_declared_ones() {
        let b = BroadcasterSettings::default();
        assert_eq!(b.max_in_flight, 64);
        assert_eq!(b.post_timeout, Duration::from_secs(3));
        assert_eq!(b.requeue_backoff, REQUEUE_BACKOFF);
        assert!(b.validate().is_ok());
        assert_eq!(
            BudgetSettings::default().worker_rate(),
            Rate::new(1_250, 625)
        );
        assert_eq!(
            GatewaySettings::default().max_connection_duration,
            Duration::from_secs(2 * 60 * 60)
        );
        assert_eq!(
            JobSettings::default().job_budget_bytes,
            SQS_MAX_MESSAGE_BYTES
        );
    }

    #[test]
    fn a_post_timeout_must_end_before_the_deadline_margin() {
        let b = BroadcasterSettings {
            post_timeout: Duration::from_secs(10),
            ..BroadcasterSettings::default()
        };
        let error = b.validate().unwrap_err();
        assert!(error.contains("FANOUT_POST_TIMEOUT"), "{error}");
        assert!(error.contains("--deadline-margin"), "{error}");
    }
}
