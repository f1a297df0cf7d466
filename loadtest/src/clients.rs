//! The simulated clients: real WebSocket connections, opened from spread
//! 127.0.0.x source addresses on loopback, each joining one room and
//! recording which messages arrived and when.

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one client saw (sent back by a worker process as JSON).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClientLog {
    pub room: usize,
    /// Per message frame: the harness's message number, µs since the
    /// run's start, and the room-stream `seq` the frame carried (none
    /// when streams are off).
    pub received: Vec<(u32, u64, Option<u64>)>,
    /// Error frames and socket errors, by code.
    pub errors: Vec<String>,
    /// Presence notices: (joined, user, µs since the run's start).
    pub presence: Vec<(bool, String, u64)>,
}

/// The part of a frame the harness reads.
#[derive(Deserialize)]
struct Frame<'a> {
    /// Borrowed from the frame's text: no allocation per frame.
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    data: Option<Data>,
    /// The room-stream seq.
    #[serde(default)]
    seq: Option<u64>,
    /// The user a presence notice is about.
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    seq: Option<u32>,
}

/// The source address for client `i`: 127.0.0.1 … 127.0.0.k.
pub fn source_address(i: usize, count: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (i % count.max(1)) as u8)
}

/// Opens a WebSocket to `url` (with `?token=`). For a loopback `ws://`
/// URL the socket is bound to `source` first, so many sockets fit the
/// ephemeral ports; anything else (wss://) connects the usual way, TLS
/// included.
pub async fn open(url: &str, token: &str, source: Ipv4Addr) -> Result<Socket, String> {
    let full = format!("{url}?token={token}");
    let loopback = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|host| host.parse::<SocketAddr>().ok())
        .filter(|addr| addr.ip().is_loopback());
    match loopback {
        Some(addr) => {
            let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
            // Ports of earlier runs may still be in TIME_WAIT.
            socket
                .set_reuseaddr(true)
                .map_err(|e| format!("socket: {e}"))?;
            crate::system::bind_address_no_port(&socket)
                .map_err(|e| format!("socket: IP_BIND_ADDRESS_NO_PORT: {e}"))?;
            socket
                .bind(SocketAddr::new(IpAddr::V4(source), 0))
                .map_err(|e| format!("bind {source}: {e}"))?;
            let stream = socket
                .connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            // Small buffers, so the generator's own memory does not hide the
            // stack's per-connection cost.
            let config = WebSocketConfig::default()
                .read_buffer_size(4 * 1024)
                .write_buffer_size(0);
            let (ws, _) = tokio_tungstenite::client_async_with_config(
                full,
                MaybeTlsStream::Plain(stream),
                Some(config),
            )
            .await
            .map_err(|e| format!("handshake: {e}"))?;
            Ok(ws)
        }
        None => tokio_tungstenite::connect_async(full)
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| format!("connect: {e}")),
    }
}

/// Joins `room` and waits for the `joined` reply.
pub async fn join(ws: &mut Socket, room: &str) -> Result<(), String> {
    let request = format!(r#"{{"action":"join","room":"{room}","requestId":"join"}}"#);
    ws.send(Message::Text(request.into()))
        .await
        .map_err(|e| format!("send join: {e}"))?;
    let wait = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Text(text)) => match serde_json::from_str::<Frame>(&text) {
                    Ok(f) if f.kind == "joined" => return Ok(()),
                    Ok(f) if f.kind == "error" => {
                        return Err(format!("join refused: {}", f.code.unwrap_or_default()));
                    }
                    _ => continue,
                },
                Ok(_) => continue,
                Err(e) => return Err(format!("socket: {e}")),
            }
        }
        Err("closed before the join ack".to_string())
    });
    wait.await.map_err(|_| "no join ack in 30 s".to_string())?
}

/// Reads frames until `stop` turns true, recording every message frame's
/// sequence number and arrival time (monotonic µs since `time_base_us`);
/// counts them in `delivered`.
pub async fn listen(
    mut ws: Socket,
    room: usize,
    time_base_us: u64,
    delivered: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> ClientLog {
    let mut log = ClientLog {
        room,
        ..ClientLog::default()
    };
    // Created once: every client waits on the same channel, and a fresh
    // `changed()` each turn would register and unregister with its one
    // lock per frame, from every generator thread.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let at = crate::system::monotonic_us().saturating_sub(time_base_us);
                    match serde_json::from_str::<Frame>(&text) {
                        Ok(Frame { kind, data: Some(Data { seq: Some(n) }), seq, .. }) if kind == "message" => {
                            log.received.push((n, at, seq));
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Frame { kind, user: Some(user), .. }) if kind == "presence.joined" || kind == "presence.left" => {
                            log.presence.push((kind == "presence.joined", user, at));
                        }
                        Ok(Frame { kind, code, .. }) if kind == "error" => {
                            log.errors.push(code.unwrap_or_else(|| "error".into()));
                        }
                        Ok(_) => {}
                        Err(_) => log.errors.push("unparseable_frame".into()),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                    log.errors.push(format!("closed_{code}"));
                    return log;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    log.errors.push(format!("socket_error: {e}"));
                    return log;
                }
                None => {
                    log.errors.push("closed".into());
                    return log;
                }
            }
        }
    }
    let _ = ws.close(None).await;
    log
}
