//! The `connect` WebSocket route Lambda.

use fanout_lambda::{Error, WebSocketRoute, run_websocket_route};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_websocket_route(WebSocketRoute::Connect).await
}
