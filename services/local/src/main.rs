//! `fanout-local`: parses flags, binds 127.0.0.1, starts the stack, prints
//! how to use it, and stops cleanly on Ctrl-C.

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use clap::Parser;
use fanout_local::StackConfig;
use fanout_local::config::LogFormat;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = StackConfig::parse();
    init_logging(config.log_format);
    if let Err(message) = config.validate() {
        eprintln!("error: {message}");
        std::process::exit(2);
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("could not listen on {addr}; is another fanout-local running? (--port 0 picks a free port)")
    })?;
    let dev_secret = config.jwt_secret.is_none();
    let sdk_built = fanout_local::web::sdk_built(&config);
    let notes = config_notes(&config);
    let lambdas = config.lambdas.clone();
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
    println!("  Dashboard      {}/dashboard", stack.http_url());
    if dev_secret {
        println!("  Demo chat      {}/demo", stack.http_url());
    }
    if let Some(dir) = &lambdas {
        println!(
            "  Functions      the bootstraps in {} (started on first use)",
            dir.display()
        );
    }
    println!();
    if dev_secret && !sdk_built {
        println!(
            "The demo chat needs the client SDK built once: npm --prefix clients/js ci && npm --prefix clients/js run build"
        );
    }
    for note in &notes {
        println!("{note}");
    }
    if dev_secret {
        println!(
            "Tokens are signed with the development secret (set FANOUT_JWT_SECRET to change it)."
        );
    }
    // The CLI built beside this binary (same profile and target folder).
    let cli = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("fanout"))
        .filter(|cli| cli.exists());
    let fanout = match &cli {
        Some(path) => path.display().to_string(),
        None => {
            println!(
                "Build the CLI:  cargo build --release -p fanout-cli   (reuses this build's dependencies)"
            );
            "./target/release/fanout".to_string()
        }
    };
    println!("Mint a token:   {fanout} token --tenant acme --user alice");
    println!(
        "Connect:        websocat \"{}?token=$({fanout} token --tenant acme --user alice)\"",
        stack.ws_url()
    );
    println!("Then send:      {{\"action\":\"join\",\"room\":\"lobby\",\"requestId\":\"r1\"}}");
    println!(
        "Publish:        {fanout} publish --endpoint http://127.0.0.1:{port} --tenant acme --room lobby --data '{{\"text\":\"hi\"}}'"
    );

    let shutdown = stack.shutdown_token();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("shutting down: closing connections and stopping workers");
        }
        shutdown.cancel();
    });
    let resources = stack.resources.clone();
    stack.wait().await;
    print_summary(&resources).await;
    eprintln!("stopped");
    Ok(())
}

/// Lines about settings that change how delivery behaves.
fn config_notes(config: &StackConfig) -> Vec<String> {
    let mut notes = Vec::new();
    match config.budget.worker_rate() {
        Some(rate) => notes.push(format!(
            "Broadcaster workers: {} × {}/s (burst {}) of a {}/s @connections budget.",
            config.budget.broadcaster_concurrency,
            rate.per_second,
            rate.burst,
            config.budget.api_budget_rps
        )),
        None => notes.push("Broadcaster workers: no rate limit (--api-budget-rps 0).".into()),
    }
    if let Some(quota) = config.quota() {
        notes.push(format!(
            "AWS-quota emulation: @connections answers 429 past {}/s (burst {}).",
            quota.per_second, quota.burst
        ));
    }
    let f = config.faults();
    if f.affects_posts() || f.crash > 0.0 {
        notes.push(format!(
            "Fault injection (seed {}): gone {:.1} %, throttle {:.1} %, error {:.1} %, latency {} ms, worker crashes {:.1} %.",
            config.fault_seed,
            f.gone * 100.0,
            f.throttle * 100.0,
            f.error * 100.0,
            f.latency.as_millis(),
            f.crash * 100.0
        ));
    }
    notes
}

/// Logs on stderr (stdout carries EMF lines with --emf). `RUST_LOG`
/// overrides the levels.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "warn,fanout_core=info,fanout_embedded=info,fanout_aws=info,fanout_local=info".into()
    });
    // Colours only for a terminal: a log file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        // Span fields (the event id) go on every line, flattened.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// What the pipeline did while the stack ran, and what is left behind.
async fn print_summary(resources: &fanout_local::stack::Resources) {
    let totals = resources.metrics.snapshot();
    if !totals.is_empty() {
        eprintln!("metrics (totals since start):");
        for (name, total) in &totals {
            if name.ends_with("Latency") {
                eprintln!(
                    "  {name:<22} avg {:.1} ms, max {:.0} ms over {} jobs",
                    total.sum / total.count.max(1) as f64,
                    total.max,
                    total.count
                );
            } else {
                eprintln!("  {name:<22} {}", total.sum as u64);
            }
        }
    }
    if let Some(quota) = &resources.quota {
        let s = quota.stats();
        eprintln!(
            "quota emulation: {} calls accepted, {} answered 429",
            s.accepted, s.throttled
        );
    }
    for queue in [
        &resources.plan_dlq,
        &resources.deliver_dlq,
        &resources.bus_dlq,
    ] {
        match queue.depth().await {
            Ok(depth) if depth.total() > 0 => eprintln!(
                "warning: {} message(s) left in dead-letter queue {}",
                depth.total(),
                queue.name()
            ),
            Ok(_) => {}
            Err(error) => eprintln!("warning: {error}"),
        }
    }
}
