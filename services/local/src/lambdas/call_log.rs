//! `--lambda-call-log FILE`: every AWS call a bootstrap makes, with the
//! IAM action it needs and the exact resource it names (table, index,
//! queue, bus, secret, `@connections` path), as JSON lines. The first line
//! says which ARNs this stack's resources have, under the template's
//! logical ids, so the calls can be held against each function's role as
//! CloudFormation would create it (`infra/iam/roles.py check`). Emulators
//! check actions at most; this is where resources are checked.
//!
//! A call is told apart by the SigV4 access key it was signed with: each
//! function signs with its own role's credentials (`--lambda-roles`).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Value, json};

/// One call as IAM authorizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The API operation (`SendMessageBatch`).
    pub operation: String,
    /// The IAM action that authorizes it (`sqs:SendMessage`).
    pub action: String,
    /// The resource's ARN.
    pub resource: String,
}

/// What the template's logical ids resolve to in this stack: `Ref` and
/// `GetAtt` values by logical id, and parameter values.
#[derive(Debug, Clone, Default)]
pub struct StackResources {
    pub account: String,
    pub region: String,
    /// Logical id → attribute (`Ref`, `Arn`, `QueueName`) → value.
    pub resources: BTreeMap<String, BTreeMap<String, String>>,
    pub parameters: BTreeMap<String, String>,
}

impl StackResources {
    pub fn new(account: &str, region: &str) -> Self {
        Self {
            account: account.into(),
            region: region.into(),
            ..Self::default()
        }
    }

    fn set(&mut self, logical: &str, attributes: &[(&str, String)]) {
        let entry = self.resources.entry(logical.into()).or_default();
        for (k, v) in attributes {
            entry.insert((*k).into(), v.clone());
        }
    }

    pub fn table(&mut self, logical: &str, name: &str) {
        let arn = format!(
            "arn:aws:dynamodb:{}:{}:table/{name}",
            self.region, self.account
        );
        self.set(logical, &[("Ref", name.into()), ("Arn", arn)]);
    }

    pub fn queue(&mut self, logical: &str, url: &str) {
        let name = queue_name(url);
        let arn = format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account);
        self.set(
            logical,
            &[
                ("Ref", url.into()),
                ("Arn", arn),
                ("QueueName", name.into()),
            ],
        );
    }

    pub fn bus(&mut self, logical: &str, name: &str) {
        let arn = format!(
            "arn:aws:events:{}:{}:event-bus/{name}",
            self.region, self.account
        );
        self.set(
            logical,
            &[("Ref", name.into()), ("Arn", arn), ("Name", name.into())],
        );
    }

    /// A resource known by its `Ref` alone (a secret's ARN, an API id).
    pub fn reference(&mut self, logical: &str, value: &str) {
        self.set(logical, &[("Ref", value.into())]);
    }
}

fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

/// The log: the file, and which access key is which function's.
pub struct CallLog {
    file: Mutex<std::fs::File>,
    keys: Mutex<HashMap<String, &'static str>>,
    resources: StackResources,
}

impl CallLog {
    /// Creates `path` (appending, so stacks may share one) and writes the
    /// stack's resources first.
    pub fn create(path: &Path, resources: StackResources) -> std::io::Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let header = json!({
            "kind": "stack",
            "account": resources.account,
            "region": resources.region,
            "resources": resources.resources,
            "parameters": resources.parameters,
        });
        writeln!(file, "{header}")?;
        Ok(Self {
            file: Mutex::new(file),
            keys: Mutex::new(HashMap::new()),
            resources,
        })
    }

    pub fn resources(&self) -> &StackResources {
        &self.resources
    }

    /// Calls signed with `access_key_id` are `function`'s.
    pub fn register(&self, access_key_id: &str, function: &'static str) {
        self.keys
            .lock()
            .expect("the key map is never poisoned")
            .insert(access_key_id.into(), function);
    }

    /// The function whose key signed a request with this `Authorization`.
    pub fn function_of(&self, authorization: Option<&str>) -> Option<&'static str> {
        let key = access_key_id(authorization?)?;
        self.keys
            .lock()
            .expect("the key map is never poisoned")
            .get(key)
            .copied()
    }

    /// Records a Management API call on `/{stage}/@connections/{id}` when
    /// a function's key signed it.
    pub fn record_connections_call(
        &self,
        authorization: Option<&str>,
        method: &str,
        stage: &str,
        id: &str,
        status: u16,
    ) {
        if let Some(function) = self.function_of(authorization) {
            let call = connections_call(method, stage, id, &self.resources);
            self.record(function, &[call], status);
        }
    }

    /// Appends `calls` by `function`, with the HTTP status they got.
    pub fn record(&self, function: &str, calls: &[Call], status: u16) {
        let mut file = self.file.lock().expect("the log file is never poisoned");
        for call in calls {
            let line = json!({
                "kind": "call",
                "function": function,
                "operation": call.operation,
                "action": call.action,
                "resource": call.resource,
                "status": status,
            });
            if let Err(error) = writeln!(file, "{line}") {
                tracing::error!(%error, "--lambda-call-log: a call could not be written");
            }
        }
    }
}

/// The access key id of a SigV4 `Authorization` header.
pub fn access_key_id(authorization: &str) -> Option<&str> {
    let credential = authorization.split("Credential=").nth(1)?;
    credential.split('/').next().filter(|k| !k.is_empty())
}

/// The service and region of a SigV4 `Authorization` header's scope
/// (`Credential=<key>/<date>/<region>/<service>/aws4_request`).
fn scope(authorization: &str) -> Option<(&str, &str)> {
    let credential = authorization.split("Credential=").nth(1)?;
    let credential = credential.split([',', ' ']).next()?;
    let mut parts = credential.split('/').skip(2);
    let region = parts.next()?;
    let service = parts.next()?;
    Some((service, region))
}

/// The IAM action an operation needs: SQS authorizes its batch operations
/// through the single ones.
fn iam_action(service: &str, operation: &str) -> String {
    let operation = match (service, operation) {
        ("sqs", "SendMessageBatch") => "SendMessage",
        ("sqs", "DeleteMessageBatch") => "DeleteMessage",
        ("sqs", "ChangeMessageVisibilityBatch") => "ChangeMessageVisibility",
        _ => operation,
    };
    format!("{service}:{operation}")
}

/// The calls an AWS JSON-protocol request makes (one per resource it
/// names), from its `Authorization`, `X-Amz-Target` and body.
pub fn aws_calls(
    authorization: Option<&str>,
    target: Option<&str>,
    body: &[u8],
    resources: &StackResources,
) -> Vec<Call> {
    let (Some(authorization), Some(target)) = (authorization, target) else {
        return Vec::new();
    };
    let Some((service, region)) = scope(authorization) else {
        return Vec::new();
    };
    let operation = target.rsplit('.').next().unwrap_or(target).to_string();
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let account = &resources.account;
    let arns: Vec<String> = match service {
        "dynamodb" => dynamodb_resources(&body)
            .into_iter()
            .map(|path| format!("arn:aws:dynamodb:{region}:{account}:table/{path}"))
            .collect(),
        "sqs" => body["QueueUrl"]
            .as_str()
            .map(|url| {
                vec![format!(
                    "arn:aws:sqs:{region}:{account}:{}",
                    queue_name(url)
                )]
            })
            .unwrap_or_default(),
        "events" => events_resources(&body, region, account),
        "secretsmanager" => body["SecretId"]
            .as_str()
            .map(|id| vec![secret_arn(id, resources)])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let arns = if arns.is_empty() {
        vec!["*".to_string()]
    } else {
        arns
    };
    let mut calls: Vec<Call> = arns
        .into_iter()
        .map(|resource| Call {
            operation: operation.clone(),
            action: iam_action(service, &operation),
            resource,
        })
        .collect();
    calls.dedup();
    calls
}

/// `table` or `table/index/name` for each table an operation touches.
fn dynamodb_resources(body: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(table) = body["TableName"].as_str() {
        match body["IndexName"].as_str() {
            Some(index) => found.push(format!("{table}/index/{index}")),
            None => found.push(table.to_string()),
        }
    }
    if let Some(items) = body["RequestItems"].as_object() {
        found.extend(items.keys().cloned());
    }
    for item in body["TransactItems"].as_array().into_iter().flatten() {
        if let Some(table) = item
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|op| op["TableName"].as_str())
        {
            found.push(table.to_string());
        }
    }
    found.sort();
    found.dedup();
    found
}

fn events_resources(body: &Value, region: &str, account: &str) -> Vec<String> {
    let mut buses: Vec<String> = body["Entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let bus = e["EventBusName"].as_str().unwrap_or("default");
            if bus.starts_with("arn:") {
                bus.to_string()
            } else {
                format!("arn:aws:events:{region}:{account}:event-bus/{bus}")
            }
        })
        .collect();
    buses.sort();
    buses.dedup();
    buses
}

/// A secret named by ARN, or by a name this stack knows the ARN of.
fn secret_arn(id: &str, resources: &StackResources) -> String {
    if id.starts_with("arn:") {
        return id.to_string();
    }
    resources
        .resources
        .values()
        .filter_map(|r| r.get("Ref"))
        .find(|arn| {
            arn.starts_with("arn:aws:secretsmanager:") && arn.contains(&format!(":secret:{id}"))
        })
        .cloned()
        .unwrap_or_else(|| format!("secret-name:{id}"))
}

/// A Management API call on `/{stage}/@connections/{id}`, as
/// `execute-api:ManageConnections` names it.
pub fn connections_call(method: &str, stage: &str, id: &str, resources: &StackResources) -> Call {
    let api = resources
        .resources
        .get("WebSocketApi")
        .and_then(|r| r.get("Ref"))
        .map(String::as_str)
        .unwrap_or("local");
    Call {
        operation: format!("{method} @connections"),
        action: "execute-api:ManageConnections".into(),
        resource: format!(
            "arn:aws:execute-api:{}:{}:{api}/{stage}/{method}/@connections/{id}",
            resources.region, resources.account
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=ASIAFUNCTION/20261202/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00";

    fn stack() -> StackResources {
        let mut s = StackResources::new("123456789012", "us-east-1");
        s.reference(
            "JwtSecret",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:p-fanout-jwt-secret-AbCdEf",
        );
        s
    }

    #[test]
    fn a_query_on_an_index_names_the_index() {
        let body = br#"{"TableName":"t","IndexName":"GSI1","KeyConditionExpression":"x"}"#;
        let calls = aws_calls(Some(AUTH), Some("DynamoDB_20120810.Query"), body, &stack());
        assert_eq!(
            calls,
            [Call {
                operation: "Query".into(),
                action: "dynamodb:Query".into(),
                resource: "arn:aws:dynamodb:us-east-1:123456789012:table/t/index/GSI1".into(),
            }]
        );
        assert_eq!(access_key_id(AUTH), Some("ASIAFUNCTION"));
    }

    #[test]
    fn batch_and_transaction_calls_name_every_table() {
        let body = br#"{"RequestItems":{"a":[],"b":[]}}"#;
        let calls = aws_calls(
            Some(AUTH),
            Some("DynamoDB_20120810.BatchWriteItem"),
            body,
            &stack(),
        );
        assert_eq!(calls.len(), 2);
        let body = br#"{"TransactItems":[{"Put":{"TableName":"t"}},{"Update":{"TableName":"t"}}]}"#;
        let calls = aws_calls(
            Some(AUTH),
            Some("DynamoDB_20120810.TransactWriteItems"),
            body,
            &stack(),
        );
        assert_eq!(calls.len(), 1);
        assert!(calls[0].resource.ends_with(":table/t"));
    }

    #[test]
    fn sqs_batches_need_the_single_action_on_the_queue() {
        let auth = AUTH.replace("/dynamodb/", "/sqs/");
        let body =
            br#"{"QueueUrl":"http://127.0.0.1:5000/123456789012/p-fanout-deliver","Entries":[]}"#;
        let calls = aws_calls(
            Some(&auth),
            Some("AmazonSQS.SendMessageBatch"),
            body,
            &stack(),
        );
        assert_eq!(calls[0].action, "sqs:SendMessage");
        assert_eq!(calls[0].operation, "SendMessageBatch");
        assert_eq!(
            calls[0].resource,
            "arn:aws:sqs:us-east-1:123456789012:p-fanout-deliver"
        );
    }

    #[test]
    fn events_and_secrets_name_their_bus_and_secret() {
        let auth = AUTH.replace("/dynamodb/", "/events/");
        let body = br#"{"Entries":[{"EventBusName":"p-fanout"},{"EventBusName":"p-fanout"}]}"#;
        let calls = aws_calls(Some(&auth), Some("AWSEvents.PutEvents"), body, &stack());
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls[0].resource,
            "arn:aws:events:us-east-1:123456789012:event-bus/p-fanout"
        );
        let auth = AUTH.replace("/dynamodb/", "/secretsmanager/");
        let body = br#"{"SecretId":"p-fanout-jwt-secret"}"#;
        let calls = aws_calls(
            Some(&auth),
            Some("secretsmanager.GetSecretValue"),
            body,
            &stack(),
        );
        assert!(
            calls[0]
                .resource
                .ends_with(":secret:p-fanout-jwt-secret-AbCdEf")
        );
    }

    #[test]
    fn connections_calls_name_method_stage_and_id() {
        let call = connections_call("POST", "local", "abc=", &stack());
        assert_eq!(
            call.resource,
            "arn:aws:execute-api:us-east-1:123456789012:local/local/POST/@connections/abc="
        );
        assert!(aws_calls(None, Some("x.Y"), b"{}", &stack()).is_empty());
    }
}
