//! `--lambdas DIR`: the built bootstrap binaries, run as Lambda runs them.
//! Each function has a pool of execution environments (child processes,
//! started on demand up to a maximum, like cold starts), each polling a
//! Lambda Runtime API of its own ([`runtime_api`]) with the environment
//! the template gives the function ([`environment`]). The gateway, the
//! event source mappings and the stream mapping invoke them through
//! [`invokers`] instead of calling the library handlers.

pub mod call_log;
pub mod environment;
pub mod forwarder;
pub mod invokers;
pub mod log_filter;
pub mod roles;
pub mod runtime_api;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use fanout_core::metrics::{MetricsSink, parse_emf_line};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use runtime_api::Invocation;

/// The functions, by the name their binary and the template use
/// (`fanout-<function>`).
pub const FUNCTIONS: [&str; 7] = [
    "authorizer",
    "connect",
    "disconnect",
    "message",
    "planner",
    "broadcaster",
    "sweeper",
];

/// Why an invocation produced no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The function answered with an error (`/invocation/{id}/error`).
    #[error("{error_type}: {message}")]
    Function { error_type: String, message: String },
    #[error("{0}")]
    Crashed(String),
    #[error("Task timed out after {0:?}")]
    TimedOut(Duration),
    #[error("init error: {0}")]
    Init(String),
    #[error("the stack is stopping")]
    Stopped,
    #[error("the response is not the JSON the caller expects: {0}")]
    BadResponse(String),
}

/// What a function runs as: its binary, environment and limits.
pub struct FunctionSpec {
    pub function: &'static str,
    pub binary: PathBuf,
    pub arn: String,
    pub environment: Vec<(String, String)>,
    pub timeout: Duration,
    pub max_environments: usize,
}

/// Where the bootstraps' output goes: EMF lines to the stack's metrics
/// (which print them again with `--emf`), log lines to stderr.
pub struct Output {
    pub metrics: Arc<dyn MetricsSink>,
}

impl Output {
    /// Whether `line` was an EMF record (and was recorded).
    fn metric_line(&self, line: &str) -> bool {
        let Some(record) = parse_emf_line(line) else {
            return false;
        };
        self.metrics
            .record(&record.function, &record.event_id, &record.metrics);
        true
    }

    fn log_line(&self, environment: &str, line: &str) {
        eprintln!("{environment} {line}");
    }
}

/// A function's execution environments and the invocations waiting for
/// them.
pub struct FunctionPool {
    pub spec: FunctionSpec,
    output: Arc<Output>,
    shutdown: CancellationToken,
    sender: mpsc::UnboundedSender<Invocation>,
    receiver: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    /// Invocations sent and not yet taken by an environment.
    waiting: AtomicUsize,
    /// Environments inside `/next`, ready for one.
    idle: AtomicUsize,
    live: AtomicUsize,
    started: AtomicUsize,
    init_errors: AtomicU64,
    init_times: Mutex<Vec<Duration>>,
}

impl FunctionPool {
    pub fn new(spec: FunctionSpec, output: Arc<Output>, shutdown: CancellationToken) -> Arc<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        Arc::new(Self {
            spec,
            output,
            shutdown,
            sender,
            receiver: tokio::sync::Mutex::new(receiver),
            waiting: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            init_errors: AtomicU64::new(0),
            init_times: Mutex::new(Vec::new()),
        })
    }

    /// Invokes the function with `payload` (serialized as Lambda would)
    /// and parses its response.
    pub async fn invoke<T: serde::de::DeserializeOwned>(
        self: &Arc<Self>,
        payload: &impl serde::Serialize,
    ) -> Result<T, InvokeError> {
        if self.shutdown.is_cancelled() {
            return Err(InvokeError::Stopped);
        }
        let payload = serde_json::to_vec(payload)
            .map_err(|e| InvokeError::BadResponse(format!("the event does not serialize: {e}")))?;
        let (reply, response) = oneshot::channel();
        let invocation = Invocation {
            request_id: uuid::Uuid::new_v4().to_string(),
            payload: Bytes::from(payload),
            timeout: self.spec.timeout,
            reply,
        };
        self.waiting.fetch_add(1, Ordering::SeqCst);
        if self.sender.send(invocation).is_err() {
            return Err(InvokeError::Stopped);
        }
        self.scale();
        let body = response.await.map_err(|_| InvokeError::Stopped)??;
        serde_json::from_slice(&body).map_err(|e| {
            InvokeError::BadResponse(format!("{e}: {}", String::from_utf8_lossy(&body)))
        })
    }

    /// Starts an environment when invocations outnumber the idle ones and
    /// the pool has room: a cold start.
    fn scale(self: &Arc<Self>) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let waiting = self.waiting.load(Ordering::SeqCst);
        let idle = self.idle.load(Ordering::SeqCst);
        if waiting <= idle {
            return;
        }
        let live = self.live.fetch_add(1, Ordering::SeqCst);
        if live >= self.spec.max_environments {
            self.live.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let index = self.started.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(runtime_api::run(self.clone(), index));
    }

    /// The next invocation for an environment in `/next`; `None` when the
    /// environment ends first.
    async fn take(&self, ended: &CancellationToken) -> Option<Invocation> {
        self.idle.fetch_add(1, Ordering::SeqCst);
        let invocation = tokio::select! {
            _ = ended.cancelled() => None,
            _ = self.shutdown.cancelled() => None,
            invocation = async { self.receiver.lock().await.recv().await } => invocation,
        };
        self.idle.fetch_sub(1, Ordering::SeqCst);
        if invocation.is_some() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        invocation
    }

    /// Fails the longest-waiting invocation (the one a failed init was
    /// started for).
    fn fail_one_waiting(&self, error: InvokeError) {
        let Ok(mut receiver) = self.receiver.try_lock() else {
            return;
        };
        if let Ok(invocation) = receiver.try_recv() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            let _ = invocation.reply.send(Err(error));
        }
    }

    fn environment_ended(self: &Arc<Self>) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        self.scale();
    }

    fn record_init(&self, init: Duration) {
        self.init_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(init);
    }

    /// Environments inside `/next` now, ready for an invocation. One that
    /// has just answered is not counted until it asks again: an
    /// invocation sent in between starts another environment, as Lambda
    /// scales out when none is free.
    pub fn idle_environments(&self) -> usize {
        self.idle.load(Ordering::SeqCst)
    }

    /// Each environment's init time so far (process start → first
    /// `/next`), in start order.
    pub fn init_times(&self) -> Vec<Duration> {
        self.init_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Environments whose process ended before its first `/next`.
    pub fn init_errors(&self) -> u64 {
        self.init_errors.load(Ordering::Relaxed)
    }

    /// Environments running now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Fails what still waits for an environment (the pool is stopping).
    fn fail_waiting(&self) {
        while self.waiting.load(Ordering::SeqCst) > 0 {
            let Ok(mut receiver) = self.receiver.try_lock() else {
                return;
            };
            let Ok(invocation) = receiver.try_recv() else {
                return;
            };
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            let _ = invocation.reply.send(Err(InvokeError::Stopped));
        }
    }
}

/// Finds `fanout-<function>` in `dir`: `cargo lambda build`'s
/// `fanout-<function>/bootstrap`, or `cargo build`'s `fanout-<function>`.
pub fn locate(dir: &Path, function: &str) -> Result<PathBuf, String> {
    let candidates = [
        dir.join(format!("fanout-{function}")).join("bootstrap"),
        dir.join(format!("fanout-{function}")),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "--lambdas {}: no bootstrap for {function} (looked for {} and {}); build them with `cargo build --bins` or `cargo lambda build`",
                dir.display(),
                candidates[0].display(),
                candidates[1].display()
            )
        })
}

/// How long stopping waits for the environments' processes to end.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Every function's pool, started with the stack. They stop after the
/// stack's own tasks, so the `$disconnect` of connections open at
/// shutdown still runs through the bootstraps.
pub struct Bootstraps {
    pub pools: Vec<Arc<FunctionPool>>,
    shutdown: CancellationToken,
    /// With `--lambda-call-log`: where the functions' calls are recorded
    /// (the @connections API records there too).
    pub call_log: Option<Arc<call_log::CallLog>>,
}

impl Bootstraps {
    /// Finds the binaries, stores the token key in Secrets Manager (as the
    /// template does), and builds each function's pool; environments
    /// start at their first invocation.
    pub async fn prepare(
        dir: &Path,
        config: &crate::config::StackConfig,
        aws: &crate::backend::AwsResources,
        management_endpoint: String,
        output: Arc<Output>,
    ) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        use anyhow::Context;

        let secret = config
            .jwt_secret
            .clone()
            .unwrap_or_else(|| fanout_core::token::DEV_JWT_SECRET.to_string());
        let secret_name = format!("{}fanout-jwt-secret", config.resource_prefix);
        let jwt_secret_arn = store_secret(&aws.sdk, &secret_name, &secret)
            .await
            .with_context(|| format!("--lambdas: storing the token key as secret {secret_name}"))?;
        let region = aws
            .sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        let call_log = match &config.lambda_call_log {
            Some(path) => Some(Arc::new(
                open_call_log(path, config, aws, &region, &jwt_secret_arn).await?,
            )),
            None => None,
        };
        let endpoint_url = match (&call_log, &config.endpoint_url) {
            (Some(log), Some(upstream)) => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                Some(forwarder::spawn(
                    listener,
                    upstream,
                    log.clone(),
                    shutdown.clone(),
                )?)
            }
            (Some(_), None) => {
                anyhow::bail!(
                    "--lambda-call-log needs --endpoint-url (the calls are forwarded to it)"
                )
            }
            (None, endpoint) => endpoint.clone(),
        };
        let mut credentials = function_credentials(config, aws, call_log.as_deref()).await?;
        let wiring = environment::Wiring {
            table: aws.table.clone(),
            event_bus: aws.event_bus.clone(),
            management_endpoint,
            deliver_queue_url: aws.deliver_queue_url.clone(),
            deliver_dlq_url: aws.deliver_dlq_url.clone(),
            plan_dlq_url: aws.plan_dlq_url.clone(),
            jwt_secret_arn,
            development_secret: secret == fanout_core::token::DEV_JWT_SECRET,
            region: region.clone(),
            endpoint_url,
            prefix: config.resource_prefix.clone(),
            log_level: config.lambda_log_level.clone(),
        };
        let mut pools = Vec::new();
        for function in FUNCTIONS {
            let (timeout, max_environments) = match function {
                "planner" => (config.planner_timeout, config.planner_concurrency),
                "broadcaster" => (
                    config.broadcaster_timeout,
                    config.budget.broadcaster_concurrency,
                ),
                "sweeper" => (config.sweeper_timeout, 1),
                _ => (
                    environment::GATEWAY_FUNCTION_TIMEOUT,
                    config.lambda_environments,
                ),
            };
            let name = environment::function_name(&wiring, function);
            let mut environment =
                environment::environment(function, config, &wiring).map_err(anyhow::Error::msg)?;
            environment.extend(credentials.remove(function).unwrap_or_default());
            let spec = FunctionSpec {
                function,
                binary: locate(dir, function).map_err(anyhow::Error::msg)?,
                arn: format!("arn:aws:lambda:{region}:123456789012:function:{name}"),
                environment,
                timeout,
                max_environments,
            };
            pools.push(FunctionPool::new(spec, output.clone(), shutdown.clone()));
        }
        Ok(Self {
            pools,
            shutdown,
            call_log,
        })
    }

    /// Stops every environment (waiting up to 5 s for their processes)
    /// and logs the init times.
    pub async fn stop(&self) {
        if self.shutdown.is_cancelled() {
            return;
        }
        self.shutdown.cancel();
        let started = tokio::time::Instant::now();
        while self.pools.iter().any(|p| p.live() > 0) && started.elapsed() < STOP_WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for pool in &self.pools {
            pool.fail_waiting();
        }
        self.report();
    }

    pub fn pool(&self, function: &str) -> Arc<FunctionPool> {
        self.pools
            .iter()
            .find(|p| p.spec.function == function)
            .cloned()
            .expect("every function has a pool")
    }

    /// Logs each function's environments and init times (at shutdown).
    fn report(&self) {
        for pool in &self.pools {
            let mut times = pool.init_times();
            if times.is_empty() && pool.init_errors() == 0 {
                continue;
            }
            times.sort();
            let median = times.get(times.len() / 2).copied().unwrap_or_default();
            let max = times.last().copied().unwrap_or_default();
            tracing::info!(
                function = pool.spec.function,
                environments = times.len(),
                init_errors = pool.init_errors(),
                init_median = ?median,
                init_max = ?max,
                "bootstrap init times (process start to first /next)"
            );
        }
    }
}

/// The credentials each function gets, as the variables Lambda sets: its
/// own role's with `--lambda-roles` (each key registered with the call
/// log), otherwise the stack's own.
async fn function_credentials(
    config: &crate::config::StackConfig,
    aws: &crate::backend::AwsResources,
    log: Option<&call_log::CallLog>,
) -> anyhow::Result<BTreeMap<&'static str, Vec<(String, String)>>> {
    let Some(path) = &config.lambda_roles else {
        let stack = stack_credentials(&aws.sdk).await?;
        return Ok(FUNCTIONS.iter().map(|f| (*f, stack.clone())).collect());
    };
    let roles = roles::read(path, &FUNCTIONS)?;
    let sts = aws_sdk_sts::Client::new(&aws.sdk);
    let mut credentials = BTreeMap::new();
    for function in FUNCTIONS {
        let assumed = roles::assume(&sts, function, &roles[function]).await?;
        if let Some(log) = log {
            log.register(&assumed.access_key_id, function);
        }
        credentials.insert(function, assumed.variables);
    }
    Ok(credentials)
}

/// The stack's own credentials, as variables.
async fn stack_credentials(sdk: &aws_config::SdkConfig) -> anyhow::Result<Vec<(String, String)>> {
    use anyhow::Context;
    use aws_credential_types::provider::ProvideCredentials;
    let mut credentials = Vec::new();
    if let Some(provider) = sdk.credentials_provider() {
        let found = provider
            .provide_credentials()
            .await
            .context("--lambdas: the stack's AWS credentials, which the functions get")?;
        credentials.push(("AWS_ACCESS_KEY_ID".into(), found.access_key_id().into()));
        credentials.push((
            "AWS_SECRET_ACCESS_KEY".into(),
            found.secret_access_key().into(),
        ));
        if let Some(token) = found.session_token() {
            credentials.push(("AWS_SESSION_TOKEN".into(), token.into()));
        }
    }
    Ok(credentials)
}

/// Opens the call log with this stack's resources under the template's
/// logical ids (the account from `sts:GetCallerIdentity`).
async fn open_call_log(
    path: &Path,
    config: &crate::config::StackConfig,
    aws: &crate::backend::AwsResources,
    region: &str,
    jwt_secret_arn: &str,
) -> anyhow::Result<call_log::CallLog> {
    use anyhow::Context;
    let identity = aws_sdk_sts::Client::new(&aws.sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(fanout_aws::describe(&e)))
        .context("--lambda-call-log: the account, from sts:GetCallerIdentity")?;
    let account = identity.account.unwrap_or_else(|| "123456789012".into());
    let mut resources = call_log::StackResources::new(&account, region);
    resources.table("Table", &aws.table);
    resources.bus("EventBus", &aws.event_bus);
    for (logical, url) in [
        ("PlanQueue", &aws.plan_queue_url),
        ("PlanDeadLetterQueue", &aws.plan_dlq_url),
        ("DeliverQueue", &aws.deliver_queue_url),
        ("DeliverDeadLetterQueue", &aws.deliver_dlq_url),
        ("SweeperDeadLetterQueue", &aws.sweeper_dlq_url),
        ("BusDeadLetterQueue", &aws.bus_dlq_url),
    ] {
        resources.queue(logical, url);
    }
    resources.reference("JwtSecret", jwt_secret_arn);
    resources.reference("WebSocketApi", LOCAL_API_ID);
    resources
        .parameters
        .insert("StageName".into(), config.stage.clone());
    call_log::CallLog::create(path, resources)
        .with_context(|| format!("--lambda-call-log {}", path.display()))
}

/// The API id this stack's @connections resources are named with.
pub const LOCAL_API_ID: &str = "local";

/// Creates (or updates) the secret holding the token key; its ARN.
async fn store_secret(
    sdk: &aws_config::SdkConfig,
    name: &str,
    value: &str,
) -> anyhow::Result<String> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    match client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
    {
        Ok(created) => created
            .arn
            .ok_or_else(|| anyhow::anyhow!("CreateSecret returned no ARN")),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_exists_exception()) =>
        {
            let updated = client
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!(fanout_aws::describe(&e)))?;
            updated
                .arn
                .ok_or_else(|| anyhow::anyhow!("PutSecretValue returned no ARN"))
        }
        Err(error) => Err(anyhow::anyhow!(fanout_aws::describe(&error))),
    }
}
