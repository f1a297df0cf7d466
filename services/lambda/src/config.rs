//! What each function reads from its environment, and nothing else: the
//! resources it is wired to (table, bus, queues, endpoint, token key) and
//! the tunable groups of `fanout_core::settings`, which define each
//! variable's name, default and validation once. A missing or invalid
//! variable fails at start-up with a message naming it.
//!
//! Run any function's binary with `--help` to see its variables; the
//! README's table lists them all.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Command, FromArgMatches};
use fanout_core::rate::Rate;
use fanout_core::settings::{
    AbuseSettings, AuthSettings, BroadcasterSettings, BudgetSettings, GatewaySettings, JobSettings,
    MetricsSettings, PlannerSettings, PresenceSettings, StoreSettings, StreamSettings,
};
use fanout_core::token::check_secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// One or more variables, comma-separated.
    #[error("{} required but not set", missing(.0))]
    Missing(String),
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Conflict(String),
}

fn missing(names: &str) -> String {
    if names.contains(", ") {
        format!("environment variables {names} are")
    } else {
        format!("environment variable {names} is")
    }
}

/// Looks a variable up by name.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Where variables come from: the process environment, or pairs in tests.
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

impl Env<'static> {
    pub fn process() -> Self {
        Self {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }
}

impl<'a> Env<'a> {
    pub fn from_pairs(pairs: &'a [(&'a str, &'a str)]) -> Self {
        Self {
            lookup: Box::new(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }),
        }
    }

    /// A set, non-blank value.
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }
}

/// A configuration read from the environment alone.
pub trait FromEnv: Sized {
    fn read(env: &Env) -> Result<Self, ConfigError>;
}

impl<T: Args + FromArgMatches> FromEnv for T {
    /// Parses the group's variables as if each were its flag (no command
    /// line is read), then names the variable in any error.
    fn read(env: &Env) -> Result<Self, ConfigError> {
        let command = T::augment_args(Command::new("function").no_binary_name(true));
        // Rendering an argument as clap's errors do needs a built command.
        let mut built = command.clone();
        built.build();
        let names: Names = built
            .get_arguments()
            .filter_map(|arg| Some((arg.to_string(), arg.get_env()?.to_str()?.to_string())))
            .collect();
        let argv: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| {
                let value = env.get(arg.get_env()?.to_str()?)?;
                Some(format!("--{}={value}", arg.get_long()?))
            })
            .collect();
        // The variables were turned into flags above; clap must not read
        // the process environment a second time.
        let command = command.mut_args(|arg| arg.env(None::<&'static str>));
        let matches = command
            .clone()
            .try_get_matches_from(argv)
            .map_err(|e| name_the_variable(&names, e))?;
        T::from_arg_matches(&matches).map_err(|e| name_the_variable(&names, e))
    }
}

/// Every variable a configuration reads.
pub fn variables<T: Args>() -> Vec<String> {
    T::augment_args(Command::new("function"))
        .get_arguments()
        .filter_map(|arg| Some(arg.get_env()?.to_string_lossy().into_owned()))
        .collect()
}

/// Each argument as clap writes it in errors ("--shards <N>"), with the
/// variable behind it.
type Names = Vec<(String, String)>;

/// Turns clap's "--flag <VALUE>" wording into the variable's name.
fn name_the_variable(names: &Names, error: clap::Error) -> ConfigError {
    let variable = |rendered: &str| -> String {
        names
            .iter()
            .find(|(arg, _)| arg == rendered)
            .map_or_else(|| rendered.to_string(), |(_, env)| env.clone())
    };
    let invalid_arg = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    };
    match error.kind() {
        ErrorKind::MissingRequiredArgument if !invalid_arg.is_empty() => ConfigError::Missing(
            invalid_arg
                .iter()
                .map(|a| variable(a))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation if !invalid_arg.is_empty() => {
            let value = match error.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            let reason = std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_else(|| "not a valid value".into());
            ConfigError::Invalid {
                name: variable(&invalid_arg[0]),
                value,
                reason,
            }
        }
        _ => ConfigError::Conflict(error.render().to_string().trim().to_string()),
    }
}

/// The connection table.
#[derive(Debug, Clone, Args)]
pub struct StoreConfig {
    /// The DynamoDB table holding connections, memberships and dedupe
    /// markers.
    #[arg(long = "table", env = "FANOUT_TABLE", value_name = "NAME")]
    pub table: String,

    #[command(flatten)]
    pub settings: StoreSettings,
}

/// Where the token key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtSecretSource {
    /// A Secrets Manager secret (how the stack deploys it: never a plain
    /// value in the function's configuration).
    SecretsManager { arn: String },
    /// The key itself (local runs and tests).
    Value(String),
}

/// The token keys and claim rules: the authorizer's, and the message
/// function's (for `refresh` and room grants).
#[derive(Debug, Clone, Args)]
pub struct AuthorizerConfig {
    /// The Secrets Manager secret holding the HS256 token key (deployed).
    #[arg(
        long = "jwt-secret-arn",
        env = "FANOUT_JWT_SECRET_ARN",
        value_name = "ARN"
    )]
    jwt_secret_arn: Option<String>,

    /// The HS256 token key itself, when there is no ARN (tests).
    #[arg(long = "jwt-secret", env = "FANOUT_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// Accept the public development key (the local stack's bootstrap
    /// mode, whose test and demo tokens are signed with it). The template
    /// never sets it, and its test checks that.
    #[arg(long = "allow-development-secret", env = "FANOUT_ALLOW_DEVELOPMENT_SECRET",
          value_name = "BOOL", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_development_secret: bool,

    #[command(flatten)]
    pub auth: AuthSettings,
}

impl AuthorizerConfig {
    /// The HS256 key's source, if HS256 tokens are accepted (the ARN wins
    /// when both are set). Without one, a JWKS must be configured.
    pub fn jwt_secret(&self) -> Result<Option<JwtSecretSource>, ConfigError> {
        match (&self.jwt_secret_arn, &self.jwt_secret) {
            (Some(arn), _) => Ok(Some(JwtSecretSource::SecretsManager { arn: arn.clone() })),
            (None, Some(value)) => {
                check_secret(value, !self.allow_development_secret).map_err(|e| {
                    ConfigError::Invalid {
                        name: "FANOUT_JWT_SECRET".into(),
                        value: "(hidden)".into(),
                        reason: e.to_string(),
                    }
                })?;
                Ok(Some(JwtSecretSource::Value(value.clone())))
            }
            (None, None) if self.auth.jwks_url.is_some() || self.auth.jwks_file.is_some() => {
                Ok(None)
            }
            (None, None) => Err(ConfigError::Missing(
                "FANOUT_JWT_SECRET_ARN (or FANOUT_JWT_SECRET, FANOUT_JWKS_URL, FANOUT_JWKS_FILE)"
                    .into(),
            )),
        }
    }
}

/// The authorizer function: the token keys and claim rules, and where
/// its `ColdStart` metric goes. (The message function reads the same keys
/// beside the gateway's settings, which carry the metrics already.)
#[derive(Debug, Clone, Args)]
pub struct AuthorizerFunctionConfig {
    #[command(flatten)]
    pub keys: AuthorizerConfig,

    #[command(flatten)]
    pub metrics: MetricsSettings,
}

/// connect, disconnect and message.
#[derive(Debug, Clone, Args)]
pub struct GatewayConfig {
    #[command(flatten)]
    pub store: StoreConfig,

    /// The EventBridge bus lifecycle and client events go to.
    #[arg(long = "event-bus", env = "FANOUT_EVENT_BUS", value_name = "NAME")]
    pub event_bus: String,

    #[command(flatten)]
    pub settings: GatewaySettings,

    /// Presence (message and disconnect announce changes).
    #[command(flatten)]
    pub presence: PresenceSettings,

    #[command(flatten)]
    pub metrics: MetricsSettings,
}

/// The message function: the gateway's resources, the token keys (for
/// `refresh` and room grants), the abuse limits, the room streams it reads
/// for `history` and replays, and the @connections endpoint it posts
/// replays and closes expired connections through.
#[derive(Debug, Clone, Args)]
pub struct MessageConfig {
    #[command(flatten)]
    pub gateway: GatewayConfig,

    #[command(flatten)]
    pub keys: AuthorizerConfig,

    #[command(flatten)]
    pub abuse: AbuseSettings,

    #[command(flatten)]
    pub stream: StreamSettings,

    /// The @connections endpoint:
    /// https://{api-id}.execute-api.{region}.amazonaws.com/{stage}.
    #[arg(long = "management-endpoint", env = "FANOUT_MANAGEMENT_ENDPOINT",
          value_name = "URL", value_parser = management_endpoint)]
    pub management_endpoint: String,
}

/// The sweeper: the gateway's resources (it ends presence, deletes
/// memberships and emits `fanout.connection.closed`) and the @connections
/// endpoint it closes connections through that TTL removed while their
/// socket may still be open.
#[derive(Debug, Clone, Args)]
pub struct SweeperConfig {
    #[command(flatten)]
    pub gateway: GatewayConfig,

    /// The @connections endpoint:
    /// https://{api-id}.execute-api.{region}.amazonaws.com/{stage}.
    #[arg(long = "management-endpoint", env = "FANOUT_MANAGEMENT_ENDPOINT",
          value_name = "URL", value_parser = management_endpoint)]
    pub management_endpoint: String,
}

/// What posting needs (the broadcaster, and the planner's fast path).
#[derive(Debug, Clone, Args)]
pub struct DeliveryConfig {
    /// The @connections endpoint:
    /// https://{api-id}.execute-api.{region}.amazonaws.com/{stage}.
    #[arg(long = "management-endpoint", env = "FANOUT_MANAGEMENT_ENDPOINT",
          value_name = "URL", value_parser = management_endpoint)]
    pub management_endpoint: String,

    /// The deliver queue's URL (re-enqueued jobs go back to it). A URL,
    /// not a name, so a cold start looks nothing up.
    #[arg(
        long = "deliver-queue-url",
        env = "FANOUT_DELIVER_QUEUE_URL",
        value_name = "URL"
    )]
    pub deliver_queue_url: String,

    /// The deliver dead-letter queue's URL.
    #[arg(
        long = "deliver-dlq-url",
        env = "FANOUT_DELIVER_DLQ_URL",
        value_name = "URL"
    )]
    pub deliver_dlq_url: String,

    #[command(flatten)]
    pub budget: BudgetSettings,

    #[command(flatten)]
    pub broadcaster: BroadcasterSettings,

    #[command(flatten)]
    pub jobs: JobSettings,
}

impl DeliveryConfig {
    /// This worker's share of the budget; `None` when the budget is 0.
    pub fn worker_rate(&self) -> Option<Rate> {
        self.budget.worker_rate()
    }
}

fn management_endpoint(text: &str) -> Result<String, String> {
    if text.starts_with("https://") || text.starts_with("http://") {
        Ok(text.to_string())
    } else {
        Err("must be a URL like https://{api-id}.execute-api.{region}.amazonaws.com/{stage}".into())
    }
}

#[derive(Debug, Clone, Args)]
pub struct BroadcasterConfig {
    #[command(flatten)]
    pub store: StoreConfig,

    #[command(flatten)]
    pub metrics: MetricsSettings,

    #[command(flatten)]
    pub delivery: DeliveryConfig,
}

#[derive(Debug, Clone, Args)]
pub struct PlannerConfig {
    #[command(flatten)]
    pub store: StoreConfig,

    #[command(flatten)]
    pub metrics: MetricsSettings,

    /// The plan dead-letter queue: events that retrying cannot fix go
    /// there at once.
    #[arg(long = "plan-dlq-url", env = "FANOUT_PLAN_DLQ_URL", value_name = "URL")]
    pub plan_dlq_url: String,

    #[command(flatten)]
    pub delivery: DeliveryConfig,

    #[command(flatten)]
    pub settings: PlannerSettings,

    #[command(flatten)]
    pub stream: StreamSettings,
}

/// Checks the rules between settings once they are all read.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

impl Validate for AuthorizerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.jwt_secret().map(|_| ())
    }
}

impl Validate for AuthorizerFunctionConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.keys.validate()
    }
}

impl Validate for GatewayConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl Validate for SweeperConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl Validate for MessageConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.keys.validate()
    }
}

impl Validate for BroadcasterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.delivery
            .broadcaster
            .validate()
            .map_err(ConfigError::Conflict)
    }
}

impl Validate for PlannerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.delivery
            .broadcaster
            .validate()
            .map_err(ConfigError::Conflict)
    }
}

/// Reads and validates a function's configuration.
pub fn load<T: FromEnv + Validate>(env: &Env) -> Result<T, ConfigError> {
    let config = T::read(env)?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELIVERY: &[(&str, &str)] = &[
        ("FANOUT_TABLE", "fanout"),
        (
            "FANOUT_MANAGEMENT_ENDPOINT",
            "https://abc.execute-api.us-east-1.amazonaws.com/prod",
        ),
        (
            "FANOUT_DELIVER_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/fanout-deliver",
        ),
        (
            "FANOUT_DELIVER_DLQ_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/fanout-deliver-dlq",
        ),
        (
            "FANOUT_PLAN_DLQ_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/fanout-plan-dlq",
        ),
    ];

    #[test]
    fn defaults_are_the_librarys() {
        let c: BroadcasterConfig = load(&Env::from_pairs(DELIVERY)).unwrap();
        assert_eq!(c.store.settings, StoreSettings::default());
        assert_eq!(c.delivery.worker_rate(), Rate::new(1_250, 625));
        assert_eq!(c.delivery.broadcaster, BroadcasterSettings::default());
        let p: PlannerConfig = load(&Env::from_pairs(DELIVERY)).unwrap();
        assert_eq!(p.settings, PlannerSettings::default());
        assert_eq!(p.delivery.jobs, JobSettings::default());
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = load::<BroadcasterConfig>(&Env::from_pairs(&DELIVERY[..2])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing("FANOUT_DELIVER_QUEUE_URL, FANOUT_DELIVER_DLQ_URL".into())
        );
        assert_eq!(
            err.to_string(),
            "environment variables FANOUT_DELIVER_QUEUE_URL, FANOUT_DELIVER_DLQ_URL are required but not set"
        );
        assert_eq!(
            load::<AuthorizerConfig>(&Env::from_pairs(&[("FANOUT_JWT_SECRET", "  ")])).unwrap_err(),
            ConfigError::Missing(
                "FANOUT_JWT_SECRET_ARN (or FANOUT_JWT_SECRET, FANOUT_JWKS_URL, FANOUT_JWKS_FILE)"
                    .into()
            )
        );
        let jwks_only = load::<AuthorizerConfig>(&Env::from_pairs(&[(
            "FANOUT_JWKS_URL",
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc/.well-known/jwks.json",
        )]))
        .unwrap();
        assert_eq!(jwks_only.jwt_secret().unwrap(), None);
        assert_eq!(
            load::<AuthorizerConfig>(&Env::from_pairs(&[
                (
                    "FANOUT_JWT_SECRET_ARN",
                    "arn:aws:secretsmanager:us-east-1:1:secret:jwt"
                ),
                ("FANOUT_JWT_SECRET", "ignored"),
            ]))
            .unwrap()
            .jwt_secret()
            .unwrap(),
            Some(JwtSecretSource::SecretsManager {
                arn: "arn:aws:secretsmanager:us-east-1:1:secret:jwt".into()
            })
        );
        let err = load::<GatewayConfig>(&Env::from_pairs(&[("FANOUT_TABLE", "t")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("FANOUT_EVENT_BUS".into()));
        assert_eq!(
            err.to_string(),
            "environment variable FANOUT_EVENT_BUS is required but not set"
        );
    }

    #[test]
    fn an_invalid_variable_is_named_with_its_value() {
        let mut pairs = DELIVERY.to_vec();
        pairs.push(("FANOUT_SHARDS", "four"));
        let err = load::<BroadcasterConfig>(&Env::from_pairs(&pairs)).unwrap_err();
        assert!(err.to_string().contains("FANOUT_SHARDS=\"four\""), "{err}");
        let mut pairs = DELIVERY.to_vec();
        pairs.push(("FANOUT_MAX_ATTEMPTS", "0"));
        let err = load::<BroadcasterConfig>(&Env::from_pairs(&pairs)).unwrap_err();
        assert!(err.to_string().contains("FANOUT_MAX_ATTEMPTS"), "{err}");
        assert!(err.to_string().contains("must be at least 1"), "{err}");
        let mut pairs = DELIVERY.to_vec();
        pairs[1] = ("FANOUT_MANAGEMENT_ENDPOINT", "abc.execute-api");
        let err = load::<BroadcasterConfig>(&Env::from_pairs(&pairs)).unwrap_err();
        assert!(
            err.to_string().contains("FANOUT_MANAGEMENT_ENDPOINT"),
            "{err}"
        );
        let mut pairs = DELIVERY.to_vec();
        pairs.push(("FANOUT_POST_TIMEOUT", "10s"));
        let err = load::<BroadcasterConfig>(&Env::from_pairs(&pairs)).unwrap_err();
        assert!(err.to_string().contains("FANOUT_POST_TIMEOUT"), "{err}");
        let mut pairs = DELIVERY.to_vec();
        pairs.push(("FANOUT_DEDUPE_TTL", "soon"));
        let err = load::<PlannerConfig>(&Env::from_pairs(&pairs)).unwrap_err();
        assert!(
            err.to_string().contains("FANOUT_DEDUPE_TTL=\"soon\""),
            "{err}"
        );
        let mut pairs = DELIVERY.to_vec();
        pairs.push(("FANOUT_API_BUDGET_RPS", "0"));
        assert_eq!(
            load::<BroadcasterConfig>(&Env::from_pairs(&pairs))
                .unwrap()
                .delivery
                .worker_rate(),
            None,
            "a zero budget turns the limiter off"
        );
    }

    #[test]
    fn the_authorizer_refuses_weak_and_development_secrets() {
        for (secret, reason) in [
            ("short", "at least 32"),
            (fanout_core::token::DEV_JWT_SECRET, "development secret"),
        ] {
            let err = load::<AuthorizerConfig>(&Env::from_pairs(&[("FANOUT_JWT_SECRET", secret)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("FANOUT_JWT_SECRET"), "{err}");
            assert!(err.contains(reason), "{err}");
            assert!(!err.contains(secret), "the secret is never printed: {err}");
        }
        let strong = "s".repeat(40);
        assert!(
            load::<AuthorizerConfig>(&Env::from_pairs(&[("FANOUT_JWT_SECRET", &strong)])).is_ok()
        );
    }

    #[test]
    fn durations_take_units() {
        let mut pairs = DELIVERY.to_vec();
        pairs.push(("FANOUT_POST_TIMEOUT", "500ms"));
        let c: BroadcasterConfig = load(&Env::from_pairs(&pairs)).unwrap();
        assert_eq!(
            c.delivery.broadcaster.post_timeout,
            std::time::Duration::from_millis(500)
        );
    }

    #[test]
    fn every_function_lists_its_variables() {
        let vars = variables::<PlannerConfig>();
        for name in [
            "FANOUT_TABLE",
            "FANOUT_SHARDS",
            "FANOUT_DEDUPE_TTL",
            "FANOUT_BROADCASTER_CONCURRENCY",
        ] {
            assert!(vars.iter().any(|v| v == name), "{name} in {vars:?}");
        }
        assert!(!variables::<GatewayConfig>().contains(&"FANOUT_DEDUPE_TTL".to_string()));
    }
}
