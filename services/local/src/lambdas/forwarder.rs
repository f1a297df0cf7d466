//! With `--lambda-call-log`: the bootstraps' AWS endpoint. Every request
//! is forwarded unchanged (its `Host` too, so the SigV4 signature still
//! holds) to the stack's `--endpoint-url`, and recorded in the call log
//! under the function whose key signed it, with the status it got.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::call_log::{CallLog, aws_calls};

/// The largest request body forwarded (a DynamoDB item is ≤ 400 KB, an
/// SQS batch ≤ 1 MiB).
const MAX_BODY: usize = 8 * 1024 * 1024;

struct Forwarder {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    log: Arc<CallLog>,
}

/// Serves on `listener` until `shutdown`; returns its URL.
pub fn spawn(
    listener: TcpListener,
    upstream: &str,
    log: Arc<CallLog>,
    shutdown: CancellationToken,
) -> std::io::Result<String> {
    let url = format!("http://{}", listener.local_addr()?);
    let state = Arc::new(Forwarder {
        upstream: upstream.trim_end_matches('/').to_string(),
        client: Client::builder(TokioExecutor::new()).build_http(),
        log,
    });
    let app = axum::Router::new().fallback(forward).with_state(state);
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(error) = serve.await {
            tracing::error!(%error, "the AWS call forwarder stopped");
        }
    });
    Ok(url)
}

async fn forward(State(f): State<Arc<Forwarder>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = header("authorization");
    let calls = aws_calls(
        authorization,
        header("x-amz-target"),
        &body,
        f.log.resources(),
    );
    let function = f.log.function_of(authorization);

    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = match format!("{}{path}", f.upstream).parse::<hyper::Uri>() {
        Ok(uri) => uri,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut upstream = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(uri);
    for (name, value) in &parts.headers {
        upstream = upstream.header(name, value);
    }
    let upstream = match upstream.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let response = match f.client.request(upstream).await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("forwarding: {e}")).into_response(),
    };
    let status = response.status();
    if let Some(function) = function {
        f.log.record(function, &calls, status.as_u16());
    }
    let json_protocol = header("x-amz-target").is_some();
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("reading the answer: {e}")).into_response();
        }
    };
    if status == StatusCode::FORBIDDEN
        && json_protocol
        && let Some(denied) = access_denied_as_aws_json(&body)
    {
        tracing::error!(function = function.unwrap_or("?"), calls = ?calls,
            "refused by IAM: the function's role does not grant this call");
        return denied;
    }
    Response::from_parts(parts, Body::from(body))
}

/// moto answers a refused JSON-protocol call (DynamoDB, SQS, EventBridge,
/// Secrets Manager) in XML; AWS answers it in the protocol's JSON, which
/// is what the SDK parses into `AccessDeniedException` with IAM's message
/// ("User: … is not authorized to perform: dynamodb:Query"). `None` for
/// any other answer.
fn access_denied_as_aws_json(body: &[u8]) -> Option<Response> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.trim_start().starts_with('<') || !text.contains("<Code>AccessDenied</Code>") {
        return None;
    }
    let message = text
        .split("<Message>")
        .nth(1)
        .and_then(|m| m.split("</Message>").next())
        .unwrap_or("access denied");
    let json = serde_json::json!({"__type": "AccessDeniedException", "message": message});
    let mut response = (StatusCode::BAD_REQUEST, json.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", "application/x-amz-json-1.0".parse().ok()?);
    headers.insert("x-amzn-errortype", "AccessDeniedException".parse().ok()?);
    Some(response)
}
