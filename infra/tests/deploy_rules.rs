//! What AWS refuses at deploy time, held against every value a user may
//! choose. Each numeric parameter is tried at the ends of its range (and
//! at the values AWS's rules turn on), every listed value of the others,
//! and each property those values reach is checked against the rule AWS
//! documents for it — alone, and in the combinations Lambda validates
//! together (an SQS mapping's batch size and window; its function's
//! timeout against the queue's visibility timeout). The linters check
//! neither: a template can be valid and still fail to deploy.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    let text = std::fs::read_to_string(&path).expect("infra/template.yaml");
    serde_yaml::from_str(&text).expect("the template is YAML")
}

fn resources(t: &Value) -> Vec<(String, Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
        .collect()
}

/// Parameter values for one deploy.
type Choice = BTreeMap<String, String>;

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The values worth trying for `parameter`: every allowed value, or the
/// ends of its range and the values AWS's rules turn on that lie inside.
fn candidates(t: &Value, parameter: &str) -> Vec<String> {
    let p = &t["Parameters"][parameter];
    assert!(!p.is_null(), "no parameter {parameter}");
    if let Some(allowed) = p["AllowedValues"].as_sequence() {
        return allowed.iter().map(text).collect();
    }
    if p["Type"] != "Number" {
        return vec![text(&p["Default"])];
    }
    let min = number_of(&p["MinValue"]).unwrap_or(f64::MIN);
    let max = number_of(&p["MaxValue"]).unwrap_or(f64::MAX);
    let mut values: Vec<f64> = [
        min, max, -1.0, 0.0, 1.0, 2.0, 10.0, 11.0, 60.0, 300.0, 301.0,
    ]
    .into_iter()
    .filter(|v| (min..=max).contains(v))
    .collect();
    if let Some(d) = number_of(&p["Default"]) {
        values.push(d);
    }
    values.sort_by(f64::total_cmp);
    values.dedup();
    values.into_iter().map(|v| format!("{v}")).collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The parameters `v` refers to.
fn references(t: &Value, v: &Value, into: &mut Vec<String>) {
    match v {
        Value::Tagged(tagged) if tagged.tag == "Ref" => {
            let name = tagged.value.as_str().unwrap();
            if !t["Parameters"][name].is_null() && !into.iter().any(|n| n == name) {
                into.push(name.to_string());
            }
        }
        Value::Tagged(tagged) => references(t, &tagged.value, into),
        Value::Sequence(items) => items.iter().for_each(|i| references(t, i, into)),
        Value::Mapping(m) => m.values().for_each(|i| references(t, i, into)),
        _ => {}
    }
}

/// Every combination of the candidates of `parameters`.
fn choices(t: &Value, parameters: &[String]) -> Vec<Choice> {
    let mut all = vec![Choice::new()];
    for p in parameters {
        let values = candidates(t, p);
        all = all
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(p.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    all
}

/// `v` as CloudFormation resolves it for `choice` (parameters, maps and
/// conditions); `None` for what depends on a resource.
fn evaluate(t: &Value, v: &Value, choice: &Choice) -> Option<String> {
    let Value::Tagged(tagged) = v else {
        return Some(text(v));
    };
    let args = tagged.value.as_sequence();
    let tag = tagged.tag.to_string();
    match tag.trim_start_matches('!') {
        "Ref" => choice.get(tagged.value.as_str().unwrap()).cloned(),
        "FindInMap" => {
            let a = args.unwrap();
            let key = evaluate(t, &a[1], choice)?;
            let found = &t["Mappings"][text(&a[0]).as_str()][key.as_str()][text(&a[2]).as_str()];
            assert!(!found.is_null(), "{a:?} has no entry for {key}");
            Some(text(found))
        }
        "If" => {
            let a = args.unwrap();
            let name = a[0].as_str().unwrap();
            let branch = if condition(t, &t["Conditions"][name], choice) {
                &a[1]
            } else {
                &a[2]
            };
            evaluate(t, branch, choice)
        }
        _ => None,
    }
}

fn condition(t: &Value, v: &Value, choice: &Choice) -> bool {
    let Value::Tagged(tagged) = v else {
        panic!("a condition is an intrinsic: {v:?}")
    };
    let args = tagged.value.as_sequence().unwrap();
    let tag = tagged.tag.to_string();
    match tag.trim_start_matches('!') {
        "Equals" => evaluate(t, &args[0], choice) == evaluate(t, &args[1], choice),
        "Or" => args.iter().any(|a| condition(t, a, choice)),
        "And" => args.iter().all(|a| condition(t, a, choice)),
        "Not" => !condition(t, &args[0], choice),
        other => panic!("condition {other} is not handled here"),
    }
}

/// A property's value at `path` (keys separated by `.`), or the Globals'
/// value for a function that does not set it.
fn property(t: &Value, resource: &Value, path: &str) -> Value {
    let walk = |start: &Value| {
        path.split('.').fold(start.clone(), |v, key| {
            v.get(key).cloned().unwrap_or(Value::Null)
        })
    };
    let own = walk(&resource["Properties"]);
    if own.is_null() && resource["Type"] == "AWS::Serverless::Function" {
        return walk(&t["Globals"]["Function"]);
    }
    own
}

/// One documented limit: a numeric property's range, or its list.
struct Limit {
    resource: &'static str,
    path: &'static str,
    allowed: Allowed,
    source: &'static str,
}

enum Allowed {
    Range(f64, f64),
    OneOf(&'static [f64]),
}

const LOG_RETENTION_DAYS: &[f64] = &[
    1.0, 3.0, 5.0, 7.0, 14.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0, 365.0, 400.0, 545.0, 731.0,
    1096.0, 1827.0, 2192.0, 2557.0, 2922.0, 3288.0, 3653.0,
];

fn limits() -> Vec<Limit> {
    use Allowed::*;
    let l = |resource, path, allowed, source| Limit {
        resource,
        path,
        allowed,
        source,
    };
    vec![
        l(
            "AWS::Serverless::Function",
            "Timeout",
            Range(1.0, 900.0),
            "Lambda: Timeout",
        ),
        l(
            "AWS::Serverless::Function",
            "MemorySize",
            Range(128.0, 10240.0),
            "Lambda: MemorySize",
        ),
        l(
            "AWS::SQS::Queue",
            "VisibilityTimeout",
            Range(0.0, 43200.0),
            "SQS: VisibilityTimeout",
        ),
        l(
            "AWS::SQS::Queue",
            "MessageRetentionPeriod",
            Range(60.0, 1209600.0),
            "SQS: MessageRetentionPeriod",
        ),
        l(
            "AWS::SQS::Queue",
            "RedrivePolicy.maxReceiveCount",
            Range(1.0, 1000.0),
            "SQS: maxReceiveCount",
        ),
        l(
            "AWS::Logs::LogGroup",
            "RetentionInDays",
            OneOf(LOG_RETENTION_DAYS),
            "CloudWatch Logs: RetentionInDays",
        ),
        l(
            "AWS::CloudWatch::Alarm",
            "EvaluationPeriods",
            Range(1.0, f64::MAX),
            "CloudWatch: EvaluationPeriods",
        ),
        l(
            "AWS::ApiGatewayV2::Stage",
            "DefaultRouteSettings.ThrottlingBurstLimit",
            Range(0.0, f64::MAX),
            "API Gateway: ThrottlingBurstLimit",
        ),
        l(
            "AWS::ApiGatewayV2::Stage",
            "DefaultRouteSettings.ThrottlingRateLimit",
            Range(0.0, f64::MAX),
            "API Gateway: ThrottlingRateLimit",
        ),
    ]
}

fn holds(allowed: &Allowed, value: f64) -> bool {
    match allowed {
        Allowed::Range(min, max) => (*min..=*max).contains(&value),
        Allowed::OneOf(list) => list.contains(&value),
    }
}

/// Every value `v` takes over the choices of the parameters it reads.
fn values_of(t: &Value, v: &Value) -> Vec<(Choice, f64)> {
    let mut params = Vec::new();
    references(t, v, &mut params);
    choices(t, &params)
        .into_iter()
        .filter_map(|c| {
            let value = evaluate(t, v, &c)?;
            let n = value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{value} is not a number"));
            Some((c, n))
        })
        .collect()
}

#[test]
fn every_allowed_value_is_one_aws_accepts() {
    let t = template();
    let mut checked = 0;
    for limit in limits() {
        for (name, r) in resources(&t)
            .iter()
            .filter(|(_, r)| r["Type"] == limit.resource)
        {
            let v = property(&t, r, limit.path);
            if v.is_null() {
                continue;
            }
            for (choice, value) in values_of(&t, &v) {
                checked += 1;
                assert!(
                    holds(&limit.allowed, value),
                    "{name}.{}: {value} (with {choice:?}) is refused by AWS ({})",
                    limit.path,
                    limit.source
                );
            }
        }
    }
    assert!(checked > 50, "only {checked} values checked");
}

/// An event source mapping of a function, with what Lambda validates.
struct Mapping {
    function: String,
    event: Value,
    function_resource: Value,
}

fn mappings(t: &Value, kind: &str) -> Vec<Mapping> {
    let mut found = Vec::new();
    for (name, f) in resources(t) {
        if let Some(events) = f["Properties"]["Events"].as_mapping() {
            for e in events.values().filter(|e| e["Type"] == kind) {
                found.push(Mapping {
                    function: name.clone(),
                    event: e["Properties"].clone(),
                    function_resource: f.clone(),
                });
            }
        }
    }
    found
}

/// Lambda's rules for an SQS mapping on a standard queue.
fn sqs_mapping_refusal(
    batch: f64,
    window: f64,
    concurrency: Option<f64>,
    timeout: f64,
    visibility: f64,
) -> Option<String> {
    if !(1.0..=10000.0).contains(&batch) {
        return Some(format!("BatchSize {batch} is outside 1-10000"));
    }
    if !(0.0..=300.0).contains(&window) {
        return Some(format!(
            "MaximumBatchingWindowInSeconds {window} is outside 0-300"
        ));
    }
    if batch > 10.0 && window < 1.0 {
        return Some(format!(
            "BatchSize {batch} over 10 needs MaximumBatchingWindowInSeconds of at least 1 (it is {window})"
        ));
    }
    if let Some(c) = concurrency.filter(|c| !(2.0..=1000.0).contains(c)) {
        return Some(format!(
            "ScalingConfig.MaximumConcurrency {c} is outside 2-1000"
        ));
    }
    if timeout > visibility {
        return Some(format!(
            "the function timeout {timeout} s exceeds the queue's visibility timeout {visibility} s"
        ));
    }
    None
}

#[test]
fn every_sqs_mapping_is_one_lambda_accepts_with_any_allowed_parameters() {
    let t = template();
    let all = mappings(&t, "SQS");
    assert_eq!(all.len(), 2, "the planner's and the broadcaster's");
    for m in all {
        let Value::Tagged(queue) = &m.event["Queue"] else {
            panic!("{}: the queue is a !GetAtt", m.function)
        };
        let queue = queue
            .value
            .as_str()
            .unwrap()
            .trim_end_matches(".Arn")
            .to_string();
        let queue = resources(&t)
            .into_iter()
            .find(|(n, _)| *n == queue)
            .unwrap()
            .1;
        let parts = [
            m.event["BatchSize"].clone(),
            m.event["MaximumBatchingWindowInSeconds"].clone(),
            m.event["ScalingConfig"]["MaximumConcurrency"].clone(),
            property(&t, &m.function_resource, "Timeout"),
            queue["Properties"]["VisibilityTimeout"].clone(),
        ];
        let mut params = Vec::new();
        for p in &parts {
            references(&t, p, &mut params);
        }
        let tried = choices(&t, &params);
        assert!(
            tried.len() > 20,
            "{}: {} combinations",
            m.function,
            tried.len()
        );
        for choice in tried {
            let number = |v: &Value, default: f64| {
                if v.is_null() {
                    return default;
                }
                evaluate(&t, v, &choice).unwrap().parse::<f64>().unwrap()
            };
            let refusal = sqs_mapping_refusal(
                number(&parts[0], 10.0),
                number(&parts[1], 0.0),
                (!parts[2].is_null()).then(|| number(&parts[2], 2.0)),
                number(&parts[3], 3.0),
                number(&parts[4], 30.0),
            );
            if let Some(why) = refusal {
                panic!(
                    "{}'s SQS mapping with {choice:?}: Lambda refuses it: {why}",
                    m.function
                );
            }
            // AWS's advice on top of the rule: 6 x the function timeout.
            assert!(
                number(&parts[4], 30.0) >= 6.0 * number(&parts[3], 3.0),
                "{choice:?}"
            );
        }
    }
}

#[test]
fn the_rules_refuse_what_lambda_refuses() {
    assert!(sqs_mapping_refusal(10.0, 0.0, Some(2.0), 30.0, 180.0).is_none());
    assert!(sqs_mapping_refusal(11.0, 0.0, Some(2.0), 30.0, 180.0).is_some());
    assert!(sqs_mapping_refusal(10000.0, 1.0, Some(2.0), 30.0, 180.0).is_none());
    assert!(sqs_mapping_refusal(10.0, 0.0, Some(2.0), 900.0, 60.0).is_some());
    assert!(sqs_mapping_refusal(10.0, 0.0, Some(1.0), 30.0, 180.0).is_some());
}

#[test]
fn every_stream_mapping_is_one_lambda_accepts_with_any_allowed_parameters() {
    let t = template();
    for m in mappings(&t, "DynamoDB") {
        for (path, min, max) in [
            ("BatchSize", 1.0, 10000.0),
            ("MaximumRetryAttempts", -1.0, 10000.0),
            ("MaximumBatchingWindowInSeconds", 0.0, 300.0),
        ] {
            let v = m.event[path].clone();
            if v.is_null() {
                continue;
            }
            for (choice, value) in values_of(&t, &v) {
                assert!(
                    (min..=max).contains(&value),
                    "{}'s stream mapping: {path} {value} (with {choice:?}) is outside {min}-{max}",
                    m.function
                );
            }
        }
    }
}

#[test]
fn the_bus_targets_retry_within_eventbridges_limits() {
    let t = template();
    for (name, rule) in resources(&t)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Events::Rule")
    {
        for target in rule["Properties"]["Targets"].as_sequence().unwrap() {
            for (path, min, max) in [
                ("MaximumRetryAttempts", 0.0, 185.0),
                ("MaximumEventAgeInSeconds", 60.0, 86400.0),
            ] {
                for (choice, value) in values_of(&t, &target["RetryPolicy"][path]) {
                    assert!(
                        (min..=max).contains(&value),
                        "{name}: RetryPolicy.{path} {value} (with {choice:?}) is outside {min}-{max}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_stage_name_is_one_api_gateway_accepts() {
    let t = template();
    let p = &t["Parameters"]["StageName"];
    assert!(
        number_of(&p["MaxLength"]).is_some_and(|n| n <= 128.0),
        "at most 128 characters"
    );
    assert!(
        number_of(&p["MinLength"]).is_some_and(|n| n >= 1.0),
        "not empty"
    );
}

/// CloudWatch publishes an alarm's notification to an encrypted topic
/// only with a key whose policy lets `cloudwatch.amazonaws.com` use it;
/// the AWS-managed `alias/aws/sns` cannot be changed to allow it.
#[test]
fn alarms_reach_on_call_through_a_topic_cloudwatch_can_publish_to() {
    let t = template();
    let all = resources(&t);
    let topic = &all.iter().find(|(n, _)| n == "AlarmTopic").unwrap().1;
    let key = &topic["Properties"]["KmsMasterKeyId"];
    if key.is_null() {
        return;
    }
    let Value::Tagged(key) = key else {
        panic!("the alarm topic's key is {key:?}: CloudWatch cannot use an AWS-managed key")
    };
    let key_name = key.value.as_str().unwrap().trim_end_matches(".Arn");
    let key = &all
        .iter()
        .find(|(n, _)| n == key_name)
        .unwrap_or_else(|| panic!("{key_name} is not in the template"))
        .1;
    assert_eq!(key["Type"], "AWS::KMS::Key");
    let statements = key["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .unwrap();
    let cloudwatch = statements
        .iter()
        .find(|s| s["Effect"] == "Allow" && s["Principal"]["Service"] == "cloudwatch.amazonaws.com")
        .expect("the key policy lets cloudwatch.amazonaws.com use the key");
    let actions: Vec<String> = match &cloudwatch["Action"] {
        Value::Sequence(a) => a.iter().map(text).collect(),
        one => vec![text(one)],
    };
    for needed in ["kms:Decrypt", "kms:GenerateDataKey*"] {
        assert!(
            actions.iter().any(|a| a == needed),
            "CloudWatch needs {needed}"
        );
    }
    // And every alarm notifies that topic.
    for (name, alarm) in all
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
    {
        for actions in ["AlarmActions", "OKActions"] {
            let targets = alarm["Properties"][actions].as_sequence().unwrap();
            assert!(
                targets
                    .iter()
                    .all(|a| matches!(a, Value::Tagged(r) if r.value == "AlarmTopic")),
                "{name}'s {actions} go to the alarm topic"
            );
        }
    }
}

/// SAM gives a function X-Ray write access for any `Tracing` but
/// `Disabled` (it resolves the parameter, not conditions), so a choice
/// other than Active must be Disabled for the role to hold no X-Ray grant.
#[test]
fn xray_is_granted_only_when_tracing_is_active() {
    let t = template();
    let globals = &t["Globals"]["Function"]["Tracing"];
    assert!(
        matches!(globals, Value::Tagged(r) if r.tag == "Ref" && r.value == "TracingMode"),
        "Tracing is the parameter itself, which SAM resolves"
    );
    for value in candidates(&t, "TracingMode") {
        assert!(
            value == "Active" || value == "Disabled",
            "TracingMode {value} would attach X-Ray write access without tracing"
        );
    }
}

/// Lambda drops every line its `ApplicationLogLevel` filters, and reads a
/// line with no level — every EMF metric line — as INFO. For each allowed
/// level, the function's real subscriber and EMF writer produce output,
/// Lambda's filter is applied at the level the template gives Lambda, and
/// the metric must survive with the chosen level's lines.
#[test]
fn metrics_survive_every_allowed_log_level() {
    use fanout_core::metrics::{EmfWriter, Metric, MetricsSink, MetricsTarget, parse_emf_line};
    use fanout_lambda::setup::{LOG_LEVEL_VARIABLE, LogSettings, subscriber};
    use fanout_local::lambdas::log_filter::lambda_keeps;

    let t = template();
    let logging = &t["Globals"]["Function"]["LoggingConfig"];
    for level in candidates(&t, "ApplicationLogLevel") {
        let choice = Choice::from([("ApplicationLogLevel".to_string(), level.clone())]);
        let lambda_level = evaluate(&t, &logging["ApplicationLogLevel"], &choice).unwrap();
        let mut env = BTreeMap::from([("AWS_LAMBDA_LOG_LEVEL".to_string(), lambda_level.clone())]);
        if let Some(v) =
            t["Globals"]["Function"]["Environment"]["Variables"].get(LOG_LEVEL_VARIABLE)
        {
            env.insert(
                LOG_LEVEL_VARIABLE.to_string(),
                evaluate(&t, v, &choice).unwrap(),
            );
        }
        let settings = LogSettings::from_env(|name| env.get(name).cloned());

        // stdout and stderr both reach CloudWatch Logs: one file here.
        let path = std::env::temp_dir().join(format!(
            "fanout-log-level-{}-{level}.log",
            std::process::id()
        ));
        let output = std::fs::File::create(&path).unwrap();
        let for_logs = output.try_clone().unwrap();
        let make_writer = move || for_logs.try_clone().expect("the log file clones");
        tracing::subscriber::with_default(subscriber(&settings, make_writer), || {
            tracing::error!("an error line");
            tracing::warn!("a warning line");
            tracing::info!("an info line");
        });
        let target = MetricsTarget {
            namespace: "fanout".into(),
            service: "stack".into(),
        };
        EmfWriter::new(output, target).record(
            "broadcaster",
            "e1",
            &[Metric::count("Delivered", 1)],
        );
        let written = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();

        let kept: Vec<&str> = written
            .lines()
            .filter(|l| lambda_keeps(Some(&lambda_level), l))
            .collect();
        assert!(
            kept.iter().any(|l| parse_emf_line(l).is_some()),
            "ApplicationLogLevel {level}: Lambda filters at {lambda_level} and drops the metric lines"
        );
        let logs = kept.join("\n");
        assert!(logs.contains("an error line"), "{level}: errors are kept");
        let info_expected = matches!(level.as_str(), "TRACE" | "DEBUG" | "INFO");
        assert_eq!(
            logs.contains("an info line"),
            info_expected,
            "{level}: info lines"
        );
    }
}

/// The SQS operations the operator CLI's `dlq` commands make (found in
/// their source), each granted by the template's `OperatorPolicy` on the
/// dead-letter queues, as IAM names them.
#[test]
fn the_operator_policy_grants_what_fanout_dlq_calls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let sources = [
        "services/cli/src/dlq.rs",
        "shared/aws/src/dlq.rs",
        "shared/aws/src/sqs.rs",
    ];
    let code: String = sources
        .iter()
        .map(|p| std::fs::read_to_string(root.join(p)).unwrap())
        .collect();
    // The SDK method, and the IAM action that authorizes it.
    let operations = [
        ("list_queues", "sqs:ListQueues"),
        ("get_queue_attributes", "sqs:GetQueueAttributes"),
        ("receive_message", "sqs:ReceiveMessage"),
        ("change_message_visibility", "sqs:ChangeMessageVisibility"),
        (
            "change_message_visibility_batch",
            "sqs:ChangeMessageVisibility",
        ),
        ("delete_message_batch", "sqs:DeleteMessage"),
        ("send_message_batch", "sqs:SendMessage"),
        ("start_message_move_task", "sqs:StartMessageMoveTask"),
        ("list_message_move_tasks", "sqs:ListMessageMoveTasks"),
    ];
    let used: Vec<&str> = operations
        .iter()
        .filter(|(method, _)| code.contains(&format!(".{method}()")))
        .map(|(_, action)| *action)
        .collect();
    assert!(
        used.len() >= 6,
        "the dlq commands' calls were found: {used:?}"
    );

    let t = template();
    let all = resources(&t);
    let policy = &all
        .iter()
        .find(|(n, _)| n == "OperatorPolicy")
        .expect("an OperatorPolicy")
        .1;
    let statements = policy["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    let granted_on = |action: &str, queue: &str| {
        statements.iter().any(|s| {
            let actions: Vec<String> = match &s["Action"] {
                Value::Sequence(a) => a.iter().map(text).collect(),
                one => vec![text(one)],
            };
            let resources = match &s["Resource"] {
                Value::Sequence(r) => r.clone(),
                one => vec![one.clone()],
            };
            actions.iter().any(|a| a == action)
                && resources.iter().any(|r| match r {
                    Value::String(star) => star == "*",
                    Value::Tagged(t) => t.value.as_str() == Some(&format!("{queue}.Arn")),
                    _ => false,
                })
        })
    };
    for action in used {
        let queue = if action == "sqs:SendMessage" {
            "PlanQueue"
        } else {
            "DeliverDeadLetterQueue"
        };
        assert!(
            granted_on(action, queue),
            "OperatorPolicy does not grant {action} on {queue}"
        );
    }
    for dlq in [
        "PlanDeadLetterQueue",
        "BusDeadLetterQueue",
        "SweeperDeadLetterQueue",
    ] {
        assert!(
            granted_on("sqs:ReceiveMessage", dlq),
            "on-call cannot read {dlq}"
        );
    }
}

/// On-call sees every dead-letter queue on the stack's dashboard.
#[test]
fn every_dead_letter_queue_is_on_the_dashboard() {
    let t = template();
    let all = resources(&t);
    let (_, dashboard) = all
        .iter()
        .find(|(_, r)| r["Type"] == "AWS::CloudWatch::Dashboard")
        .unwrap();
    let Value::Tagged(body) = &dashboard["Properties"]["DashboardBody"] else {
        panic!("the dashboard body is a !Sub")
    };
    let body = body.value.as_str().unwrap();
    for (name, _) in all
        .iter()
        .filter(|(n, r)| r["Type"] == "AWS::SQS::Queue" && n.ends_with("DeadLetterQueue"))
    {
        assert!(
            body.contains(&format!("${{{name}.QueueName}}")),
            "{name} is not on the dashboard"
        );
    }
}
