//! Every environment variable the functions read, in one place. Defaults
//! are the library's (and the local stack's and the SAM template's).
//!
//! | variable | functions | default |
//! |---|---|---|
//! | `FANOUT_JWT_SECRET_ARN` | authorizer | the Secrets Manager secret with the token key (deployed) |
//! | `FANOUT_JWT_SECRET` | authorizer | the key itself, when there is no ARN (tests) |
//! | `FANOUT_TABLE` | all but authorizer | required |
//! | `FANOUT_SHARDS` | all but authorizer | 4 |
//! | `FANOUT_EVENT_BUS` | connect, disconnect, message | required |
//! | `FANOUT_MAX_PAYLOAD_BYTES` | message | 130048 |
//! | `FANOUT_DELIVER_QUEUE` / `FANOUT_DELIVER_DLQ` | planner, broadcaster | required |
//! | `FANOUT_MANAGEMENT_ENDPOINT` | planner, broadcaster | required (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`) |
//! | `FANOUT_API_BUDGET_RPS` / `FANOUT_API_BUDGET_BURST` | planner, broadcaster | 10000 / 5000 |
//! | `FANOUT_DELIVER_MAX_CONCURRENCY` | planner, broadcaster | 8 |
//! | `FANOUT_MAX_CONNECTIONS_PER_JOB` | planner, broadcaster | 500 |
//! | `FANOUT_MAX_IN_FLIGHT` | broadcaster | 64 |
//! | `FANOUT_TRIES_PER_INVOCATION` / `FANOUT_MAX_ATTEMPTS` | broadcaster | 3 / 5 |
//! | `FANOUT_POST_TIMEOUT_MS` / `FANOUT_DEADLINE_MARGIN_MS` | broadcaster | 3000 / 5000 |
//! | `FANOUT_DIRECT_MAX_CONNECTIONS` | planner | 10 |
//! | `FANOUT_DEDUPE_TTL_SECS` | planner | 3600 |

use std::str::FromStr;
use std::time::Duration;

use fanout_core::handlers::GatewaySettings;
use fanout_core::handlers::broadcaster::{
    BroadcasterSettings, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_TRIES_PER_INVOCATION,
};
use fanout_core::handlers::planner::{
    DEFAULT_DEDUPE_TTL, DEFAULT_DIRECT_MAX_CONNECTIONS, PlannerSettings,
};
use fanout_core::limits::{
    DEFAULT_MAX_CONNECTIONS_PER_JOB, DEFAULT_ROOM_SHARDS, MAX_PAYLOAD_BYTES,
};
use fanout_core::rate::Rate;

pub const JWT_SECRET: &str = "FANOUT_JWT_SECRET";
pub const JWT_SECRET_ARN: &str = "FANOUT_JWT_SECRET_ARN";
pub const TABLE: &str = "FANOUT_TABLE";
pub const SHARDS: &str = "FANOUT_SHARDS";
pub const EVENT_BUS: &str = "FANOUT_EVENT_BUS";
pub const MAX_PAYLOAD_BYTES_VAR: &str = "FANOUT_MAX_PAYLOAD_BYTES";
pub const DELIVER_QUEUE: &str = "FANOUT_DELIVER_QUEUE";
pub const DELIVER_DLQ: &str = "FANOUT_DELIVER_DLQ";
pub const MANAGEMENT_ENDPOINT: &str = "FANOUT_MANAGEMENT_ENDPOINT";
pub const API_BUDGET_RPS: &str = "FANOUT_API_BUDGET_RPS";
pub const API_BUDGET_BURST: &str = "FANOUT_API_BUDGET_BURST";
pub const DELIVER_MAX_CONCURRENCY: &str = "FANOUT_DELIVER_MAX_CONCURRENCY";
pub const MAX_CONNECTIONS_PER_JOB: &str = "FANOUT_MAX_CONNECTIONS_PER_JOB";
pub const MAX_IN_FLIGHT: &str = "FANOUT_MAX_IN_FLIGHT";
pub const TRIES_PER_INVOCATION: &str = "FANOUT_TRIES_PER_INVOCATION";
pub const MAX_ATTEMPTS: &str = "FANOUT_MAX_ATTEMPTS";
pub const POST_TIMEOUT_MS: &str = "FANOUT_POST_TIMEOUT_MS";
pub const DEADLINE_MARGIN_MS: &str = "FANOUT_DEADLINE_MARGIN_MS";
pub const DIRECT_MAX_CONNECTIONS: &str = "FANOUT_DIRECT_MAX_CONNECTIONS";
pub const DEDUPE_TTL_SECS: &str = "FANOUT_DEDUPE_TTL_SECS";

/// Every variable any function reads.
pub const ALL: &[&str] = &[
    JWT_SECRET,
    JWT_SECRET_ARN,
    TABLE,
    SHARDS,
    EVENT_BUS,
    MAX_PAYLOAD_BYTES_VAR,
    DELIVER_QUEUE,
    DELIVER_DLQ,
    MANAGEMENT_ENDPOINT,
    API_BUDGET_RPS,
    API_BUDGET_BURST,
    DELIVER_MAX_CONCURRENCY,
    MAX_CONNECTIONS_PER_JOB,
    MAX_IN_FLIGHT,
    TRIES_PER_INVOCATION,
    MAX_ATTEMPTS,
    POST_TIMEOUT_MS,
    DEADLINE_MARGIN_MS,
    DIRECT_MAX_CONNECTIONS,
    DEDUPE_TTL_SECS,
];

/// The deliver queue's max concurrency the budget is split over by default
/// (the local stack's `--broadcaster-concurrency`).
pub const DEFAULT_DELIVER_MAX_CONCURRENCY: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Looks a variable up by name.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Where variables come from: the process environment, or a map in tests.
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

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    /// A positive number, or `default` when unset.
    pub fn number<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default,
        T::Err: std::fmt::Display,
    {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let parsed: T = value
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                value: value.clone(),
                reason: e.to_string(),
            })?;
        if parsed <= T::default() {
            return Err(ConfigError::Invalid {
                name,
                value,
                reason: "must be greater than 0".into(),
            });
        }
        Ok(parsed)
    }

    /// Like [`Env::number`], but 0 is allowed (it turns a feature off).
    pub fn count<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    name,
                    value: value.clone(),
                    reason: e.to_string(),
                }),
        }
    }
}

/// The connection table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub table: String,
    pub shards: u32,
}

impl StoreConfig {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table: env.required(TABLE)?,
            shards: env.number(SHARDS, DEFAULT_ROOM_SHARDS)?,
        })
    }
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerConfig {
    pub jwt_secret: JwtSecretSource,
}

impl AuthorizerConfig {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let jwt_secret = match (env.required(JWT_SECRET_ARN), env.required(JWT_SECRET)) {
            (Ok(arn), _) => JwtSecretSource::SecretsManager { arn },
            (Err(_), Ok(value)) => JwtSecretSource::Value(value),
            (Err(_), Err(_)) => {
                return Err(ConfigError::Missing(
                    "FANOUT_JWT_SECRET_ARN (or FANOUT_JWT_SECRET)",
                ));
            }
        };
        Ok(Self { jwt_secret })
    }
}

/// connect, disconnect and message.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub store: StoreConfig,
    pub event_bus: String,
    pub settings: GatewaySettings,
}

impl GatewayConfig {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::read(env)?,
            event_bus: env.required(EVENT_BUS)?,
            settings: GatewaySettings {
                max_payload_bytes: env.number(MAX_PAYLOAD_BYTES_VAR, MAX_PAYLOAD_BYTES)?,
                ..GatewaySettings::default()
            },
        })
    }
}

/// What posting needs (the broadcaster, and the planner's fast path).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub management_endpoint: String,
    pub deliver_queue: String,
    pub deliver_dlq: String,
    /// This worker's share of the budget; `None` when the budget is 0.
    pub worker_rate: Option<Rate>,
    pub broadcaster: BroadcasterSettings,
}

impl DeliveryConfig {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let endpoint = env.required(MANAGEMENT_ENDPOINT)?;
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: MANAGEMENT_ENDPOINT,
                value: endpoint,
                reason:
                    "must be a URL like https://{api-id}.execute-api.{region}.amazonaws.com/{stage}"
                        .into(),
            });
        }
        let post_timeout = Duration::from_millis(env.number(POST_TIMEOUT_MS, 3_000u64)?);
        let deadline_margin = Duration::from_millis(env.number(DEADLINE_MARGIN_MS, 5_000u64)?);
        if post_timeout >= deadline_margin {
            return Err(ConfigError::Invalid {
                name: POST_TIMEOUT_MS,
                value: post_timeout.as_millis().to_string(),
                reason: format!("must be shorter than {DEADLINE_MARGIN_MS}"),
            });
        }
        Ok(Self {
            management_endpoint: endpoint,
            deliver_queue: env.required(DELIVER_QUEUE)?,
            deliver_dlq: env.required(DELIVER_DLQ)?,
            worker_rate: Rate::share(
                env.count(API_BUDGET_RPS, 10_000u32)?,
                env.count(API_BUDGET_BURST, 5_000u32)?,
                env.number(DELIVER_MAX_CONCURRENCY, DEFAULT_DELIVER_MAX_CONCURRENCY)?,
            ),
            broadcaster: BroadcasterSettings {
                max_in_flight: env.number(MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT)?,
                tries_per_invocation: env
                    .number(TRIES_PER_INVOCATION, DEFAULT_TRIES_PER_INVOCATION)?,
                max_attempts: env.number(MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS)?,
                post_timeout,
                deadline_margin,
                max_connections_per_job: env
                    .number(MAX_CONNECTIONS_PER_JOB, DEFAULT_MAX_CONNECTIONS_PER_JOB)?,
                ..BroadcasterSettings::default()
            },
        })
    }
}

#[derive(Debug, Clone)]
pub struct BroadcasterConfig {
    pub store: StoreConfig,
    pub delivery: DeliveryConfig,
}

impl BroadcasterConfig {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::read(env)?,
            delivery: DeliveryConfig::read(env)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PlannerConfig {
    pub store: StoreConfig,
    pub delivery: DeliveryConfig,
    pub settings: PlannerSettings,
}

impl PlannerConfig {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::read(env)?,
            delivery: DeliveryConfig::read(env)?,
            settings: PlannerSettings {
                max_connections_per_job: env
                    .number(MAX_CONNECTIONS_PER_JOB, DEFAULT_MAX_CONNECTIONS_PER_JOB)?,
                direct_max_connections: env
                    .count(DIRECT_MAX_CONNECTIONS, DEFAULT_DIRECT_MAX_CONNECTIONS)?,
                dedupe_ttl: Duration::from_secs(
                    env.number(DEDUPE_TTL_SECS, DEFAULT_DEDUPE_TTL.as_secs())?,
                ),
                ..PlannerSettings::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELIVERY: &[(&str, &str)] = &[
        (TABLE, "fanout"),
        (
            MANAGEMENT_ENDPOINT,
            "https://abc.execute-api.us-east-1.amazonaws.com/prod",
        ),
        (DELIVER_QUEUE, "fanout-deliver"),
        (DELIVER_DLQ, "fanout-deliver-dlq"),
    ];

    #[test]
    fn defaults_are_the_librarys() {
        let c = BroadcasterConfig::read(&Env::from_pairs(DELIVERY)).unwrap();
        assert_eq!(c.store.shards, DEFAULT_ROOM_SHARDS);
        assert_eq!(c.delivery.worker_rate, Rate::new(1_250, 625));
        let d = BroadcasterSettings::default();
        assert_eq!(c.delivery.broadcaster.max_attempts, d.max_attempts);
        assert_eq!(c.delivery.broadcaster.post_timeout, d.post_timeout);
        assert_eq!(c.delivery.broadcaster.deadline_margin, d.deadline_margin);
        let p = PlannerConfig::read(&Env::from_pairs(DELIVERY)).unwrap();
        assert_eq!(p.settings.dedupe_ttl, DEFAULT_DEDUPE_TTL);
        assert_eq!(
            p.settings.direct_max_connections,
            DEFAULT_DIRECT_MAX_CONNECTIONS
        );
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = BroadcasterConfig::read(&Env::from_pairs(&DELIVERY[..2])).unwrap_err();
        assert_eq!(err, ConfigError::Missing(DELIVER_QUEUE));
        assert_eq!(
            err.to_string(),
            "environment variable FANOUT_DELIVER_QUEUE is required but not set"
        );
        assert_eq!(
            AuthorizerConfig::read(&Env::from_pairs(&[(JWT_SECRET, "  ")])).unwrap_err(),
            ConfigError::Missing("FANOUT_JWT_SECRET_ARN (or FANOUT_JWT_SECRET)")
        );
        assert_eq!(
            AuthorizerConfig::read(&Env::from_pairs(&[
                (
                    JWT_SECRET_ARN,
                    "arn:aws:secretsmanager:us-east-1:1:secret:jwt"
                ),
                (JWT_SECRET, "ignored"),
            ]))
            .unwrap()
            .jwt_secret,
            JwtSecretSource::SecretsManager {
                arn: "arn:aws:secretsmanager:us-east-1:1:secret:jwt".into()
            }
        );
        assert_eq!(
            GatewayConfig::read(&Env::from_pairs(&[(TABLE, "t")])).unwrap_err(),
            ConfigError::Missing(EVENT_BUS)
        );
    }

    #[test]
    fn an_invalid_variable_is_named_with_its_value() {
        let mut pairs = DELIVERY.to_vec();
        pairs.push((SHARDS, "four"));
        let err = BroadcasterConfig::read(&Env::from_pairs(&pairs)).unwrap_err();
        assert!(err.to_string().contains("FANOUT_SHARDS=\"four\""), "{err}");
        let mut pairs = DELIVERY.to_vec();
        pairs.push((MAX_ATTEMPTS, "0"));
        let err = BroadcasterConfig::read(&Env::from_pairs(&pairs)).unwrap_err();
        assert!(err.to_string().contains("must be greater than 0"), "{err}");
        let mut pairs = DELIVERY.to_vec();
        pairs[1] = (MANAGEMENT_ENDPOINT, "abc.execute-api");
        let err = BroadcasterConfig::read(&Env::from_pairs(&pairs)).unwrap_err();
        assert!(err.to_string().contains(MANAGEMENT_ENDPOINT), "{err}");
        let mut pairs = DELIVERY.to_vec();
        pairs.push((API_BUDGET_RPS, "0"));
        assert_eq!(
            BroadcasterConfig::read(&Env::from_pairs(&pairs))
                .unwrap()
                .delivery
                .worker_rate,
            None,
            "a zero budget turns the limiter off"
        );
    }
}
