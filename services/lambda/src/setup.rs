//! Built once per execution environment: logs, the SDK configuration, and
//! the adapters each handler takes.

use std::sync::Arc;

use aws_config::SdkConfig;
use fanout_aws::{ApiGatewayPoster, DynamoStore, EventBridgeBus, SqsQueue};
use fanout_core::auth::TokenVerifier;
use fanout_core::clock::{Clock, SystemClock};
use fanout_core::handlers::GatewayDeps;
use fanout_core::handlers::broadcaster::BroadcasterDeps;
use fanout_core::handlers::message::MessageDeps;
use fanout_core::handlers::planner::PlannerDeps;
use fanout_core::handlers::sweeper::SweeperDeps;
use fanout_core::metrics::{COLD_START, EmfWriter, Metric, MetricsSink};
use fanout_core::ports::QueueError;
use fanout_core::rate::RateGate;
use fanout_core::settings::{BroadcasterSettings, MetricsSettings};
use fanout_core::token::check_secret;

use fanout_core::handlers::{broadcaster, planner};

use crate::config::{
    AuthorizerConfig, BroadcasterConfig, DeliveryConfig, GatewayConfig, JwtSecretSource,
    MessageConfig, PlannerConfig, StoreConfig, SweeperConfig,
};

/// The level the operator chose for the functions' own lines (the
/// template's `ApplicationLogLevel`). Lambda's filter is kept at INFO or
/// below ([`lambda_filter_level`]): it reads a line without a level, such
/// as every EMF metric line, as INFO, and would drop the metrics at WARN.
pub const LOG_LEVEL_VARIABLE: &str = "FANOUT_LOG_LEVEL";

/// The levels Lambda's advanced logging controls accept, most verbose first.
pub const LAMBDA_LOG_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// The `ApplicationLogLevel` Lambda filters at when the operator chose
/// `level` (as the template derives it): the level itself when it is more
/// verbose than INFO, INFO otherwise, so no metric line is ever dropped.
pub fn lambda_filter_level(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "TRACE" => "TRACE",
        "DEBUG" => "DEBUG",
        _ => "INFO",
    }
}

/// How a function logs, from Lambda's advanced logging controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `AWS_LAMBDA_LOG_FORMAT=JSON` (the template's `LoggingConfig`, and
    /// the default here); `Text` for plain lines.
    pub json: bool,
    /// The filter: `FANOUT_LOG_LEVEL` (the operator's level) wins, then
    /// `AWS_LAMBDA_LOG_LEVEL` (Lambda's `ApplicationLogLevel`), as in
    /// Lambda's own Rust runtime; otherwise `RUST_LOG`; otherwise `info`.
    pub filter: String,
}

impl LogSettings {
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let json = !lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("text"));
        let level = lookup(LOG_LEVEL_VARIABLE)
            .filter(|l| !l.trim().is_empty())
            .or_else(|| lookup("AWS_LAMBDA_LOG_LEVEL"))
            .map(|l| l.trim().to_ascii_lowercase());
        let filter = match level {
            // tracing has no FATAL; its lines are errors.
            Some(level) if level == "fatal" => "error".to_string(),
            Some(level) if !level.is_empty() => level,
            _ => lookup("RUST_LOG")
                .filter(|f| !f.trim().is_empty())
                .unwrap_or_else(|| "info".into()),
        };
        Self { json, filter }
    }
}

/// Log lines on stderr (CloudWatch Logs keeps them apart from the EMF
/// lines on stdout), as [`LogSettings`] says, each with the fields of
/// every span it is in: the runtime's `requestId` and the handler's event
/// id on every line of an invocation.
pub fn init_logging() {
    let settings = LogSettings::from_env(|name| std::env::var(name).ok());
    // Set once per process; a second call (tests) keeps the first.
    let _ = tracing::subscriber::set_global_default(subscriber(&settings, std::io::stderr));
}

/// The subscriber [`init_logging`] installs, writing to `writer`.
pub fn subscriber<W>(
    settings: &LogSettings,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(writer)
        .with_env_filter(filter);
    if settings.json {
        Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true)
                .finish(),
        )
    } else {
        // CloudWatch stamps each line itself.
        Box::new(builder.without_time().finish())
    }
}

/// This environment's metrics: EMF lines on stdout under the stack's
/// namespace and service. Records the `ColdStart` of `function` first:
/// it is built once per execution environment, at its start.
pub fn metrics(settings: &MetricsSettings, function: &str) -> Arc<EmfWriter<std::io::Stdout>> {
    let writer = Arc::new(EmfWriter::new(std::io::stdout(), settings.into()));
    writer.record(function, "", &[Metric::count(COLD_START, 1)]);
    writer
}

/// The SDK configuration from the Lambda environment (region, role
/// credentials; `AWS_ENDPOINT_URL` when set).
pub async fn sdk_config() -> SdkConfig {
    fanout_aws::sdk_config(None).await
}

/// The token key: read once from Secrets Manager, or given; refused when
/// empty, shorter than 32 bytes, or the public development secret (unless
/// `FANOUT_ALLOW_DEVELOPMENT_SECRET` allows it).
pub async fn jwt_secret(
    sdk: &SdkConfig,
    source: &JwtSecretSource,
    allow_development_secret: bool,
) -> Result<String, String> {
    let secret = match source {
        JwtSecretSource::Value(value) => value.clone(),
        JwtSecretSource::SecretsManager { arn } => aws_sdk_secretsmanager::Client::new(sdk)
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| format!("could not read secret {arn}: {e}"))?
            .secret_string
            .ok_or_else(|| format!("secret {arn} has no string value"))?,
    };
    check_secret(&secret, !allow_development_secret)
        .map_err(|e| format!("refusing the token key: {e}"))?;
    Ok(secret)
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

pub fn store(sdk: &SdkConfig, config: &StoreConfig) -> Arc<DynamoStore> {
    Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &config.table,
        clock(),
        config.settings.shards,
    ))
}

/// connect's and disconnect's dependencies: they verify nothing and close
/// nothing.
pub fn gateway_deps(sdk: &SdkConfig, config: &GatewayConfig) -> GatewayDeps {
    gateway_deps_on(store(sdk, &config.store), sdk, config)
}

fn gateway_deps_on(
    store: Arc<DynamoStore>,
    sdk: &SdkConfig,
    config: &GatewayConfig,
) -> GatewayDeps {
    GatewayDeps {
        store: store.clone(),
        bus: Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(sdk),
            &config.event_bus,
        )),
        clock: clock(),
        settings: config.settings.clone(),
        presence: store,
        presence_settings: config.presence.clone(),
    }
}

/// The token verifier the configuration describes: the HS256 key (read
/// once from Secrets Manager when it comes from there) and the JWKS.
pub async fn token_verifier(
    sdk: &SdkConfig,
    config: &AuthorizerConfig,
) -> Result<TokenVerifier, String> {
    let secret = match config.jwt_secret().map_err(|e| e.to_string())? {
        Some(source) => Some(jwt_secret(sdk, &source, config.allow_development_secret).await?),
        None => None,
    };
    if config.auth.default_policy == fanout_core::auth::DefaultPolicy::Open {
        tracing::warn!(
            "FANOUT_DEFAULT_POLICY=open: tokens without capabilities may enter every room of their tenant"
        );
    }
    fanout_aws::jwks::token_verifier(secret.as_deref().map(str::as_bytes), &config.auth)
}

/// The message function's dependencies: the gateway's, plus the verifier
/// for `refresh` and grants, the abuse limits, and @connections to close
/// connections whose token expired.
pub async fn message_deps(sdk: &SdkConfig, config: &MessageConfig) -> Result<MessageDeps, String> {
    let store = store(sdk, &config.gateway.store);
    Ok(MessageDeps {
        gateway: gateway_deps_on(store.clone(), sdk, &config.gateway),
        verifier: Arc::new(token_verifier(sdk, &config.keys).await?),
        poster: Arc::new(ApiGatewayPoster::for_endpoint(
            sdk,
            &config.management_endpoint,
            BroadcasterSettings::default().post_timeout,
        )),
        streams: store,
        stream: config.stream.clone(),
        abuse: config.abuse.clone(),
    })
}

/// The sweeper's dependencies: the gateway's, plus @connections to close
/// connections TTL removed.
pub fn sweeper_deps(sdk: &SdkConfig, config: &SweeperConfig) -> SweeperDeps {
    SweeperDeps {
        gateway: gateway_deps(sdk, &config.gateway),
        poster: Arc::new(ApiGatewayPoster::for_endpoint(
            sdk,
            &config.management_endpoint,
            BroadcasterSettings::default().post_timeout,
        )),
    }
}

/// The broadcaster's dependencies: the store, the @connections poster, the
/// deliver queue and its DLQ (from their URLs: no request at start-up), and
/// this environment's rate gate.
pub fn broadcaster_deps(
    sdk: &SdkConfig,
    config: &BroadcasterConfig,
) -> Result<BroadcasterDeps, QueueError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let metrics = metrics(&config.metrics, broadcaster::FUNCTION);
    delivery_deps(
        store(sdk, &config.store),
        &sqs,
        sdk,
        &config.delivery,
        metrics,
    )
}

/// What delivering needs, on clients the caller already built (the
/// planner shares its store and SQS client with its fast path).
fn delivery_deps(
    store: Arc<DynamoStore>,
    sqs: &aws_sdk_sqs::Client,
    sdk: &SdkConfig,
    config: &DeliveryConfig,
    metrics: Arc<dyn MetricsSink>,
) -> Result<BroadcasterDeps, QueueError> {
    Ok(BroadcasterDeps {
        store,
        poster: Arc::new(ApiGatewayPoster::for_endpoint(
            sdk,
            &config.management_endpoint,
            config.broadcaster.post_timeout,
        )),
        deliver_queue: Arc::new(SqsQueue::at_url(sqs.clone(), &config.deliver_queue_url)?),
        dead_letter_queue: Arc::new(SqsQueue::at_url(sqs.clone(), &config.deliver_dlq_url)?),
        gate: config.worker_rate().map(|r| Arc::new(RateGate::new(r))),
        metrics,
        clock: clock(),
        settings: config.broadcaster.clone(),
        jobs: config.jobs.clone(),
    })
}

/// The planner's dependencies: its store and dedupe markers, the deliver
/// queue, the plan DLQ, and the broadcaster's own dependencies for the fast
/// path, all on one DynamoDB and one SQS client.
pub fn planner_deps(sdk: &SdkConfig, config: &PlannerConfig) -> Result<PlannerDeps, QueueError> {
    let store = store(sdk, &config.store);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let metrics: Arc<dyn MetricsSink> = metrics(&config.metrics, planner::FUNCTION);
    let direct = delivery_deps(store.clone(), &sqs, sdk, &config.delivery, metrics.clone())?;
    Ok(PlannerDeps {
        store: store.clone(),
        dedupe: store.clone(),
        streams: store,
        stream: config.stream.clone(),
        deliver_queue: direct.deliver_queue.clone(),
        dead_letter_queue: Arc::new(SqsQueue::at_url(sqs, &config.plan_dlq_url)?),
        clock: clock(),
        metrics,
        direct: (config.settings.direct_max_connections > 0).then(|| Arc::new(direct)),
        settings: config.settings.clone(),
        jobs: config.delivery.jobs.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn lambdas_log_controls_set_format_and_level() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            LogSettings::from_env(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(
            env(&[]),
            LogSettings {
                json: true,
                filter: "info".into()
            }
        );
        assert_eq!(
            env(&[("AWS_LAMBDA_LOG_FORMAT", "Text"), ("RUST_LOG", "debug")]),
            LogSettings {
                json: false,
                filter: "debug".into()
            }
        );
        assert_eq!(
            env(&[("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "debug")]).filter,
            "warn"
        );
        assert_eq!(env(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]).filter, "error");
        assert_eq!(
            env(&[
                ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
                ("FANOUT_LOG_LEVEL", "ERROR")
            ])
            .filter,
            "error"
        );
    }

    #[test]
    fn lambda_filters_at_info_or_below_whatever_the_operator_chose() {
        let derived: Vec<&str> = LAMBDA_LOG_LEVELS
            .iter()
            .map(|l| lambda_filter_level(l))
            .collect();
        assert_eq!(derived, ["TRACE", "DEBUG", "INFO", "INFO", "INFO", "INFO"]);
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_of_an_invocation_carries_the_request_id() {
        let out = Captured::default();
        let writer = out.clone();
        let settings = LogSettings {
            json: true,
            filter: "info".into(),
        };
        tracing::subscriber::with_default(subscriber(&settings, move || writer.clone()), || {
            // The runtime's span (lambda_runtime's `request_span`), and a
            // handler's own span inside it.
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
            let _outer = invoke.enter();
            tracing::info!("in the runtime's span");
            let event = tracing::info_span!("event", eventId = "e-1");
            let _inner = event.enter();
            tracing::warn!("in the handler's span");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in &lines {
            assert_eq!(line["spans"][0]["requestId"], "req-1", "{line}");
        }
        assert_eq!(lines[1]["spans"][1]["eventId"], "e-1");
    }
}
