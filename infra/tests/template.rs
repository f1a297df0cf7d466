//! The SAM template agrees with the code: every tunable's default is the
//! one its settings group defines (`fanout_core::settings`, which the local
//! stack and the Lambdas both read), every function is a package in
//! `services/` built with cargo-lambda for `provided.al2023` on arm64, each
//! function's environment is one its binary accepts (read by the binary's
//! own configuration code), and the WebSocket API has the routes the
//! protocol needs. Linters do not catch these.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fanout_lambda::config::{
    AuthorizerFunctionConfig, BroadcasterConfig, Env, GatewayConfig, MessageConfig, PlannerConfig,
    SweeperConfig, load, variables,
};
use fanout_local::StackConfig;
use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("infra/ is inside the repository")
        .to_path_buf()
}

fn template() -> Value {
    let path = root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).expect("infra/template.yaml");
    serde_yaml::from_str(&text).expect("the template is YAML")
}

fn map(v: &Value) -> &serde_yaml::Mapping {
    v.as_mapping().expect("a mapping")
}

/// A parameter's default, as text.
fn default_of(t: &Value, parameter: &str) -> String {
    let p = &t["Parameters"][parameter];
    assert!(!p.is_null(), "parameter {parameter} is missing");
    match &p["Default"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("parameter {parameter} has default {other:?}"),
    }
}

fn number(t: &Value, parameter: &str) -> u64 {
    default_of(t, parameter)
        .parse()
        .unwrap_or_else(|_| panic!("{parameter}'s default is not a number"))
}

fn resources(t: &Value) -> impl Iterator<Item = (&str, &Value)> {
    map(&t["Resources"])
        .iter()
        .map(|(k, v)| (k.as_str().expect("resource names are strings"), v))
}

fn of_type<'a>(t: &'a Value, kind: &'a str) -> Vec<(&'a str, &'a Value)> {
    resources(t).filter(|(_, r)| r["Type"] == kind).collect()
}

#[test]
fn tunables_default_to_the_code_defaults() {
    let t = template();
    // The single definition of every tunable: the settings groups, as the
    // local stack flattens them, plus its event source mapping settings.
    let local = StackConfig::defaults();
    let table: Vec<(&str, u64)> = vec![
        ("ApiBudgetRps", u64::from(local.budget.api_budget_rps)),
        ("ApiBudgetBurst", u64::from(local.budget.api_budget_burst)),
        (
            "DeliverMaxConcurrency",
            local.budget.broadcaster_concurrency as u64,
        ),
        ("PlanMaxConcurrency", local.planner_concurrency as u64),
        ("PlannerBatchSize", local.planner_batch_size as u64),
        ("BroadcasterBatchSize", local.broadcaster_batch_size as u64),
        ("BatchingWindowSeconds", local.batching_window.as_secs()),
        (
            "FunctionTimeoutSeconds",
            local.broadcaster_timeout.as_secs(),
        ),
        ("FunctionTimeoutSeconds", local.planner_timeout.as_secs()),
        ("MaxReceiveCount", u64::from(local.max_receive_count)),
        ("Shards", u64::from(local.store.shards)),
        (
            "MaxConnectionsPerJob",
            local.jobs.max_connections_per_job as u64,
        ),
        ("MaxInFlight", local.broadcaster.max_in_flight as u64),
        (
            "TriesPerInvocation",
            u64::from(local.broadcaster.tries_per_invocation),
        ),
        ("MaxAttempts", u64::from(local.broadcaster.max_attempts)),
        (
            "DirectMaxConnections",
            local.planner.direct_max_connections as u64,
        ),
        ("DedupeTtlSeconds", local.planner.dedupe_ttl.as_secs()),
        ("BusRetryAttempts", u64::from(local.bus_retry_attempts)),
        ("BusMaxEventAgeSeconds", local.bus_max_event_age.as_secs()),
        (
            "MaxTokenLifetimeSeconds",
            local.auth.max_token_lifetime.as_secs(),
        ),
        ("TokenLeewaySeconds", local.auth.token_leeway.as_secs()),
        ("ClientFrameRate", u64::from(local.abuse.client_frame_rate)),
        (
            "ClientFrameBurst",
            u64::from(local.abuse.client_frame_burst),
        ),
        (
            "TenantPublishRate",
            u64::from(local.abuse.tenant_publish_rate),
        ),
        (
            "TenantPublishBurst",
            u64::from(local.abuse.tenant_publish_burst),
        ),
        (
            "ClientSignalRate",
            u64::from(local.abuse.client_signal_rate),
        ),
        (
            "ClientSignalBurst",
            u64::from(local.abuse.client_signal_burst),
        ),
        ("PresenceMaxMembers", local.presence.presence_max_members),
        (
            "PresenceCountIntervalSeconds",
            local.presence.presence_count_interval.as_secs(),
        ),
        (
            "StreamRetentionSeconds",
            local.stream.stream_retention.as_secs(),
        ),
        ("StreamMaxEvents", local.stream.stream_max_events),
        ("ReplayMaxEvents", local.stream.replay_max_events as u64),
        ("HistoryMaxPage", local.stream.history_max_page as u64),
        (
            "HeartbeatExpirySeconds",
            local.gateway.heartbeat_expiry.as_secs(),
        ),
        ("SweeperBatchSize", local.sweeper_batch_size as u64),
        (
            "SweeperMaxRetryAttempts",
            u64::from(local.sweeper_max_retry_attempts),
        ),
    ];
    for (parameter, code) in table {
        assert_eq!(number(&t, parameter), code, "default of {parameter}");
    }
    assert_eq!(
        default_of(&t, "TenantBoundSources"),
        local.planner.tenant_bound_sources.to_string(),
        "default of TenantBoundSources"
    );
    assert_eq!(default_of(&t, "EphemeralRooms"), "");
    assert!(local.stream.ephemeral_rooms.is_empty());
    for (parameter, code) in [
        ("TenantClaim", &local.auth.tenant_claim),
        ("UserClaim", &local.auth.user_claim),
        ("CapabilitiesClaim", &local.auth.capabilities_claim),
    ] {
        assert_eq!(&default_of(&t, parameter), code, "default of {parameter}");
    }
    // The one intended difference: a deployment denies what its tokens do
    // not grant; the local stack is open for development.
    assert_eq!(default_of(&t, "DefaultPolicy"), "deny");
    assert_eq!(
        local.auth.default_policy,
        fanout_core::auth::DefaultPolicy::Open
    );
    // The queues' visibility timeout follows the function timeout
    // (Mappings: QueueVisibility), and the local stack's default is the
    // one the default timeout gets.
    let timeout = default_of(&t, "FunctionTimeoutSeconds");
    assert_eq!(
        t["Mappings"]["QueueVisibility"][timeout.as_str()]["Seconds"].as_u64(),
        Some(local.visibility_timeout.as_secs()),
        "the visibility timeout of the default FunctionTimeoutSeconds"
    );
    // And a deployed function must outlive the broadcaster's deadline
    // margin, or no post could start.
    assert!(number(&t, "FunctionTimeoutSeconds") > local.broadcaster.deadline_margin.as_secs());
}

/// Evaluates an environment value the way CloudFormation would, with
/// parameter defaults for `!Ref Parameter` and placeholders for resources.
fn evaluate(t: &Value, v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let inner = &tagged.value;
            match tag.as_str() {
                "!Ref" => {
                    let name = inner.as_str().expect("!Ref names a string");
                    if t["Parameters"][name].is_null() {
                        format!("{name}-physical-id")
                    } else {
                        default_of(t, name)
                    }
                }
                "!GetAtt" => format!("{}-attribute", inner.as_str().unwrap_or("x")),
                "!Sub" => {
                    let text = inner.as_str().expect("!Sub of a string");
                    let mut out = String::new();
                    let mut rest = text;
                    while let Some(start) = rest.find("${") {
                        out.push_str(&rest[..start]);
                        let end = rest[start..].find('}').expect("closed ${") + start;
                        let name = &rest[start + 2..end];
                        if !t["Parameters"][name].is_null() {
                            out.push_str(&default_of(t, name));
                        } else {
                            out.push_str(&name.replace(['.', ':'], "-").to_lowercase());
                        }
                        rest = &rest[end + 1..];
                    }
                    out.push_str(rest);
                    out
                }
                other => panic!("unexpected tag {other} in an environment variable"),
            }
        }
        other => panic!("unexpected environment value {other:?}"),
    }
}

fn environment(t: &Value, function: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for scope in [
        &t["Globals"]["Function"]["Environment"]["Variables"],
        &function["Properties"]["Environment"]["Variables"],
    ] {
        if let Some(vars) = scope.as_mapping() {
            for (k, v) in vars {
                env.insert(k.as_str().unwrap().to_string(), evaluate(t, v));
            }
        }
    }
    env
}

#[test]
fn every_function_is_a_cargo_lambda_package_whose_binary_accepts_its_environment() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["Architectures"][0], "arm64");
    let functions = of_type(&t, "AWS::Serverless::Function");
    let mut binaries = Vec::new();
    for (name, f) in &functions {
        assert_eq!(
            f["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name} builds with cargo-lambda"
        );
        let binary = f["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} names its binary"));
        let package = binary
            .strip_prefix("fanout-")
            .unwrap_or_else(|| panic!("{binary} is not a fanout-<function> binary"));
        let manifest = root().join("services").join(package).join("Cargo.toml");
        let manifest = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{name}: {} ({e})", manifest.display()));
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "services/{package} builds {binary}"
        );
        binaries.push(binary.to_string());

        let env = environment(&t, f);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let reads = match package {
            "authorizer" => variables::<AuthorizerFunctionConfig>(),
            "message" => variables::<MessageConfig>(),
            "connect" | "disconnect" => variables::<GatewayConfig>(),
            "sweeper" => variables::<SweeperConfig>(),
            "planner" => variables::<PlannerConfig>(),
            "broadcaster" => variables::<BroadcasterConfig>(),
            other => panic!("no configuration reader for function {other}"),
        };
        for (key, _) in &pairs {
            assert!(
                reads.iter().any(|r| r == key)
                    || *key == "RUST_LOG"
                    || *key == fanout_lambda::setup::LOG_LEVEL_VARIABLE,
                "{name} sets {key}, which its function does not read"
            );
        }
        let env = Env::from_pairs(&pairs);
        let local = StackConfig::defaults();
        let read = match package {
            "authorizer" => load::<AuthorizerFunctionConfig>(&env).map(|f| {
                let a = f.keys;
                assert_eq!(a.auth.tenant_claim, local.auth.tenant_claim);
                assert_eq!(a.auth.max_token_lifetime, local.auth.max_token_lifetime);
            }),
            "message" => load::<MessageConfig>(&env).map(|m| {
                assert_eq!(m.gateway.settings, local.gateway);
                assert_eq!(m.abuse, local.abuse);
                assert_eq!(m.keys.auth.token_leeway, local.auth.token_leeway);
            }),
            "connect" | "disconnect" => load::<GatewayConfig>(&env).map(|g| {
                assert_eq!(g.settings, local.gateway);
                assert_eq!(g.store.settings, local.store);
            }),
            "sweeper" => load::<SweeperConfig>(&env).map(|w| {
                assert_eq!(w.gateway.presence, local.presence);
                assert_eq!(w.gateway.store.settings, local.store);
            }),
            "planner" => load::<PlannerConfig>(&env).map(|p| {
                assert_eq!(p.settings, local.planner);
                assert_eq!(
                    p.delivery.worker_rate(),
                    local.budget.worker_rate(),
                    "the planner's fast path shares the workers' rate"
                );
            }),
            "broadcaster" => load::<BroadcasterConfig>(&env).map(|b| {
                assert_eq!(
                    b.delivery.worker_rate(),
                    local.budget.worker_rate(),
                    "each deployed worker gets the local stack's per-worker share"
                );
                assert_eq!(b.delivery.broadcaster, local.broadcaster);
                assert_eq!(b.delivery.jobs, local.jobs);
                assert_eq!(b.store.settings, local.store);
            }),
            other => panic!("no configuration reader for function {other}"),
        };
        if let Err(error) = read {
            panic!("{name}'s environment is refused by its binary: {error}");
        }
    }
    binaries.sort();
    assert_eq!(
        binaries,
        [
            "fanout-authorizer",
            "fanout-broadcaster",
            "fanout-connect",
            "fanout-disconnect",
            "fanout-message",
            "fanout-planner",
            "fanout-sweeper"
        ]
    );
    // And every function package in services/ is deployed.
    for entry in std::fs::read_dir(root().join("services")).unwrap() {
        let dir = entry.unwrap().path();
        let package = dir.file_name().unwrap().to_str().unwrap().to_string();
        if ["local", "cli", "lambda"].contains(&package.as_str()) {
            continue;
        }
        assert!(
            binaries.contains(&format!("fanout-{package}")),
            "services/{package} is not in the template"
        );
    }
}

#[test]
fn the_websocket_api_routes_like_the_local_gateway() {
    let t = template();
    let (_, api) = of_type(&t, "AWS::ApiGatewayV2::Api")[0];
    assert_eq!(api["Properties"]["ProtocolType"], "WEBSOCKET");
    assert_eq!(
        api["Properties"]["RouteSelectionExpression"],
        "$request.body.action"
    );
    let (_, authorizer) = of_type(&t, "AWS::ApiGatewayV2::Authorizer")[0];
    assert_eq!(authorizer["Properties"]["AuthorizerType"], "REQUEST");
    assert_eq!(
        authorizer["Properties"]["IdentitySource"][0],
        "route.request.querystring.token"
    );
    let routes = of_type(&t, "AWS::ApiGatewayV2::Route");
    let responses: Vec<String> = of_type(&t, "AWS::ApiGatewayV2::RouteResponse")
        .iter()
        .map(|(_, r)| evaluate(&t, &r["Properties"]["RouteId"]))
        .collect();
    let mut keys = Vec::new();
    for (name, route) in &routes {
        let key = route["Properties"]["RouteKey"]
            .as_str()
            .unwrap()
            .to_string();
        let auth = route["Properties"]["AuthorizationType"].as_str().unwrap();
        assert_eq!(
            auth,
            if key == "$connect" { "CUSTOM" } else { "NONE" },
            "{key}: authorization only on $connect"
        );
        let is_client_route = !["$connect", "$disconnect"].contains(&key.as_str());
        if is_client_route {
            assert!(
                responses.contains(&format!("{name}-physical-id")),
                "{key} has a route response, so its reply reaches the client"
            );
        }
        keys.push(key);
    }
    keys.sort();
    let mut expected: Vec<String> = ["$connect", "$disconnect", "$default"]
        .iter()
        .map(|s| s.to_string())
        .chain(
            fanout_local::gateway::MESSAGE_ROUTES
                .iter()
                .map(|s| s.to_string()),
        )
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
}

#[test]
fn every_queue_dead_letters_and_every_dead_letter_queue_raises_an_alarm() {
    let t = template();
    let queues = of_type(&t, "AWS::SQS::Queue");
    let alarmed: Vec<String> = of_type(&t, "AWS::CloudWatch::Alarm")
        .iter()
        .filter_map(|(_, a)| match &a["Properties"]["Dimensions"][0]["Value"] {
            Value::Tagged(tagged) => tagged.value.as_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    let mut dead_letter_queues = 0;
    for (name, q) in &queues {
        assert_eq!(
            q["Properties"]["SqsManagedSseEnabled"], true,
            "{name} is encrypted"
        );
        if name.contains("DeadLetter") {
            dead_letter_queues += 1;
            assert!(
                alarmed.contains(&format!("{name}.QueueName")),
                "{name} has a depth alarm"
            );
        } else {
            assert!(
                !q["Properties"]["RedrivePolicy"].is_null(),
                "{name} has a redrive policy"
            );
        }
    }
    assert_eq!(dead_letter_queues, 4);
    let (_, rule) = of_type(&t, "AWS::Events::Rule")[0];
    let target = &rule["Properties"]["Targets"][0];
    assert!(!target["RetryPolicy"].is_null(), "explicit retry policy");
    assert!(!target["DeadLetterConfig"].is_null(), "target DLQ");
    for (name, f) in of_type(&t, "AWS::Serverless::Function") {
        for (_, event) in f["Properties"]["Events"].as_mapping().into_iter().flatten() {
            let p = &event["Properties"];
            assert_eq!(
                p["FunctionResponseTypes"][0], "ReportBatchItemFailures",
                "{name}"
            );
            if event["Type"] == "SQS" {
                assert!(
                    !p["ScalingConfig"]["MaximumConcurrency"].is_null(),
                    "{name}"
                );
            }
        }
    }
}

/// The sweeper runs on the table's stream of old images, sees exactly the
/// removals the local mapping passes to it, retries by bisecting, reports
/// what it gives up on to an alarmed queue, and may do no more than it
/// needs.
#[test]
fn the_sweeper_is_wired_to_the_tables_stream() {
    let t = template();
    let (_, table) = of_type(&t, "AWS::DynamoDB::Table")[0];
    assert_eq!(
        table["Properties"]["StreamSpecification"]["StreamViewType"],
        "OLD_IMAGE"
    );
    assert_eq!(
        table["Properties"]["TimeToLiveSpecification"]["AttributeName"],
        "ttl"
    );
    let sweeper = &t["Resources"]["SweeperFunction"];
    let events = sweeper["Properties"]["Events"].as_mapping().unwrap();
    assert_eq!(events.len(), 1);
    let (_, stream) = events.iter().next().unwrap();
    assert_eq!(stream["Type"], "DynamoDB");
    let p = &stream["Properties"];
    assert_eq!(p["BisectBatchOnFunctionError"], true);
    assert_eq!(
        p["FilterCriteria"]["Filters"][0]["Pattern"],
        fanout_core::changes::SWEEPER_FILTER_PATTERN
    );
    let destination = &p["DestinationConfig"]["OnFailure"];
    assert_eq!(destination["Type"], "SQS");
    assert_eq!(
        evaluate(&t, &destination["Destination"]),
        "SweeperDeadLetterQueue.Arn-attribute"
    );
    // Least privilege: disconnect only deletes the connection item; the
    // sweeper may delete connections through @connections but not post.
    let actions = |function: &str| -> Vec<String> {
        let statements = &t["Resources"][function]["Properties"]["Policies"][0]["Statement"];
        statements
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|s| match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Sequence(list) => list
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect(),
                _ => vec![],
            })
            .collect()
    };
    assert_eq!(actions("DisconnectFunction"), ["dynamodb:DeleteItem"]);
    let sweeper_actions = actions("SweeperFunction");
    assert!(sweeper_actions.contains(&"execute-api:ManageConnections".to_string()));
    assert!(!sweeper_actions.iter().any(|a| a.starts_with("sqs:Receive")));
    let policies = serde_yaml::to_string(&sweeper["Properties"]["Policies"]).unwrap();
    assert!(policies.contains("/DELETE/@connections/*"), "{policies}");
    assert!(!policies.contains("/POST/@connections"), "{policies}");
    // Its dead-letter queue and how far behind it is both raise alarms.
    let alarms = serde_yaml::to_string(&t["Resources"]["SweeperIteratorAgeAlarm"]).unwrap();
    assert!(alarms.contains("IteratorAge"));
}

#[test]
fn functions_get_their_queues_as_urls_and_look_nothing_up_at_start() {
    let t = template();
    let mut queue_variables = 0;
    for (name, function) in of_type(&t, "AWS::Serverless::Function") {
        let Some(vars) = function["Properties"]["Environment"]["Variables"].as_mapping() else {
            continue;
        };
        for (key, value) in vars {
            let key = key.as_str().unwrap();
            if !(key.contains("QUEUE") || key.contains("DLQ")) {
                continue;
            }
            queue_variables += 1;
            assert!(key.ends_with("_URL"), "{name}: {key} must carry a URL");
            let Value::Tagged(tagged) = value else {
                panic!("{name}: {key} must be !Ref to a queue, not {value:?}");
            };
            assert_eq!(tagged.tag.to_string(), "!Ref", "{name}: {key}");
            let target = tagged.value.as_str().unwrap();
            assert_eq!(
                t["Resources"][target]["Type"].as_str(),
                Some("AWS::SQS::Queue"),
                "{name}: {key} refers to {target}"
            );
        }
    }
    assert_eq!(queue_variables, 5, "planner (3) and broadcaster (2)");
    // No function looks a queue up any more, so no function's role may
    // (on-call's OperatorPolicy reads queue attributes for `fanout dlq`).
    for (name, function) in of_type(&t, "AWS::Serverless::Function") {
        let policies = serde_yaml::to_string(&function["Properties"]["Policies"]).unwrap();
        for action in ["sqs:GetQueueUrl", "sqs:GetQueueAttributes"] {
            assert!(
                !policies.contains(action),
                "{name} is still granted {action}"
            );
        }
    }
}

#[test]
fn route_changes_reach_the_stage() {
    let t = template();
    // An explicit Deployment is only redeployed when its own properties
    // change, so a new or changed route would never reach the stage.
    assert!(
        of_type(&t, "AWS::ApiGatewayV2::Deployment").is_empty(),
        "deploy through the stage's AutoDeploy, not a Deployment resource"
    );
    let stages = of_type(&t, "AWS::ApiGatewayV2::Stage");
    assert_eq!(stages.len(), 1);
    let (_, stage) = stages[0];
    assert_eq!(stage["Properties"]["AutoDeploy"].as_bool(), Some(true));
    assert!(stage["Properties"]["DeploymentId"].is_null());
    // Every route exists before the stage's first deployment.
    let depends: Vec<&str> = stage["DependsOn"]
        .as_sequence()
        .expect("the stage depends on the routes")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (name, _) in of_type(&t, "AWS::ApiGatewayV2::Route") {
        assert!(
            depends.contains(&name),
            "the stage does not wait for {name}"
        );
    }
}

/// The metric directive every function writes, and what each alarm and
/// the dashboard read: this stack's namespace and `Service` dimension, so
/// two stacks in one account and region never share a series.
#[test]
fn metrics_and_alarms_belong_to_their_stack() {
    let t = template();
    let globals = &t["Globals"]["Function"]["Environment"]["Variables"];
    let reference = |v: &Value| match v {
        Value::Tagged(tagged) if tagged.tag == "!Ref" => tagged.value.as_str().unwrap().to_string(),
        other => panic!("expected a !Ref, got {other:?}"),
    };
    assert_eq!(reference(&globals["FANOUT_SERVICE_NAME"]), "AWS::StackName");
    assert_eq!(
        reference(&globals["FANOUT_METRICS_NAMESPACE"]),
        "MetricsNamespace"
    );
    for (name, f) in of_type(&t, "AWS::Serverless::Function") {
        let vars = &f["Properties"]["Environment"]["Variables"];
        for key in ["FANOUT_SERVICE_NAME", "FANOUT_METRICS_NAMESPACE"] {
            assert!(vars[key].is_null(), "{name} overrides {key}");
        }
    }

    let mut custom = 0;
    for (name, alarm) in of_type(&t, "AWS::CloudWatch::Alarm") {
        let p = &alarm["Properties"];
        let mut metrics = vec![p.clone()];
        if let Some(queries) = p["Metrics"].as_sequence() {
            metrics.extend(queries.iter().map(|q| q["MetricStat"]["Metric"].clone()));
        }
        for m in metrics.iter().filter(|m| !m["Namespace"].is_null()) {
            if let Value::String(ns) = &m["Namespace"] {
                assert!(
                    ns.starts_with("AWS/"),
                    "{name} reads namespace {ns}, not the stack's"
                );
                continue;
            }
            custom += 1;
            assert_eq!(reference(&m["Namespace"]), "MetricsNamespace", "{name}");
            let service = m["Dimensions"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|d| d["Name"] == "Service")
                .unwrap_or_else(|| panic!("{name} has no Service dimension"));
            assert_eq!(reference(&service["Value"]), "AWS::StackName", "{name}");
        }
    }
    assert!(
        custom >= 3,
        "the throttle and misconfiguration alarms read EMF metrics"
    );

    let body =
        of_type(&t, "AWS::CloudWatch::Dashboard")[0].1["Properties"]["DashboardBody"].clone();
    let Value::Tagged(body) = body else {
        panic!("the dashboard body is a !Sub")
    };
    let body = body.value.as_str().unwrap();
    let lines = body.matches("\"${MetricsNamespace}\"").count();
    assert!(lines >= 10, "the dashboard charts the stack's own metrics");
    assert_eq!(lines, body.matches("\"${MetricsNamespace}\",").count());
    assert_eq!(
        body.matches("\"Service\",\"${AWS::StackName}\"").count(),
        lines,
        "every custom metric on the dashboard is this stack's"
    );
    assert!(!body.contains("[\"fanout\""), "no fixed namespace left");
    assert!(body.contains("\"ColdStart\""), "cold starts are charted");
}

/// Lambda's advanced logging controls, a retention for every function's
/// lines, optional X-Ray, and no way to accept the public development key.
#[test]
fn functions_log_json_with_a_level_and_a_retention() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
    assert!(matches!(
        &globals["LoggingConfig"]["ApplicationLogLevel"],
        Value::Tagged(_)
    ));
    assert!(
        matches!(&globals["Tracing"], Value::Tagged(_)),
        "X-Ray is a parameter"
    );
    assert_eq!(default_of(&t, "TracingMode"), "Disabled");
    assert!(
        globals["Environment"]["Variables"]["RUST_LOG"].is_null(),
        "the level comes from LoggingConfig"
    );
    let groups: Vec<String> = of_type(&t, "AWS::Logs::LogGroup")
        .into_iter()
        .map(|(name, g)| {
            assert!(
                !g["Properties"]["RetentionInDays"].is_null(),
                "{name} keeps lines forever"
            );
            let Value::Tagged(group) = &g["Properties"]["LogGroupName"] else {
                panic!("{name} names its function's group with !Sub");
            };
            group.value.as_str().unwrap().to_string()
        })
        .collect();
    for (name, f) in of_type(&t, "AWS::Serverless::Function") {
        assert!(
            groups.contains(&format!("/aws/lambda/${{{name}}}")),
            "{name} has no log group with a retention"
        );
        assert!(
            f["Properties"]["Environment"]["Variables"]["FANOUT_ALLOW_DEVELOPMENT_SECRET"]
                .is_null(),
            "{name} must never accept the public development key"
        );
    }
}
