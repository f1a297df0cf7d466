//! What every HTTP surface (the WebSocket gateway, @connections, the AWS
//! JSON endpoints) shares. It lives apart from the wiring in `stack`, so
//! each surface depends on this module alone and none on another.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fanout_core::auth::TokenVerifier;
use fanout_core::clock::Clock;
use fanout_core::handlers::GatewayDeps;
use fanout_core::ports::{ConnectionPoster, Queue};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::awsjson::move_task::MoveTasks;
use crate::config::StackConfig;
use crate::dashboard::{DashboardCache, DeliverySeries};
use crate::functions::GatewayFunctions;
use crate::registry::ConnectionRegistry;

pub struct AppState {
    pub config: StackConfig,
    pub clock: Arc<dyn Clock>,
    pub verifier: Arc<TokenVerifier>,
    /// The store and settings the connect, disconnect and message
    /// functions run with (the read endpoints use them too).
    pub gateway: GatewayDeps,
    /// The authorizer and the route functions, in process or bootstraps.
    pub functions: Arc<dyn GatewayFunctions>,
    pub registry: Arc<ConnectionRegistry>,
    /// What @connections calls go through: the registry, behind the fault
    /// injection and quota emulation when they are on.
    pub poster: Arc<dyn ConnectionPoster>,
    /// The queues the SQS endpoint serves.
    pub queues: QueueDirectory,
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

/// The stack's queues by name, and which dead-letter queue each source
/// queue redrives to (its RedrivePolicy).
pub struct QueueDirectory {
    queues: Vec<Arc<dyn Queue>>,
    /// Source queue name → (dead-letter queue name, maxReceiveCount).
    redrive: HashMap<String, (String, u32)>,
    /// Names of the dead-letter queues (redrive targets, and the bus's
    /// and sweeper's, which a rule or a mapping writes to).
    dead_letter: HashSet<String>,
    /// The redrive tasks started through the SQS endpoint.
    pub move_tasks: MoveTasks,
}

impl QueueDirectory {
    pub fn new(
        queues: Vec<Arc<dyn Queue>>,
        dead_letter_queues: Vec<Arc<dyn Queue>>,
        redrive: &[(&str, &str, u32)],
    ) -> Self {
        Self {
            dead_letter: dead_letter_queues
                .iter()
                .map(|q| q.name().to_string())
                .collect(),
            queues: queues.into_iter().chain(dead_letter_queues).collect(),
            redrive: redrive
                .iter()
                .map(|(source, dlq, max)| (source.to_string(), (dlq.to_string(), *max)))
                .collect(),
            move_tasks: MoveTasks::default(),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.queues.iter().map(|q| q.name())
    }

    pub fn all(&self) -> &[Arc<dyn Queue>] {
        &self.queues
    }

    pub fn is_dead_letter_queue(&self, name: &str) -> bool {
        self.dead_letter.contains(name)
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn Queue>> {
        self.queues.iter().find(|q| q.name() == name)
    }

    /// The queue whose redrive policy targets `dead_letter_queue`.
    pub fn dead_letters_into(&self, dead_letter_queue: &str) -> Option<&Arc<dyn Queue>> {
        let (source, _) = self
            .redrive
            .iter()
            .find(|(_, (dlq, _))| dlq == dead_letter_queue)?;
        self.by_name(source)
    }

    /// The queue `source` dead-letters to, and after how many receives.
    pub fn redrive_of(&self, source: &str) -> Option<(&Arc<dyn Queue>, u32)> {
        let (dlq, max) = self.redrive.get(source)?;
        Some((self.by_name(dlq)?, *max))
    }
}
