//! Each function's environment, as the SAM template builds it: Lambda's
//! own variables, the resources the template passes by `!Ref`/`!GetAtt`
//! (here the stack's table, bus, queues and @connections endpoint), and
//! every setting the function reads, with the values this stack runs with
//! (the template's parameters are the stack's flags).

use std::time::Duration;

use clap::Args;
use fanout_core::variables::variables;
use fanout_lambda::config::{
    AuthorizerFunctionConfig, BroadcasterConfig, GatewayConfig, MessageConfig, PlannerConfig,
    SweeperConfig,
};
use fanout_lambda::setup::{LOG_LEVEL_VARIABLE, lambda_filter_level};

use crate::config::StackConfig;

/// The gateway functions' timeout: the template's `FunctionTimeoutSeconds`
/// default (API Gateway itself waits at most 29 s for a route).
pub const GATEWAY_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The template's `MemorySize` (Globals).
pub const MEMORY_SIZE_MB: u32 = 256;

/// What the template's references resolve to, for this stack.
#[derive(Debug, Clone)]
pub struct Wiring {
    pub table: String,
    pub event_bus: String,
    /// `http://{stack}/{stage}`: the stack's @connections API.
    pub management_endpoint: String,
    pub deliver_queue_url: String,
    pub deliver_dlq_url: String,
    pub plan_dlq_url: String,
    /// The Secrets Manager secret holding the token key.
    pub jwt_secret_arn: String,
    /// Whether that key is the public development one.
    pub development_secret: bool,
    pub region: String,
    /// The AWS endpoint (moto's server); `None` for the real one.
    pub endpoint_url: Option<String>,
    /// The resource prefix, which also prefixes function names.
    pub prefix: String,
    pub log_level: String,
}

/// The function's name as deployed here.
pub fn function_name(wiring: &Wiring, function: &str) -> String {
    format!("{}fanout-{function}", wiring.prefix)
}

/// Every variable `function` starts with.
pub fn environment(
    function: &str,
    config: &StackConfig,
    wiring: &Wiring,
) -> Result<Vec<(String, String)>, String> {
    let name = function_name(wiring, function);
    let mut env: Vec<(String, String)> = [
        ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            MEMORY_SIZE_MB.to_string(),
        ),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
        // As the template derives them from `ApplicationLogLevel`.
        (
            "AWS_LAMBDA_LOG_LEVEL",
            lambda_filter_level(&wiring.log_level).into(),
        ),
        (LOG_LEVEL_VARIABLE, wiring.log_level.to_uppercase()),
        ("AWS_REGION", wiring.region.clone()),
        ("AWS_DEFAULT_REGION", wiring.region.clone()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".into()),
        ("TZ", ":UTC".into()),
        // Lambda sets a PATH too; bootstraps that run tools need one.
        (
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(endpoint) = &wiring.endpoint_url {
        env.push(("AWS_ENDPOINT_URL".into(), endpoint.clone()));
    }
    let reads = match function {
        "authorizer" => fanout_lambda::config::variables::<AuthorizerFunctionConfig>(),
        "connect" | "disconnect" => fanout_lambda::config::variables::<GatewayConfig>(),
        "message" => fanout_lambda::config::variables::<MessageConfig>(),
        "planner" => fanout_lambda::config::variables::<PlannerConfig>(),
        "broadcaster" => fanout_lambda::config::variables::<BroadcasterConfig>(),
        "sweeper" => fanout_lambda::config::variables::<SweeperConfig>(),
        other => return Err(format!("no function named {other}")),
    };
    env.extend(
        settings_and_resources(config, wiring)
            .into_iter()
            .filter(|(name, _)| reads.contains(name)),
    );
    Ok(env)
}

/// Every `FANOUT_*` value this stack would give any function.
fn settings_and_resources(config: &StackConfig, wiring: &Wiring) -> Vec<(String, String)> {
    let mut all = Vec::new();
    all.extend(variables(&config.gateway));
    all.extend(variables(&config.auth));
    all.extend(variables(&config.abuse));
    all.extend(variables(&config.store));
    all.extend(variables(&config.jobs));
    all.extend(variables(&config.planner));
    all.extend(variables(&config.stream));
    all.extend(variables(&config.presence));
    all.extend(variables(&config.broadcaster));
    all.extend(variables(&config.budget));
    all.extend(variables(&config.metrics));
    let resources = [
        ("FANOUT_TABLE", wiring.table.clone()),
        ("FANOUT_EVENT_BUS", wiring.event_bus.clone()),
        (
            "FANOUT_MANAGEMENT_ENDPOINT",
            wiring.management_endpoint.clone(),
        ),
        ("FANOUT_DELIVER_QUEUE_URL", wiring.deliver_queue_url.clone()),
        ("FANOUT_DELIVER_DLQ_URL", wiring.deliver_dlq_url.clone()),
        ("FANOUT_PLAN_DLQ_URL", wiring.plan_dlq_url.clone()),
        ("FANOUT_JWT_SECRET_ARN", wiring.jwt_secret_arn.clone()),
        (
            "FANOUT_ALLOW_DEVELOPMENT_SECRET",
            wiring.development_secret.to_string(),
        ),
    ];
    all.extend(resources.map(|(k, v)| (k.to_string(), v)));
    all
}

/// Checks that `env` is a configuration `T` accepts (what the function
/// would say at start-up), naming the variable otherwise.
pub fn check<T: Args + fanout_lambda::config::FromEnv + fanout_lambda::config::Validate>(
    env: &[(String, String)],
) -> Result<(), String> {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    fanout_lambda::config::load::<T>(&fanout_lambda::config::Env::from_pairs(&pairs))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiring() -> Wiring {
        Wiring {
            table: "t".into(),
            event_bus: "b".into(),
            management_endpoint: "http://127.0.0.1:1/local".into(),
            deliver_queue_url: "http://127.0.0.1:2/123/fanout-deliver".into(),
            deliver_dlq_url: "http://127.0.0.1:2/123/fanout-deliver-dlq".into(),
            plan_dlq_url: "http://127.0.0.1:2/123/fanout-plan-dlq".into(),
            jwt_secret_arn: "arn:aws:secretsmanager:us-east-1:123:secret:k".into(),
            development_secret: true,
            region: "us-east-1".into(),
            endpoint_url: Some("http://127.0.0.1:2".into()),
            prefix: "p-".into(),
            log_level: "warn".into(),
        }
    }

    fn value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn every_function_accepts_the_environment_it_gets() {
        let config = StackConfig::defaults();
        let w = wiring();
        let env = |f| environment(f, &config, &w).unwrap();
        check::<AuthorizerFunctionConfig>(&env("authorizer")).unwrap();
        check::<GatewayConfig>(&env("connect")).unwrap();
        check::<GatewayConfig>(&env("disconnect")).unwrap();
        check::<MessageConfig>(&env("message")).unwrap();
        check::<PlannerConfig>(&env("planner")).unwrap();
        check::<BroadcasterConfig>(&env("broadcaster")).unwrap();
        check::<SweeperConfig>(&env("sweeper")).unwrap();
    }

    #[test]
    fn a_function_gets_only_what_it_reads_with_the_stacks_values() {
        let mut config = StackConfig::defaults();
        config.stream.stream_max_events = 5;
        let w = wiring();
        let connect = environment("connect", &config, &w).unwrap();
        assert_eq!(
            value(&connect, "AWS_LAMBDA_FUNCTION_NAME"),
            Some("p-fanout-connect")
        );
        assert_eq!(value(&connect, "FANOUT_TABLE"), Some("t"));
        assert_eq!(value(&connect, "FANOUT_DELIVER_QUEUE_URL"), None);
        assert_eq!(value(&connect, "FANOUT_JWT_SECRET_ARN"), None);
        let message = environment("message", &config, &w).unwrap();
        assert_eq!(value(&message, "FANOUT_STREAM_MAX_EVENTS"), Some("5"));
        assert_eq!(
            value(&message, "AWS_ENDPOINT_URL"),
            Some("http://127.0.0.1:2")
        );
        assert!(environment("nope", &config, &w).is_err());
    }
}
