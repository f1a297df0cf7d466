//! Wires the whole stack together and does nothing else: the backend's
//! store, bus, queues and dead-letter queues, the gateway's registry, the
//! event source mappings that drive the planner and broadcaster, and one
//! HTTP server for every surface's routes.

use std::net::SocketAddr;

use anyhow::Context;
use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use axum::Router;
use fanout_core::auth::TokenVerifier;
use fanout_core::clock::{Clock, SystemClock};
use fanout_core::event::{AllOfTenant, Target};
use fanout_core::handlers::GatewayDeps;
use fanout_core::handlers::broadcaster::{self, BroadcasterDeps};
use fanout_core::handlers::message::MessageDeps;
use fanout_core::handlers::planner::{self, PlannerDeps, resolve};
use fanout_core::handlers::sweeper::{self, SweeperDeps};
use fanout_core::ids::TenantId;
use fanout_core::metrics::{EmfWriter, MetricTotals, MetricsSink, Tee};
use fanout_core::ports::{
    ConnectionPoster, ConnectionStore, EventBus, Queue, QueueError, StoreError,
};
use fanout_core::rate::RateGate;
use fanout_core::token::DEV_JWT_SECRET;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::awsjson::move_task::MoveTasks;
use crate::backend::{self, Backend};
use crate::config::{BackendKind, StackConfig};
use crate::dashboard::cache::DashboardCache;
use crate::dashboard::series::DeliverySeries;
use crate::esm::{EventSourceMapping, SqsHandler};
use crate::faults::{Faults, FaultyPoster, QuotaPoster};
use crate::functions::{GatewayFunctions, InProcessFunctions};
use crate::lambdas::invokers::{BootstrapGateway, mapping_handler};
use crate::lambdas::{Bootstraps, Output};
use crate::queues::QueueDirectory;
use crate::registry::ConnectionRegistry;
use crate::server::{self, ServerLimits};
use crate::state::AppState;
use crate::stream_esm::{StreamHandler, StreamMapping};
use crate::{awsjson, dashboard, devtoken, gateway, history, management, presence, web};

pub use crate::backend::{
    BROADCAST_RULE_PATTERN, BUS_DLQ, DELIVER_DLQ, DELIVER_QUEUE, PLAN_DLQ, PLAN_QUEUE, SWEEPER_DLQ,
};

/// The stack's resources (embedded or AWS), exposed for tests and stats.
#[derive(Clone)]
pub struct Resources {
    pub store: Arc<dyn ConnectionStore>,
    pub plan_queue: Arc<dyn Queue>,
    pub plan_dlq: Arc<dyn Queue>,
    pub deliver_queue: Arc<dyn Queue>,
    pub deliver_dlq: Arc<dyn Queue>,
    pub bus_dlq: Arc<dyn Queue>,
    pub sweeper_dlq: Arc<dyn Queue>,
    pub bus: Arc<dyn EventBus>,
    pub registry: Arc<ConnectionRegistry>,
    /// Totals of every metric the planner and broadcaster recorded.
    pub metrics: Arc<MetricTotals>,
    /// The quota emulation, when `--quota-rps` is on (for its counters).
    pub quota: Option<Arc<QuotaPoster>>,
    /// The fault injection (for its counters).
    pub faults: Arc<Faults>,
}

impl Resources {
    /// Messages in the plan, deliver, bus and sweeper dead-letter queues.
    pub async fn dead_letters(&self) -> Result<u64, QueueError> {
        let mut total = 0;
        for q in [
            &self.plan_dlq,
            &self.deliver_dlq,
            &self.bus_dlq,
            &self.sweeper_dlq,
        ] {
            total += q.depth().await?.total();
        }
        Ok(total)
    }

    /// Live connections of `tenant`, as a whole-tenant broadcast resolves
    /// them.
    pub async fn connection_count(&self, tenant: &TenantId) -> Result<usize, StoreError> {
        let target = Target::Tenant(AllOfTenant);
        Ok(resolve(tenant, &target, self.store.as_ref())
            .await?
            .connections
            .len())
    }

    /// Messages still in the plan and deliver queues (visible or not).
    pub async fn in_flight(&self) -> Result<u64, QueueError> {
        Ok(self.plan_queue.depth().await?.total() + self.deliver_queue.depth().await?.total())
    }
}

/// How long stopping waits for the sockets' `$disconnect`.
const SOCKETS_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A started stack. Dropping it does not stop it; call [`RunningStack::stop`].
pub struct RunningStack {
    pub addr: SocketAddr,
    pub stage: String,
    pub resources: Resources,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    /// The sockets' tasks: shutdown waits for their `$disconnect`.
    sockets: TaskTracker,
    /// With `--lambdas`: the functions' execution environments.
    pub bootstraps: Option<Arc<Bootstraps>>,
}

impl RunningStack {
    pub fn ws_url(&self) -> String {
        format!("ws://{}/{}", self.addr, self.stage)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The endpoint URL for ApiGatewayManagementApi clients.
    pub fn management_url(&self) -> String {
        format!("http://{}/{}", self.addr, self.stage)
    }

    /// A token that signals shutdown (e.g. on Ctrl-C).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Closes every connection (running `$disconnect`), stops the pollers
    /// and the server, and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the stack has stopped (after its shutdown token fires).
    pub async fn wait(&mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(error) = result
                && error.is_panic()
            {
                tracing::error!(%error, "a stack task panicked");
            }
        }
        // Every socket closes on shutdown and runs `$disconnect` (through
        // the bootstraps, with --lambdas, which stop after it).
        self.sockets.close();
        if tokio::time::timeout(SOCKETS_DRAIN, self.sockets.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.sockets.len(),
                "sockets still closing after {SOCKETS_DRAIN:?}; stopping without their $disconnect"
            );
        }
        if let Some(bootstraps) = &self.bootstraps {
            bootstraps.stop().await;
        }
    }
}

/// Starts the stack on an already-bound listener.
pub async fn start(config: StackConfig, listener: TcpListener) -> anyhow::Result<RunningStack> {
    start_with_clock(config, listener, Arc::new(SystemClock)).await
}

/// [`start`] on a given clock: every TTL, heartbeat deadline and expiry
/// of the stack follows it, so a test can move time for the whole stack.
pub async fn start_with_clock(
    config: StackConfig,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<RunningStack> {
    config.validate().map_err(anyhow::Error::msg)?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();

    let backend = match config.backend {
        BackendKind::Embedded => backend::embedded(&config, clock.clone()),
        BackendKind::Aws => backend::aws(&config, clock.clone()).await?,
    };
    let registry = Arc::new(ConnectionRegistry::new(
        clock.clone(),
        config.max_message_bytes,
    ));
    let faults = Faults::new(config.faults(), config.fault_seed);
    let (poster, quota) = poster(&config, &registry, &faults);
    let totals = MetricTotals::new();
    let series = DeliverySeries::new(clock.clone());
    let mut sinks: Vec<Arc<dyn MetricsSink>> = vec![totals.clone(), series.clone()];
    if config.emf {
        sinks.push(Arc::new(EmfWriter::new(
            std::io::stdout(),
            (&config.metrics).into(),
        )));
    }
    let metrics: Arc<dyn MetricsSink> = Arc::new(Tee(sinks));
    let verifier = Arc::new(
        fanout_aws::jwks::token_verifier(
            Some(
                config
                    .jwt_secret
                    .as_deref()
                    .unwrap_or(DEV_JWT_SECRET)
                    .as_bytes(),
            ),
            &config.auth,
        )
        .map_err(anyhow::Error::msg)?,
    );
    if let Some(jwks) = verifier.jwks() {
        // Fetched now so a wrong URL or file shows in the log at once;
        // connections keep retrying it (within the minimum interval).
        match jwks.prefetch().await {
            Ok(keys) => tracing::info!(source = %jwks.describe(), keys, "JWKS loaded"),
            Err(error) => tracing::error!(source = %jwks.describe(), %error, "JWKS not loaded"),
        }
    }
    let bootstraps = match &config.lambdas {
        None => None,
        Some(dir) => {
            let aws = backend
                .aws
                .as_ref()
                .context("--lambdas needs --backend aws")?;
            let output = Arc::new(Output {
                metrics: metrics.clone(),
            });
            let endpoint = format!("http://{addr}/{}", config.stage);
            Some(Arc::new(
                Bootstraps::prepare(dir, &config, aws, endpoint, output).await?,
            ))
        }
    };
    let functions = Functions {
        config: &config,
        verifier: &verifier,
        backend: &backend,
        poster: &poster,
        metrics: &metrics,
        clock: &clock,
        bootstraps: bootstraps.as_ref(),
    };

    let mut tasks = JoinSet::new();
    let crash_faults = (faults.settings.crash > 0.0).then(|| faults.clone());
    functions.spawn_mappings(crash_faults, &shutdown, &mut tasks);
    functions.spawn_sweeper(&shutdown, &mut tasks);

    let sockets = TaskTracker::new();
    let state = Arc::new(AppState {
        verifier: verifier.clone(),
        deps: functions.message_deps(),
        functions: functions.gateway_functions(),
        clock: clock.clone(),
        registry: registry.clone(),
        poster,
        queues: queue_directory(&config, &backend),
        move_tasks: MoveTasks::default(),
        domain_name: addr.to_string(),
        shutdown: shutdown.clone(),
        sockets: sockets.clone(),
        series,
        dashboard: DashboardCache::default(),
        call_log: bootstraps.as_ref().and_then(|b| b.call_log.clone()),
        config: config.clone(),
    });
    serve(listener, state, shutdown.clone(), &mut tasks);

    let Backend {
        store,
        plan_queue,
        plan_dlq,
        deliver_queue,
        deliver_dlq,
        bus_dlq,
        sweeper_dlq,
        bus,
        ..
    } = backend;
    Ok(RunningStack {
        addr,
        stage: config.stage,
        resources: Resources {
            store,
            plan_queue,
            plan_dlq,
            deliver_queue,
            deliver_dlq,
            bus_dlq,
            sweeper_dlq,
            bus,
            registry,
            metrics: totals,
            quota,
            faults,
        },
        shutdown,
        tasks,
        sockets,
        bootstraps,
    })
}

/// What @connections calls go through: the registry, behind the fault
/// injection and the quota emulation when they are on.
fn poster(
    config: &StackConfig,
    registry: &Arc<ConnectionRegistry>,
    faults: &Arc<Faults>,
) -> (Arc<dyn ConnectionPoster>, Option<Arc<QuotaPoster>>) {
    let mut poster: Arc<dyn ConnectionPoster> = registry.clone();
    if faults.settings.affects_posts() {
        poster = Arc::new(FaultyPoster::new(registry.clone(), faults.clone()));
    }
    let quota = config
        .quota()
        .map(|rate| Arc::new(QuotaPoster::new(poster.clone(), rate)));
    if let Some(quota) = &quota {
        poster = quota.clone();
    }
    (poster, quota)
}

/// The queues the SQS endpoint serves, with their redrive policies.
fn queue_directory(config: &StackConfig, backend: &Backend) -> QueueDirectory {
    QueueDirectory::new(
        vec![backend.plan_queue.clone(), backend.deliver_queue.clone()],
        vec![
            backend.plan_dlq.clone(),
            backend.deliver_dlq.clone(),
            backend.bus_dlq.clone(),
            backend.sweeper_dlq.clone(),
        ],
        &[
            (
                backend.plan_queue.name(),
                backend.plan_dlq.name(),
                config.max_receive_count,
            ),
            (
                backend.deliver_queue.name(),
                backend.deliver_dlq.name(),
                config.max_receive_count,
            ),
        ],
    )
}

/// Builds each function's dependencies from the stack's settings and
/// adapters, as each Lambda's `main` does from its environment.
struct Functions<'a> {
    config: &'a StackConfig,
    verifier: &'a Arc<TokenVerifier>,
    backend: &'a Backend,
    poster: &'a Arc<dyn ConnectionPoster>,
    metrics: &'a Arc<dyn MetricsSink>,
    clock: &'a Arc<dyn Clock>,
    bootstraps: Option<&'a Arc<Bootstraps>>,
}

impl Functions<'_> {
    /// What the gateway invokes: the bootstraps with `--lambdas`, else the
    /// library handlers.
    fn gateway_functions(&self) -> Arc<dyn GatewayFunctions> {
        match self.bootstraps {
            Some(b) => Arc::new(BootstrapGateway {
                authorizer: b.pool("authorizer"),
                connect: b.pool("connect"),
                disconnect: b.pool("disconnect"),
                message: b.pool("message"),
            }),
            None => Arc::new(InProcessFunctions {
                verifier: self.verifier.clone(),
                allowed_origins: self.config.auth.allowed_origins.clone(),
                deps: self.message_deps(),
                clock: self.clock.clone(),
            }),
        }
    }

    fn gateway_deps(&self) -> GatewayDeps {
        GatewayDeps {
            store: self.backend.store.clone(),
            bus: self.backend.bus.clone(),
            clock: self.clock.clone(),
            settings: self.config.gateway.clone(),
            presence: self.backend.presence.clone(),
            presence_settings: self.config.presence.clone(),
        }
    }

    fn message_deps(&self) -> MessageDeps {
        MessageDeps {
            gateway: self.gateway_deps(),
            verifier: self.verifier.clone(),
            poster: self.poster.clone(),
            streams: self.backend.streams.clone(),
            stream: self.config.stream.clone(),
            abuse: self.config.abuse.clone(),
        }
    }

    /// One broadcaster worker's dependencies (the planner's fast path uses
    /// them too). Each gets its own rate gate, as each Lambda environment
    /// has its own.
    fn broadcaster_deps(&self) -> BroadcasterDeps {
        BroadcasterDeps {
            store: self.backend.store.clone(),
            poster: self.poster.clone(),
            deliver_queue: self.backend.deliver_queue.clone(),
            dead_letter_queue: self.backend.deliver_dlq.clone(),
            gate: self
                .config
                .budget
                .worker_rate()
                .map(|r| Arc::new(RateGate::new(r))),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            settings: self.config.broadcaster.clone(),
            jobs: self.config.jobs.clone(),
        }
    }

    fn planner_deps(&self) -> PlannerDeps {
        PlannerDeps {
            store: self.backend.store.clone(),
            dedupe: self.backend.dedupe.clone(),
            deliver_queue: self.backend.deliver_queue.clone(),
            dead_letter_queue: self.backend.plan_dlq.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            direct: (self.config.planner.direct_max_connections > 0)
                .then(|| Arc::new(self.broadcaster_deps())),
            settings: self.config.planner.clone(),
            jobs: self.config.jobs.clone(),
            streams: self.backend.streams.clone(),
            stream: self.config.stream.clone(),
        }
    }

    /// The plan and deliver queues' event source mappings, driving planner
    /// and broadcaster invocations; each worker gets its own dependencies,
    /// as each Lambda execution environment does.
    fn spawn_mappings(
        &self,
        faults: Option<Arc<Faults>>,
        shutdown: &CancellationToken,
        tasks: &mut JoinSet<()>,
    ) {
        let config = self.config;
        self.mapping(
            planner::FUNCTION,
            &self.backend.plan_queue,
            (config.planner_batch_size, config.planner_concurrency),
            config.planner_timeout,
            faults.clone(),
        )
        .spawn(
            |_worker| match self.bootstraps {
                Some(b) => mapping_handler(b.pool(planner::FUNCTION)),
                None => handler(self.planner_deps(), |event, deadline, deps| async move {
                    planner::handle(event, deadline, &deps).await
                }),
            },
            shutdown.clone(),
            tasks,
        );
        self.mapping(
            broadcaster::FUNCTION,
            &self.backend.deliver_queue,
            (
                config.broadcaster_batch_size,
                config.budget.broadcaster_concurrency,
            ),
            config.broadcaster_timeout,
            faults,
        )
        .spawn(
            |_worker| match self.bootstraps {
                Some(b) => mapping_handler(b.pool(broadcaster::FUNCTION)),
                None => handler(
                    self.broadcaster_deps(),
                    |event, deadline, deps| async move {
                        broadcaster::handle(event, deadline, &deps).await
                    },
                ),
            },
            shutdown.clone(),
            tasks,
        );
    }

    /// The sweeper, on the table's change records; and on the embedded
    /// store, its TTL process (on AWS, DynamoDB's).
    fn spawn_sweeper(&self, shutdown: &CancellationToken, tasks: &mut JoinSet<()>) {
        let deps = Arc::new(SweeperDeps {
            gateway: self.gateway_deps(),
            poster: self.poster.clone(),
        });
        let handler: StreamHandler = match self.bootstraps {
            Some(b) => mapping_handler(b.pool(sweeper::FUNCTION)),
            None => Arc::new(move |event, _deadline| {
                let deps = deps.clone();
                Box::pin(async move { Ok(sweeper::handle(&event, &deps).await) })
            }),
        };
        StreamMapping {
            function: sweeper::FUNCTION,
            feed: self.backend.changes.clone(),
            batch_size: self.config.sweeper_batch_size,
            max_retry_attempts: self.config.sweeper_max_retry_attempts,
            function_timeout: self.config.sweeper_timeout,
            on_failure: self.backend.sweeper_dlq.clone(),
        }
        .spawn(handler, shutdown.clone(), tasks);
        if let Some(store) = self.backend.expiring.clone() {
            let interval = self.config.expiry_scan_interval;
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let expired = store.expire_connections();
                    if expired > 0 {
                        tracing::info!(
                            expired,
                            "connections past their heartbeat deadline deleted"
                        );
                    }
                }
            });
        }
    }

    /// A mapping with the settings both share (batching window, visibility
    /// timeout) and the function's own `(batch size, max concurrency)`.
    fn mapping(
        &self,
        function: &'static str,
        queue: &Arc<dyn Queue>,
        (batch_size, max_concurrency): (usize, usize),
        function_timeout: std::time::Duration,
        faults: Option<Arc<Faults>>,
    ) -> EventSourceMapping {
        EventSourceMapping {
            function,
            queue: queue.clone(),
            batch_size,
            batching_window: self.config.batching_window,
            max_concurrency,
            visibility_timeout: self.config.visibility_timeout,
            function_timeout,
            faults,
        }
    }
}

/// A worker's handler: `handle` called with the worker's own dependencies.
fn handler<D, Fut>(
    deps: D,
    handle: impl Fn(SqsEvent, Instant, Arc<D>) -> Fut + Send + Sync + 'static,
) -> SqsHandler
where
    D: Send + Sync + 'static,
    Fut: Future<Output = SqsBatchResponse> + Send + 'static,
{
    let deps = Arc::new(deps);
    Arc::new(move |event, deadline| {
        let response = handle(event, deadline, deps.clone());
        Box::pin(async move { Ok(response.await) })
    })
}

/// One HTTP server for every surface: the WebSocket gateway, @connections,
/// the AWS JSON endpoints, the read endpoints, the development token
/// endpoints, and the demo and dashboard pages.
fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let limits = ServerLimits {
        header_read_timeout: state.config.header_read_timeout,
        max_pending_connections: state.config.max_pending_connections,
    };
    let app = Router::new()
        .merge(awsjson::routes())
        .merge(gateway::routes())
        .merge(management::routes())
        .merge(history::routes())
        .merge(presence::routes())
        .merge(dashboard::routes())
        .merge(devtoken::routes())
        .merge(web::routes())
        .with_state(state);
    tasks.spawn(server::serve(listener, app, limits, shutdown));
}
