//! `fanout-local`: parses flags, binds 127.0.0.1, starts the stack, prints
//! how to use it, and stops cleanly on Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use clap::Parser;
use fanout_local::StackConfig;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,fanout=info,fanout_local=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let config = StackConfig::parse();
    if let Err(message) = config.validate() {
        eprintln!("error: {message}");
        std::process::exit(2);
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("could not listen on {addr}; is another fanout-local running? (--port 0 picks a free port)")
    })?;
    let dev_secret = config.jwt_secret.is_none();
    let mut stack = fanout_local::start(config, listener).await?;

    let port = stack.addr.port();
    println!("fanout local stack is running (Ctrl-C stops it)");
    println!();
    println!("  WebSocket      {}?token=<jwt>", stack.ws_url());
    println!(
        "  @connections   {}/@connections/{{id}}",
        stack.management_url()
    );
    println!(
        "  PutEvents      {}  (bus 'fanout' or 'default')",
        stack.http_url()
    );
    println!();
    if dev_secret {
        println!(
            "Tokens are signed with the development secret (set FANOUT_JWT_SECRET to change it)."
        );
    }
    println!("Mint a token:   cargo run -q -p fanout-cli -- token --tenant acme --user alice");
    println!(
        "Connect:        websocat \"{}?token=$(cargo run -q -p fanout-cli -- token --tenant acme --user alice)\"",
        stack.ws_url()
    );
    println!("Then send:      {{\"action\":\"join\",\"room\":\"lobby\",\"requestId\":\"r1\"}}");
    println!(
        "Publish:        cargo run -q -p fanout-cli -- publish --endpoint http://127.0.0.1:{port} --tenant acme --room lobby --data '{{\"text\":\"hi\"}}'"
    );

    let shutdown = stack.shutdown_token();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("shutting down: closing connections and stopping workers");
        }
        shutdown.cancel();
    });
    stack.wait().await;
    eprintln!("stopped");
    Ok(())
}
