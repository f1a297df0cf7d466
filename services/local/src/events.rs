//! Builds the events API Gateway sends to its integrations — the REQUEST
//! authorizer's request and `ApiGatewayWebsocketProxyRequest`s for
//! `$connect`, `$disconnect` and messages — with the request context filled
//! the way API Gateway fills it. They are built as JSON and parsed into the
//! `aws_lambda_events` types, so they are exactly what a Lambda would get.

use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayWebsocketProxyRequest,
};
use serde_json::{Map, Value, json};

/// The local API's id, as it appears in ARNs and the domain name.
pub const API_ID: &str = "local";
/// The account id local ARNs use.
pub const ACCOUNT_ID: &str = "000000000000";

/// What API Gateway knows about one connection.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub connection_id: String,
    pub connected_at_ms: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
    pub domain_name: String,
    pub stage: String,
    /// The authorizer's context plus `principalId`, after `$connect`.
    pub authorizer: Map<String, Value>,
}

/// The phase of a connection an event belongs to.
pub enum EventKind<'a> {
    Connect {
        headers: &'a HashMap<String, String>,
        query: &'a HashMap<String, String>,
    },
    Message {
        route_key: &'a str,
        body: &'a str,
    },
    Disconnect {
        status_code: u16,
        reason: &'a str,
    },
}

fn request_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%d/%b/%Y:%H:%M:%S %z")
        .to_string()
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

fn identity(ctx: &ConnectionContext) -> Value {
    json!({ "sourceIp": ctx.source_ip, "userAgent": ctx.user_agent })
}

/// The REQUEST authorizer's input for a `$connect`.
pub fn authorizer_request(
    ctx: &ConnectionContext,
    headers: &HashMap<String, String>,
    query: &HashMap<String, String>,
    now_ms: i64,
) -> Result<ApiGatewayCustomAuthorizerRequestTypeRequest, serde_json::Error> {
    serde_json::from_value(json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:us-east-1:{ACCOUNT_ID}:{API_ID}/{}/$connect", ctx.stage),
        "headers": headers,
        "multiValueHeaders": multi(headers),
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi(query),
        "stageVariables": {},
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "extendedRequestId": short_id(),
            "requestTime": request_time(now_ms),
            "messageDirection": "IN",
            "stage": ctx.stage,
            "connectedAt": ctx.connected_at_ms,
            "requestTimeEpoch": now_ms,
            "identity": identity(ctx),
            "requestId": short_id(),
            "domainName": ctx.domain_name,
            "connectionId": ctx.connection_id,
            "apiId": API_ID
        }
    }))
}

/// A `$connect`, message or `$disconnect` integration request.
pub fn websocket_request(
    ctx: &ConnectionContext,
    kind: EventKind<'_>,
    now_ms: i64,
) -> Result<ApiGatewayWebsocketProxyRequest, serde_json::Error> {
    let mut context = json!({
        "stage": ctx.stage,
        "requestId": short_id(),
        "extendedRequestId": short_id(),
        "requestTime": request_time(now_ms),
        "requestTimeEpoch": now_ms,
        "messageDirection": "IN",
        "connectedAt": ctx.connected_at_ms,
        "connectionId": ctx.connection_id,
        "domainName": ctx.domain_name,
        "apiId": API_ID,
        "identity": identity(ctx),
        "authorizer": ctx.authorizer,
    });
    let mut event = json!({ "isBase64Encoded": false });
    match kind {
        EventKind::Connect { headers, query } => {
            context["routeKey"] = json!("$connect");
            context["eventType"] = json!("CONNECT");
            event["headers"] = json!(headers);
            event["multiValueHeaders"] = multi(headers);
            event["queryStringParameters"] = json!(query);
            event["multiValueQueryStringParameters"] = multi(query);
        }
        EventKind::Message { route_key, body } => {
            context["routeKey"] = json!(route_key);
            context["eventType"] = json!("MESSAGE");
            context["messageId"] = json!(short_id());
            event["body"] = json!(body);
        }
        EventKind::Disconnect {
            status_code,
            reason,
        } => {
            context["routeKey"] = json!("$disconnect");
            context["eventType"] = json!("DISCONNECT");
            context["disconnectStatusCode"] = json!(status_code);
            context["disconnectReason"] = json!(reason);
        }
    }
    event["requestContext"] = context;
    serde_json::from_value(event)
}

fn multi(map: &HashMap<String, String>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), json!([v]))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ConnectionContext {
        let mut authorizer = Map::new();
        authorizer.insert("principalId".into(), json!("alice"));
        authorizer.insert("tenant".into(), json!("acme"));
        authorizer.insert("user".into(), json!("alice"));
        ConnectionContext {
            connection_id: "L0SM9cOFvHcCIhw=".into(),
            connected_at_ms: 1_795_338_000_000,
            source_ip: "127.0.0.1".into(),
            user_agent: Some("test".into()),
            domain_name: "127.0.0.1:3001".into(),
            stage: "local".into(),
            authorizer,
        }
    }

    #[test]
    fn message_event_has_the_context_api_gateway_fills() {
        let e = websocket_request(
            &ctx(),
            EventKind::Message {
                route_key: "join",
                body: r#"{"action":"join"}"#,
            },
            1_795_338_000_500,
        )
        .unwrap();
        let rc = &e.request_context;
        assert_eq!(rc.connection_id.as_deref(), Some("L0SM9cOFvHcCIhw="));
        assert_eq!(rc.route_key.as_deref(), Some("join"));
        assert_eq!(rc.event_type.as_deref(), Some("MESSAGE"));
        assert_eq!(rc.connected_at, 1_795_338_000_000);
        assert_eq!(rc.request_time_epoch, 1_795_338_000_500);
        assert_eq!(rc.domain_name.as_deref(), Some("127.0.0.1:3001"));
        assert_eq!(rc.stage.as_deref(), Some("local"));
        assert_eq!(rc.identity.source_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(rc.authorizer.fields.get("tenant"), Some(&json!("acme")));
        assert_eq!(e.body.as_deref(), Some(r#"{"action":"join"}"#));
    }

    #[test]
    fn events_round_trip_through_the_lambda_types() {
        let headers = HashMap::from([("Host".to_string(), "127.0.0.1".to_string())]);
        let query = HashMap::from([("token".to_string(), "t".to_string())]);
        for kind in [
            EventKind::Connect {
                headers: &headers,
                query: &query,
            },
            EventKind::Message {
                route_key: "$default",
                body: "x",
            },
            EventKind::Disconnect {
                status_code: 1001,
                reason: "Going away",
            },
        ] {
            let e = websocket_request(&ctx(), kind, 1).unwrap();
            let text = serde_json::to_string(&e).unwrap();
            let back: ApiGatewayWebsocketProxyRequest = serde_json::from_str(&text).unwrap();
            assert_eq!(back, e);
        }
        let a = authorizer_request(&ctx(), &headers, &query, 1).unwrap();
        assert_eq!(a.query_string_parameters.first("token"), Some("t"));
        let text = serde_json::to_string(&a).unwrap();
        let back: ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_str(&text).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn disconnect_carries_the_close_code() {
        let e = websocket_request(
            &ctx(),
            EventKind::Disconnect {
                status_code: 1009,
                reason: "too big",
            },
            1,
        )
        .unwrap();
        assert_eq!(e.request_context.disconnect_status_code, Some(1009));
        assert_eq!(e.request_context.event_type.as_deref(), Some("DISCONNECT"));
    }
}
