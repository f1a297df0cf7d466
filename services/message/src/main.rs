//! The `message` WebSocket route Lambda.

use fanout_lambda::{Error, run_message};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_message().await
}
