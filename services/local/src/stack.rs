//! Wires the whole stack together: embedded store, bus, queues and
//! dead-letter queues, the gateway's registry, the event source mappings
//! that drive the planner and broadcaster, and one HTTP server for the
//! WebSocket, @connections and PutEvents endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use fanout_core::clock::{Clock, SystemClock};

use fanout_core::event::{AllOfTenant, Target};
use fanout_core::handlers::broadcaster::{self, BroadcasterDeps, BroadcasterSettings};
use fanout_core::handlers::planner::resolve;
use fanout_core::handlers::planner::{self, PlannerDeps, PlannerSettings};
use fanout_core::handlers::{GatewayDeps, GatewaySettings};
use fanout_core::ids::TenantId;
use fanout_core::metrics::{EmfStdout, MetricTotals, MetricsSink, Tee};
use fanout_core::ports::{
    ConnectionPoster, ConnectionStore, EventBus, Queue, QueueError, StoreError,
};
use fanout_core::rate::RateGate;
use fanout_core::token::{DEV_JWT_SECRET, TokenVerifier};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backend::{self, Backend};
use crate::config::{BackendKind, StackConfig};
use crate::esm::EventSourceMapping;
use crate::faults::{Faults, FaultyPoster, QuotaPoster};
use crate::registry::ConnectionRegistry;
use crate::{gateway, management, putevents};

pub use crate::backend::{
    BROADCAST_RULE_PATTERN, BUS_DLQ, DELIVER_DLQ, DELIVER_QUEUE, PLAN_DLQ, PLAN_QUEUE,
};

/// What every HTTP handler shares.
pub struct AppState {
    pub config: StackConfig,
    pub clock: Arc<dyn Clock>,
    pub verifier: TokenVerifier,
    pub gateway: GatewayDeps,
    pub registry: Arc<ConnectionRegistry>,
    /// What @connections calls go through: the registry, behind the fault
    /// injection and quota emulation when they are on.
    pub poster: Arc<dyn ConnectionPoster>,
    /// The queues the SQS-compatible endpoint serves.
    pub queues: crate::sqsapi::QueueDirectory,
    /// `host:port` as API Gateway's `domainName`.
    pub domain_name: String,
    pub shutdown: CancellationToken,
}

/// The stack's resources (embedded or AWS), exposed for tests and stats.
#[derive(Clone)]
pub struct Resources {
    pub store: Arc<dyn ConnectionStore>,
    pub plan_queue: Arc<dyn Queue>,
    pub plan_dlq: Arc<dyn Queue>,
    pub deliver_queue: Arc<dyn Queue>,
    pub deliver_dlq: Arc<dyn Queue>,
    pub bus_dlq: Arc<dyn Queue>,
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
    /// Messages in the plan, deliver and bus dead-letter queues.
    pub async fn dead_letters(&self) -> Result<u64, QueueError> {
        let mut total = 0;
        for q in [&self.plan_dlq, &self.deliver_dlq, &self.bus_dlq] {
            total += q.depth().await?.total();
        }
        Ok(total)
    }

    /// Live connections of `tenant`, as a whole-tenant broadcast resolves
    /// them.
    pub async fn connection_count(&self, tenant: &TenantId) -> Result<usize, StoreError> {
        let target = Target::Tenant(AllOfTenant);
        Ok(resolve(tenant, &target, self.store.as_ref()).await?.len())
    }

    /// Messages still in the plan and deliver queues (visible or not).
    pub async fn in_flight(&self) -> Result<u64, QueueError> {
        Ok(self.plan_queue.depth().await?.total() + self.deliver_queue.depth().await?.total())
    }
}

/// A started stack. Dropping it does not stop it; call [`RunningStack::stop`].
pub struct RunningStack {
    pub addr: SocketAddr,
    pub stage: String,
    pub resources: Resources,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
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
    }
}

/// Starts the stack on an already-bound listener.
pub async fn start(config: StackConfig, listener: TcpListener) -> anyhow::Result<RunningStack> {
    config.validate().map_err(anyhow::Error::msg)?;
    let addr = listener.local_addr()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shutdown = CancellationToken::new();

    let backend = match config.backend {
        BackendKind::Embedded => backend::embedded(&config, clock.clone()),
        BackendKind::Aws => backend::aws(&config, clock.clone()).await?,
    };
    let Backend {
        store,
        dedupe,
        bus,
        plan_queue,
        plan_dlq,
        deliver_queue,
        deliver_dlq,
        bus_dlq,
    } = backend;
    let registry = Arc::new(ConnectionRegistry::new(
        clock.clone(),
        config.max_message_bytes,
    ));
    let faults = Faults::new(config.faults(), config.fault_seed);
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
    let crash_faults = (faults.settings.crash > 0.0).then(|| faults.clone());

    let totals = MetricTotals::new();
    let metrics: Arc<dyn MetricsSink> = if config.emf {
        Arc::new(Tee(vec![totals.clone(), Arc::new(EmfStdout)]))
    } else {
        totals.clone()
    };

    let secret = config
        .jwt_secret
        .clone()
        .unwrap_or_else(|| DEV_JWT_SECRET.to_string());
    let state = Arc::new(AppState {
        verifier: TokenVerifier::new(secret.as_bytes()),
        gateway: GatewayDeps {
            store: store.clone(),
            bus: bus.clone(),
            clock: clock.clone(),
            settings: GatewaySettings {
                max_payload_bytes: config.max_payload_bytes,
                max_connection_duration: config.max_connection_duration,
            },
        },
        clock: clock.clone(),
        registry: registry.clone(),
        poster: poster.clone(),
        queues: crate::sqsapi::QueueDirectory::new(
            vec![
                plan_queue.clone(),
                plan_dlq.clone(),
                deliver_queue.clone(),
                deliver_dlq.clone(),
                bus_dlq.clone(),
            ],
            &[
                (plan_queue.name(), plan_dlq.name(), config.max_receive_count),
                (
                    deliver_queue.name(),
                    deliver_dlq.name(),
                    config.max_receive_count,
                ),
            ],
        ),
        domain_name: addr.to_string(),
        shutdown: shutdown.clone(),
        config: config.clone(),
    });

    // What every broadcaster worker (and the planner's fast path) shares;
    // each gets its own rate gate, as each Lambda environment has its own.
    let broadcaster_deps = {
        let (store, poster, deliver_queue, deliver_dlq, metrics, clock, config) = (
            store.clone(),
            poster.clone(),
            deliver_queue.clone(),
            deliver_dlq.clone(),
            metrics.clone(),
            clock.clone(),
            config.clone(),
        );
        move || BroadcasterDeps {
            store: store.clone(),
            poster: poster.clone(),
            deliver_queue: deliver_queue.clone(),
            dead_letter_queue: deliver_dlq.clone(),
            gate: config.worker_rate().map(|r| Arc::new(RateGate::new(r))),
            metrics: metrics.clone(),
            clock: clock.clone(),
            settings: BroadcasterSettings {
                max_in_flight: config.max_in_flight,
                tries_per_invocation: config.tries_per_invocation,
                max_attempts: config.max_attempts,
                post_timeout: config.post_timeout,
                deadline_margin: config.deadline_margin,
                max_connections_per_job: config.max_connections_per_job,
                ..BroadcasterSettings::default()
            },
        }
    };

    let mut tasks = JoinSet::new();
    let planner_mapping = EventSourceMapping {
        function: planner::FUNCTION,
        queue: plan_queue.clone(),
        batch_size: config.planner_batch_size,
        batching_window: config.batching_window,
        max_concurrency: config.planner_concurrency,
        visibility_timeout: config.visibility_timeout,
        function_timeout: config.planner_timeout,
        faults: crash_faults.clone(),
    };
    planner_mapping.spawn(
        |_worker| {
            let deps = Arc::new(PlannerDeps {
                store: store.clone(),
                dedupe: dedupe.clone(),
                deliver_queue: deliver_queue.clone(),
                clock: clock.clone(),
                metrics: metrics.clone(),
                direct: (config.direct_max_connections > 0).then(|| Arc::new(broadcaster_deps())),
                settings: PlannerSettings {
                    max_connections_per_job: config.max_connections_per_job,
                    direct_max_connections: config.direct_max_connections,
                    dedupe_ttl: config.dedupe_ttl,
                    ..PlannerSettings::default()
                },
            });
            Arc::new(move |event, deadline| {
                let deps = deps.clone();
                Box::pin(async move { planner::handle(event, deadline, &deps).await })
            })
        },
        shutdown.clone(),
        &mut tasks,
    );

    let broadcaster_mapping = EventSourceMapping {
        function: broadcaster::FUNCTION,
        queue: deliver_queue.clone(),
        batch_size: config.broadcaster_batch_size,
        batching_window: config.batching_window,
        max_concurrency: config.broadcaster_concurrency,
        visibility_timeout: config.visibility_timeout,
        function_timeout: config.broadcaster_timeout,
        faults: crash_faults,
    };
    broadcaster_mapping.spawn(
        |_worker| {
            let deps = Arc::new(broadcaster_deps());
            Arc::new(move |event, deadline| {
                let deps = deps.clone();
                Box::pin(async move { broadcaster::handle(event, deadline, &deps).await })
            })
        },
        shutdown.clone(),
        &mut tasks,
    );

    let app = Router::new()
        .route("/", post(putevents::handle))
        .route("/{stage}", get(gateway::upgrade))
        .route(
            "/{stage}/@connections/{id}",
            post(management::post)
                .get(management::get)
                .delete(management::delete),
        )
        .with_state(state);
    let server_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(error) = axum::serve(listener, service)
            .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
            .await
        {
            tracing::error!(%error, "HTTP server failed");
        }
    });

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
            bus,
            registry,
            metrics: totals,
            quota,
            faults,
        },
        shutdown,
        tasks,
    })
}
