//! What every HTTP surface (the WebSocket gateway, @connections, the AWS
//! JSON endpoints) shares. It lives apart from the wiring in `stack`, so
//! each surface depends on this module alone and none on another.

use std::sync::Arc;

use fanout_core::auth::TokenVerifier;
use fanout_core::clock::Clock;
use fanout_core::handlers::message::MessageDeps;
use fanout_core::ports::ConnectionPoster;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::awsjson::move_task::MoveTasks;
use crate::config::StackConfig;
use crate::dashboard::cache::DashboardCache;
use crate::dashboard::series::DeliverySeries;
use crate::functions::GatewayFunctions;
use crate::queues::QueueDirectory;
use crate::registry::ConnectionRegistry;

pub struct AppState {
    pub config: StackConfig,
    pub clock: Arc<dyn Clock>,
    pub verifier: Arc<TokenVerifier>,
    /// The store and settings the connect, disconnect and message
    /// functions run with (the read endpoints use them too).
    pub deps: MessageDeps,
    /// The authorizer and the route functions, in process or bootstraps.
    pub functions: Arc<dyn GatewayFunctions>,
    pub registry: Arc<ConnectionRegistry>,
    /// What @connections calls go through: the registry, behind the fault
    /// injection and quota emulation when they are on.
    pub poster: Arc<dyn ConnectionPoster>,
    /// The queues the SQS endpoint serves.
    pub queues: QueueDirectory,
    /// The redrive tasks started through the SQS endpoint.
    pub move_tasks: MoveTasks,
    /// `host:port` as API Gateway's `domainName`.
    pub domain_name: String,
    pub shutdown: CancellationToken,
    /// Every upgraded socket's task, through its `$disconnect`.
    pub sockets: TaskTracker,
    /// Deliveries and latency over the last minutes, for the dashboard.
    pub series: Arc<DeliverySeries>,
    /// The dashboard's slow reads (room count, dead letters), reused.
    pub dashboard: DashboardCache,
    /// With `--lambda-call-log`: the functions' @connections calls are
    /// recorded here too.
    pub call_log: Option<Arc<crate::lambdas::call_log::CallLog>>,
}
