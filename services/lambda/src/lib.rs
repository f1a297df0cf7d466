//! # fanout-lambda
//!
//! What the seven Lambda binaries (`services/{authorizer,connect,disconnect,
//! message,planner,broadcaster,sweeper}`) share, so each `main.rs` is a few
//! lines:
//!
//! - [`config`]: what each function reads from its environment (resources,
//!   and the tunable groups of `fanout_core::settings`); a missing or
//!   invalid variable fails at start-up with a message naming it.
//! - [`run_connect`], [`run_disconnect`], [`run_message`]: the whole `main`
//!   of each WebSocket route function; [`run_sweeper`], the sweeper's.
//! - [`setup`]: JSON logs, the AWS SDK configuration and adapters, built
//!   once per execution environment.
//! - [`deadline`]: the invocation deadline as a Tokio instant.
//!
//! Architecture invariant: only `services/*` know `lambda_runtime`; the
//! handlers themselves live in `fanout_core::handlers`.

pub mod config;
pub mod setup;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::dynamodb::Event as StreamEvent;
use clap::Args;
use fanout_core::handlers::{GatewayDeps, connect, disconnect, message, sweeper};

pub use lambda_runtime::{Error, LambdaEvent, run, service_fn};

/// The invocation's deadline (`Context::deadline`, ms since the epoch) as a
/// Tokio instant, for the handlers' deadline awareness.
pub fn deadline(context: &lambda_runtime::Context) -> tokio::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_millis(context.deadline.saturating_sub(now_ms))
}

/// Reads the function's configuration from the environment or exits with
/// the reason, naming the variable: a misconfigured function should fail
/// its first invocation loudly, not run with a guess. With `--help` (run
/// by hand) it prints every variable the function reads, and exits.
pub fn config_or_exit<T: Args + config::FromEnv + config::Validate>() -> T {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        let help = T::augment_args(clap::Command::new("bootstrap"))
            .about("A fanout Lambda function. It reads only these environment variables (the flags are their names in the local stack):")
            .disable_help_flag(true)
            .render_long_help();
        // `bootstrap --help | head` must not panic on a closed pipe.
        let _ = writeln!(std::io::stdout().lock(), "{help}");
        std::process::exit(0);
    }
    match config::load::<T>(&config::Env::process()) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    }
}

/// connect's whole `main`: logs, configuration, the store and bus built
/// once, then the Lambda runtime loop.
pub async fn run_connect() -> Result<(), Error> {
    run_gateway_route("connect", |request, deps| async move {
        connect::handle(&request, &deps).await
    })
    .await
}

/// disconnect's whole `main`.
pub async fn run_disconnect() -> Result<(), Error> {
    run_gateway_route("disconnect", |request, deps| async move {
        disconnect::handle(&request, &deps).await
    })
    .await
}

/// message's whole `main`: also the token verifier, the abuse limits and
/// @connections (for `refresh`, grants and closing expired connections).
pub async fn run_message() -> Result<(), Error> {
    setup::init_logging();
    let config = config_or_exit::<config::MessageConfig>();
    setup::metrics(&config.gateway.metrics, "message");
    let deps = setup::message_deps(&setup::sdk_config().await, &config).await?;
    serve_route(deps, |request, deps| async move {
        message::handle(&request, &deps).await
    })
    .await
}

/// sweeper's whole `main`: the table's change records (filtered by the
/// mapping to removed connection items), answered with the first failed
/// record so the mapping retries from there.
pub async fn run_sweeper() -> Result<(), Error> {
    setup::init_logging();
    let config = config_or_exit::<config::SweeperConfig>();
    setup::metrics(&config.gateway.metrics, sweeper::FUNCTION);
    let deps = Arc::new(setup::sweeper_deps(&setup::sdk_config().await, &config));
    run(service_fn(move |event: LambdaEvent<StreamEvent>| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(sweeper::handle(&event.payload, &deps).await) }
    }))
    .await
}

async fn run_gateway_route<H, F>(function: &str, handle: H) -> Result<(), Error>
where
    H: Fn(ApiGatewayWebsocketProxyRequest, Arc<GatewayDeps>) -> F + Copy + Send,
    F: Future<Output = ApiGatewayProxyResponse> + Send,
{
    setup::init_logging();
    let config = config_or_exit::<config::GatewayConfig>();
    setup::metrics(&config.metrics, function);
    let deps = setup::gateway_deps(&setup::sdk_config().await, &config);
    serve_route(deps, handle).await
}

/// The Lambda runtime loop of one WebSocket route. Generic over the
/// handler, so each bootstrap links only its own (connect and disconnect
/// carry no token verifier).
async fn serve_route<D, H, F>(deps: D, handle: H) -> Result<(), Error>
where
    D: Send + Sync + 'static,
    H: Fn(ApiGatewayWebsocketProxyRequest, Arc<D>) -> F + Copy + Send,
    F: Future<Output = ApiGatewayProxyResponse> + Send,
{
    let deps = Arc::new(deps);
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let deps = deps.clone();
            async move { Ok::<_, Error>(handle(event.payload, deps).await) }
        },
    ))
    .await
}
