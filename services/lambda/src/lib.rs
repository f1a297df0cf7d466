//! # fanout-lambda
//!
//! What the six Lambda binaries (`services/{authorizer,connect,disconnect,
//! message,planner,broadcaster}`) share, so each `main.rs` is a few lines:
//!
//! - [`config`]: what each function reads from its environment (resources,
//!   and the tunable groups of `fanout_core::settings`); a missing or
//!   invalid variable fails at start-up with a message naming it.
//! - [`run_websocket_route`]: the whole `main` of connect, disconnect and
//!   message.
//! - [`setup`]: JSON logs, the AWS SDK configuration and adapters, built
//!   once per execution environment.
//! - [`deadline`]: the invocation deadline as a Tokio instant.
//!
//! Architecture invariant: only `services/*` know `lambda_runtime`; the
//! handlers themselves live in `fanout_core::handlers`.

pub mod config;
pub mod setup;

use std::io::Write;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use clap::Args;
use fanout_core::handlers::{GatewayDeps, connect, disconnect, message};

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

/// The three WebSocket route functions: the same shape, another handler.
#[derive(Debug, Clone, Copy)]
pub enum WebSocketRoute {
    Connect,
    Disconnect,
    Message,
}

impl WebSocketRoute {
    async fn handle(
        self,
        request: &ApiGatewayWebsocketProxyRequest,
        deps: &GatewayDeps,
    ) -> ApiGatewayProxyResponse {
        match self {
            Self::Connect => connect::handle(request, deps).await,
            Self::Disconnect => disconnect::handle(request, deps).await,
            Self::Message => message::handle(request, deps).await,
        }
    }
}

/// A WebSocket route function's whole `main`: logs, configuration, the
/// store and bus built once, then the Lambda runtime loop.
pub async fn run_websocket_route(route: WebSocketRoute) -> Result<(), Error> {
    setup::init_logging();
    let sdk = setup::sdk_config().await;
    let deps = match route {
        WebSocketRoute::Message => {
            let config = config_or_exit::<config::MessageConfig>();
            setup::message_deps(&sdk, &config).await?
        }
        WebSocketRoute::Connect | WebSocketRoute::Disconnect => {
            let config = config_or_exit::<config::GatewayConfig>();
            setup::gateway_deps(&sdk, &config)
        }
    };
    let deps = &deps;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(route.handle(&event.payload, deps).await)
        },
    ))
    .await
}
