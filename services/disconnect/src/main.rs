//! The `disconnect` WebSocket route Lambda.

use fanout_lambda::{Error, run_disconnect};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_disconnect().await
}
