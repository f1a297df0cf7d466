//! The `sweeper` Lambda: the table's stream (removed connection items)
//! → memberships, presence and `fanout.connection.closed`.

use fanout_lambda::{Error, run_sweeper};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_sweeper().await
}
