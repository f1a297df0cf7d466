//! The WebSocket endpoint, behaving like an API Gateway WebSocket API:
//! `$connect` runs the REQUEST authorizer and the connect function before
//! the upgrade (401/403/500 refuse it), every text message is routed by
//! `$request.body.action` and its route response goes back to the client,
//! oversized frames and messages close with 1009, and idle or too-old
//! connections are closed with 1001, and a connection whose token expires
//! (and was not refreshed) gets a `token_expired` error frame and is closed
//! with 4001. `$disconnect` runs when the socket ends, however it ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::encodings::Body;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use fanout_core::handlers::CONTEXT_TOKEN_EXPIRES_AT;
use fanout_core::handlers::authorizer::is_allowed;
use fanout_core::ids::ConnectionId;
use fanout_core::protocol::{ErrorCode, RequestError, TOKEN_EXPIRED_CLOSE_CODE};
use fanout_core::routing::select_route;
use futures::SinkExt;
use serde_json::{Map, Value, json};

use crate::events::{ConnectionContext, EventKind, authorizer_request, websocket_request};
use crate::functions::AuthorizerRefusal;
use crate::outbound::Outbound;
use crate::registry::{LiveConnection, OUTBOUND_CAPACITY};
use crate::state::AppState;

/// Routes configured besides `$default`; all go to the message function
/// and all have route responses.
pub const MESSAGE_ROUTES: &[&str] = &["join", "leave", "publish", "ping"];

/// Initial read buffer of each connection, and the most one read takes
/// beyond a frame's known length. Small, because tungstenite allocates and
/// zero-fills it for every connection, idle or not (4 KiB cost 3 KiB more
/// per idle connection); a larger message still arrives, over more reads.
pub const READ_BUFFER_BYTES: usize = 1024;

/// Frames are buffered up to this many bytes before tungstenite writes
/// them to the socket; the flush after a batch writes the rest.
const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// Most queued bytes one batch takes before flushing, so one busy socket
/// does not hold its worker thread for long.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// A new connection id in API Gateway's shape: 10 random bytes, base64.
pub fn new_connection_id() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 10]>())
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

/// `GET /{stage}` with an upgrade: the WebSocket endpoint.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/{stage}", get(upgrade))
}

/// GET /{stage} with an upgrade: `$connect`.
async fn upgrade(
    State(app): State<Arc<AppState>>,
    Path(stage): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if stage != app.config.stage {
        tracing::info!(stage, expected = %app.config.stage, "connection refused: no such stage");
        return json_error(StatusCode::FORBIDDEN, "Forbidden");
    }
    if app.registry.len() >= app.config.max_connections {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "the stack holds its maximum of {} connections (--max-connections); retry with backoff",
                app.config.max_connections
            ),
        );
    }
    let now_ms = app.clock.now_ms();
    let headers: HashMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mut ctx = ConnectionContext {
        connection_id: new_connection_id(),
        connected_at_ms: now_ms,
        source_ip: peer.ip().to_string(),
        user_agent: headers.get("user-agent").cloned(),
        domain_name: app.domain_name.clone(),
        stage: app.config.stage.clone(),
        authorizer: Map::new(),
    };

    let auth_request = match authorizer_request(&ctx, &headers, &query, now_ms) {
        Ok(r) => r,
        Err(error) => {
            tracing::error!(%error, "could not build the authorizer request");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
    };
    match app.functions.authorize(&auth_request).await {
        Err(AuthorizerRefusal::Unauthorized) => {
            return json_error(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        Err(AuthorizerRefusal::Failed) => {
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
        Ok(policy) if !is_allowed(&policy) => {
            return json_error(StatusCode::FORBIDDEN, "Forbidden");
        }
        Ok(policy) => {
            if let Value::Object(fields) = policy.context {
                ctx.authorizer = fields;
            }
            if let Some(principal) = policy.principal_id {
                ctx.authorizer
                    .insert("principalId".into(), Value::String(principal));
            }
        }
    }

    let kind = EventKind::Connect {
        headers: &headers,
        query: &query,
    };
    let connect_request = match websocket_request(&ctx, kind, now_ms) {
        Ok(r) => r,
        Err(error) => {
            tracing::error!(%error, "could not build the $connect request");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
    };
    let response = app.functions.connect(&connect_request).await;
    if response.status_code != 200 {
        let status = StatusCode::from_u16(response.status_code as u16)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return json_error(status, status.canonical_reason().unwrap_or("Refused"));
    }

    let on_fail = {
        let app = app.clone();
        let ctx = ctx.clone();
        move |error: axum::Error| {
            tracing::warn!(%error, connection_id = %ctx.connection_id, "WebSocket upgrade failed after $connect");
            tokio::spawn(async move { run_disconnect(&app, &ctx, 1006, "upgrade failed").await });
        }
    };
    // Small buffers: most connections are idle most of the time, and
    // tungstenite's default 128 KiB read buffer per connection would make
    // memory, not CPU, the limit on connections. Larger messages still
    // work; the buffer grows while one is read.
    ws.max_frame_size(app.config.max_frame_bytes)
        .max_message_size(app.config.max_message_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_failed_upgrade(on_fail)
        .on_upgrade(move |socket| {
            // Tracked, so the stack's shutdown waits for its $disconnect.
            let sockets = app.sockets.clone();
            sockets.track_future(serve_connection(app, ctx, socket))
        })
}

/// Why a connection ended: the close code and reason `$disconnect` gets.
struct Ending {
    code: u16,
    reason: &'static str,
    /// A close frame to send, when the server is the one closing.
    send_close: bool,
}

impl Ending {
    fn server(code: u16, reason: &'static str) -> Self {
        Self {
            code,
            reason,
            send_close: true,
        }
    }
}

async fn serve_connection(app: Arc<AppState>, ctx: ConnectionContext, socket: WebSocket) {
    let Ok(id) = ConnectionId::new(ctx.connection_id.clone()) else {
        return;
    };
    let kick = app.shutdown.child_token();
    let live = Arc::new(LiveConnection {
        outbound: Outbound::new(OUTBOUND_CAPACITY),
        kick: kick.clone(),
        queued_bytes: AtomicUsize::new(0),
        max_queued_bytes: app.config.max_outbound_bytes,
        slow_consumer: AtomicBool::new(false),
        connected_at_ms: ctx.connected_at_ms,
        last_active_ms: AtomicI64::new(ctx.connected_at_ms),
        source_ip: ctx.source_ip.clone(),
        user_agent: ctx.user_agent.clone(),
    });
    app.registry.insert(id.clone(), live.clone());

    // One socket, not split into halves: the loop below reads and writes
    // it in turn, and the halves' shared lock cost a lock and a waker
    // registration per poll.
    let mut socket = socket;
    let max_life = tokio::time::sleep(app.config.gateway.max_connection_duration);
    tokio::pin!(max_life);
    let idle = tokio::time::sleep(app.config.idle_timeout);
    tokio::pin!(idle);
    let token_expiry = tokio::time::sleep(until_ms(&app, token_expires_at_ms(&ctx)));
    tokio::pin!(token_expiry);
    // Created once: a fresh `cancelled()` each turn of the loop would
    // create and register a new waiter every time.
    let kicked_out = kick.cancelled();
    tokio::pin!(kicked_out);

    // The calls to the functions below are boxed where they are awaited:
    // their futures are large, and inline they would size every idle
    // connection's task (measured: 2.8 KiB each) for the moment it makes
    // one.
    let ending = loop {
        tokio::select! {
            _ = &mut kicked_out => break kicked(&app, &live),
            _ = &mut max_life => break Ending::server(close_code::AWAY, "Going away: maximum connection duration reached"),
            _ = &mut idle => break Ending::server(close_code::AWAY, "Going away: idle timeout"),
            _ = &mut token_expiry => match Box::pin(refreshed_expiry_ms(&app, &id)).await {
                Some(later) => token_expiry.as_mut().reset(tokio::time::Instant::now() + until_ms(&app, Some(later))),
                None => {
                    let frame = RequestError::token_expired(None).to_frame();
                    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Text(frame.into()))).await;
                    break Ending::server(TOKEN_EXPIRED_CLOSE_CODE, "Token expired");
                }
            },
            () = live.outbound.ready() => {
                // A client that does not read blocks this write; a kick (a
                // slow consumer, DELETE, shutdown) still ends it.
                // Biased: a write that completes at once (the usual case)
                // never polls the kick.
                let mut taken = 0;
                let sent = tokio::select! {
                    biased;
                    result = write_queued(&mut socket, &live.outbound, None, &mut taken) => Some(result.is_ok()),
                    _ = &mut kicked_out => None,
                };
                live.queued_bytes.fetch_sub(taken, Ordering::AcqRel);
                match sent {
                    Some(true) => {}
                    Some(false) => break Ending { code: close_code::ABNORMAL, reason: "send failed", send_close: false },
                    None => break kicked(&app, &live),
                }
            }
            incoming = socket.recv() => {
                let now = app.clock.now_ms();
                match incoming {
                    None => break Ending { code: close_code::ABNORMAL, reason: "connection lost", send_close: false },
                    Some(Ok(Message::Close(_))) => break Ending { code: close_code::NORMAL, reason: "client closed", send_close: false },
                    Some(Ok(Message::Text(text))) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + app.config.idle_timeout);
                        live.last_active_ms.store(now, Ordering::Relaxed);
                        if let Some(reply) = Box::pin(route_message(&app, &ctx, text.as_str(), now)).await {
                            // Frames posted while the request ran (a
                            // replay) go out before its reply, as on API
                            // Gateway, where the route response follows the
                            // integration's own posts.
                            let mut taken = 0;
                            let reply = Message::Text(reply.into());
                            let sent = write_queued(&mut socket, &live.outbound, Some(reply), &mut taken).await;
                            live.queued_bytes.fetch_sub(taken, Ordering::AcqRel);
                            if sent.is_err() {
                                break Ending { code: close_code::ABNORMAL, reason: "send failed", send_close: false };
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + app.config.idle_timeout);
                        let reply = RequestError::new(None, ErrorCode::BadRequest, "binary frames are not supported; send JSON text frames").to_frame();
                        if socket.send(Message::Text(reply.into())).await.is_err() {
                            break Ending { code: close_code::ABNORMAL, reason: "send failed", send_close: false };
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + app.config.idle_timeout);
                    }
                    Some(Err(error)) => break read_error_ending(&error, &id),
                }
            }
        }
    };

    app.registry.remove(&id);
    live.outbound.close();
    if ending.send_close {
        let close = Message::Close(Some(CloseFrame {
            code: ending.code,
            reason: ending.reason.into(),
        }));
        // The client may already be gone; there is nobody to tell then.
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(close)).await;
    }
    Box::pin(run_disconnect(&app, &ctx, ending.code, ending.reason)).await;
}

/// The token expiry the authorizer put in the context, ms since the epoch.
fn token_expires_at_ms(ctx: &ConnectionContext) -> Option<i64> {
    match ctx.authorizer.get(CONTEXT_TOKEN_EXPIRES_AT)? {
        Value::Number(n) => n.as_i64().map(|secs| secs * 1000),
        _ => None,
    }
}

/// How long until `at_ms` (far in the future when there is no expiry).
fn until_ms(app: &AppState, at_ms: Option<i64>) -> Duration {
    match at_ms {
        Some(at) => Duration::from_millis(at.saturating_sub(app.clock.now_ms()).max(0) as u64),
        None => Duration::from_secs(365 * 24 * 3600),
    }
}

/// At the token's expiry: the later expiry a `refresh` stored, or `None`
/// when it has really expired (or the connection is gone).
async fn refreshed_expiry_ms(app: &AppState, id: &ConnectionId) -> Option<i64> {
    // A read, not a heartbeat: the gateway checking a token is no sign
    // of life from the client.
    match app.deps.gateway.store.get_connection(id).await {
        Ok(Some(record)) => {
            let at = record.token_expires_at * 1000;
            (at > app.clock.now_ms()).then_some(at)
        }
        Ok(None) => None,
        Err(error) => {
            // The store is down: check again shortly rather than close a
            // connection that may have been refreshed.
            tracing::warn!(%error, connection_id = %id, "could not check the token's expiry");
            Some(app.clock.now_ms() + 5_000)
        }
    }
}

/// Why a kicked connection closes.
fn kicked(app: &AppState, live: &LiveConnection) -> Ending {
    if live.slow_consumer.load(Ordering::Relaxed) {
        Ending::server(
            close_code::POLICY,
            "Policy violation: the client is not reading its messages",
        )
    } else if app.shutdown.is_cancelled() {
        Ending::server(close_code::AWAY, "Server shutting down")
    } else {
        Ending::server(close_code::NORMAL, "Connection deleted")
    }
}

/// How a failed read ends the connection: RFC 6455's close codes for what
/// the client did wrong (1009 too big, 1007 invalid UTF-8, 1002 protocol
/// violations), or no close frame when the connection itself broke.
fn read_error_ending(error: &axum::Error, id: &ConnectionId) -> Ending {
    use tokio_tungstenite::tungstenite::Error;
    // axum wraps tungstenite's error.
    let cause = std::error::Error::source(error).and_then(|e| e.downcast_ref::<Error>());
    match cause {
        Some(Error::Capacity(_)) => Ending::server(close_code::SIZE, "Message too big"),
        Some(Error::Utf8(_)) => {
            Ending::server(close_code::INVALID, "Invalid UTF-8 in a text frame")
        }
        Some(Error::Protocol(violation)) => {
            tracing::debug!(%violation, connection_id = %id, "WebSocket protocol violation");
            Ending::server(close_code::PROTOCOL, "Protocol error")
        }
        _ => {
            tracing::debug!(%error, connection_id = %id, "WebSocket read error");
            Ending {
                code: close_code::ABNORMAL,
                reason: "connection lost",
                send_close: false,
            }
        }
    }
}

/// Route selection and the message function; returns the route response.
async fn route_message(
    app: &AppState,
    ctx: &ConnectionContext,
    body: &str,
    now_ms: i64,
) -> Option<String> {
    let route_key = select_route(body, MESSAGE_ROUTES);
    let request = match websocket_request(ctx, EventKind::Message { route_key, body }, now_ms) {
        Ok(r) => r,
        Err(error) => {
            tracing::error!(%error, "could not build the message request");
            return Some(RequestError::new(None, ErrorCode::Internal, "internal error").to_frame());
        }
    };
    let Some(response) = app.functions.message(&request).await else {
        return Some(
            RequestError::new(None, ErrorCode::Internal, "Internal server error").to_frame(),
        );
    };
    match response.body {
        Some(Body::Text(text)) => Some(text),
        Some(Body::Binary(bytes)) => String::from_utf8(bytes).ok(),
        _ => None,
    }
}

async fn run_disconnect(app: &AppState, ctx: &ConnectionContext, status_code: u16, reason: &str) {
    let now = app.clock.now_ms();
    match websocket_request(
        ctx,
        EventKind::Disconnect {
            status_code,
            reason,
        },
        now,
    ) {
        Ok(request) => {
            app.functions.disconnect(&request).await;
        }
        Err(error) => {
            tracing::error!(%error, connection_id = %ctx.connection_id, "could not build the $disconnect request")
        }
    }
}

/// Writes the frames queued (up to [`WRITE_BATCH_BYTES`]), then `last`,
/// with one flush: one task wake-up and, for small frames, one `write`
/// for the lot. `taken` counts the queued bytes taken off the queue,
/// written or not.
async fn write_queued(
    socket: &mut WebSocket,
    outbound: &Outbound,
    last: Option<Message>,
    taken: &mut usize,
) -> Result<(), axum::Error> {
    while let Some(frame) = outbound.pop() {
        *taken += frame_len(&frame);
        socket.feed(frame).await?;
        if *taken >= WRITE_BATCH_BYTES {
            // The rest go in the next turn, after the other branches had
            // theirs.
            outbound.wake();
            break;
        }
    }
    if let Some(frame) = last {
        socket.feed(frame).await?;
    }
    socket.flush().await
}

/// Bytes a queued frame counts against the connection's outbound limit.
fn frame_len(frame: &Message) -> usize {
    match frame {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) => bytes.len(),
        _ => 0,
    }
}
