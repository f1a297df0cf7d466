//! The one HTTP server every surface shares: HTTP/1.1 with upgrades (the
//! WebSocket gateway), a header-read timeout so connections that never
//! finish a request are closed, and a cap on connections that have not
//! upgraded, so a flood of idle TCP connections cannot take the port.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// A connection must send a whole request head within this, or it is
    /// closed.
    pub header_read_timeout: Duration,
    /// TCP connections being served as HTTP (not yet upgraded) at once;
    /// past it new ones get 503 and are closed.
    pub max_pending_connections: usize,
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let pending = Arc::new(Semaphore::new(limits.max_pending_connections));
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: back off rather than spin.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        // Frames are small and a socket task already batches what is
        // queued before it writes: Nagle's algorithm would only hold a
        // frame back until the client's (delayed) ACK of the last one.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, %peer, "could not set TCP_NODELAY");
        }
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            tokio::spawn(refuse(tcp, limits.max_pending_connections));
            continue;
        };
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(request)
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "HTTP connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
                }
            }
            // An upgraded WebSocket no longer counts: it lives on in its
            // own task, bounded by --max-connections.
            drop(permit);
        });
    }
}

/// Answers 503 and closes, without reading the request.
async fn refuse(mut tcp: TcpStream, limit: usize) {
    let body = format!(
        r#"{{"message":"too many connections are being opened at once (--max-pending-connections {limit}); retry with backoff"}}"#
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = tcp.write_all(response.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}
