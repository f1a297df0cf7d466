//! The `connect` WebSocket route Lambda.

use fanout_lambda::{Error, run_connect};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_connect().await
}
