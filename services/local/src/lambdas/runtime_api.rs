//! One execution environment: a bootstrap process and the Lambda Runtime
//! API it polls (`/2018-06-01/runtime/...`), served on a loopback port of
//! its own so the stack knows which process holds which invocation.
//!
//! As Lambda does: `/invocation/next` blocks until an invocation comes and
//! hands it out with its request id, deadline and function ARN; the
//! response or error settles it; an invocation still open at its deadline
//! stops the process (and times out); a process that exits during an
//! invocation fails it; a process that exits before its first `/next` is
//! an init error (reported through `/init/error` or not), which the
//! invocation that started it gets.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{FunctionPool, InvokeError};

/// Lambda's payload limit for synchronous invocations and responses.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Lines of a failed init's output kept for its report.
const INIT_OUTPUT_LINES: usize = 20;

/// An invocation waiting for an environment.
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub timeout: Duration,
    pub reply: oneshot::Sender<Result<Bytes, InvokeError>>,
}

/// The invocation an environment is running.
struct Running {
    request_id: String,
    reply: oneshot::Sender<Result<Bytes, InvokeError>>,
}

struct Environment {
    pool: Arc<FunctionPool>,
    name: String,
    started: Instant,
    /// Set at the first `/next`: the init time.
    initialized: std::sync::OnceLock<Duration>,
    running: std::sync::Mutex<Option<Running>>,
    /// The running invocation's deadline, which the supervisor watches.
    deadline: watch::Sender<Option<Instant>>,
    init_error: std::sync::Mutex<Option<String>>,
    /// The process's last lines, for an init error's report.
    last_lines: std::sync::Mutex<std::collections::VecDeque<String>>,
    /// Fires when the process has ended: a waiting `/next` gives up.
    ended: CancellationToken,
}

impl Environment {
    fn settle(&self, request_id: Option<&str>, result: Result<Bytes, InvokeError>) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if request_id.is_some_and(|id| running.as_ref().is_none_or(|r| r.request_id != id)) {
            return false;
        }
        let Some(invocation) = running.take() else {
            return false;
        };
        self.deadline.send_replace(None);
        // The invoker may have given up (its own deadline); nothing waits.
        let _ = invocation.reply.send(result);
        true
    }

    fn remember(&self, line: &str) {
        let mut lines = self.last_lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == INIT_OUTPUT_LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
    }
}

/// Starts one environment of `pool`'s function; it runs until its process
/// ends (crash, timeout, init error) or the stack stops.
pub async fn run(pool: Arc<FunctionPool>, index: usize) {
    let name = format!("{}[{index}]", pool.spec.function);
    let (deadline, mut deadline_changes) = watch::channel(None);
    let env = Arc::new(Environment {
        pool: pool.clone(),
        name: name.clone(),
        started: Instant::now(),
        initialized: Default::default(),
        running: Default::default(),
        deadline,
        init_error: Default::default(),
        last_lines: Default::default(),
        ended: CancellationToken::new(),
    });
    let outcome = match start(&env).await {
        Ok(mut child) => supervise(&env, &mut child, &mut deadline_changes).await,
        Err(error) => Ending::Exited(format!(
            "could not start {}: {error}",
            pool.spec.binary.display()
        )),
    };
    env.ended.cancel();
    finish(&env, outcome);
}

/// Serves the Runtime API on a loopback port and starts the process.
async fn start(env: &Arc<Environment>) -> std::io::Result<Child> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?;
    let routes = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
        .with_state(env.clone());
    let ended = env.ended.clone();
    tokio::spawn(async move {
        let served = axum::serve(listener, routes)
            .with_graceful_shutdown(async move { ended.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "a Runtime API server failed");
        }
    });
    let spec = &env.pool.spec;
    let mut child = Command::new(&spec.binary)
        .env_clear()
        .envs(spec.environment.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("local/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward(env.clone(), stdout, Stream::Stdout));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward(env.clone(), stderr, Stream::Stderr));
    }
    Ok(child)
}

enum Stream {
    Stdout,
    Stderr,
}

/// The process's output: EMF lines (stdout) become the stack's metrics as
/// CloudWatch would read them; every other line is printed with the
/// environment's name, as CloudWatch Logs would keep it.
async fn forward(env: Arc<Environment>, output: impl tokio::io::AsyncRead + Unpin, stream: Stream) {
    let mut lines = BufReader::new(output).lines();
    let lambda_level = env
        .pool
        .spec
        .environment
        .iter()
        .find(|(k, _)| k == "AWS_LAMBDA_LOG_LEVEL")
        .map(|(_, v)| v.clone());
    while let Ok(Some(line)) = lines.next_line().await {
        // What Lambda's filter drops never reaches CloudWatch: no log
        // line, no metric.
        if !super::log_filter::lambda_keeps(lambda_level.as_deref(), &line) {
            continue;
        }
        if matches!(stream, Stream::Stdout) && env.pool.output.metric_line(&line) {
            continue;
        }
        if env.initialized.get().is_none() {
            env.remember(&line);
        }
        env.pool.output.log_line(&env.name, &line);
    }
}

enum Ending {
    /// The process exited (or could not start): why.
    Exited(String),
    TimedOut(Duration),
    Stopped,
}

async fn supervise(
    env: &Environment,
    child: &mut Child,
    deadline_changes: &mut watch::Receiver<Option<Instant>>,
) -> Ending {
    loop {
        let deadline = *deadline_changes.borrow_and_update();
        let timeout = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => {
                return Ending::Exited(match status {
                    Ok(status) => format!("Runtime exited with {status}"),
                    Err(error) => format!("could not wait for the process: {error}"),
                });
            }
            _ = timeout => {
                let _ = child.kill().await;
                return Ending::TimedOut(env.pool.spec.timeout);
            }
            _ = env.pool.shutdown.cancelled() => {
                let _ = child.kill().await;
                return Ending::Stopped;
            }
            _ = deadline_changes.changed() => {}
        }
    }
}

/// Settles what the ended process leaves behind, and starts another
/// environment when invocations still wait for one.
fn finish(env: &Environment, ending: Ending) {
    let pool = &env.pool;
    let function = pool.spec.function;
    let error = match &ending {
        Ending::Exited(why) => InvokeError::Crashed(why.clone()),
        Ending::TimedOut(after) => InvokeError::TimedOut(*after),
        Ending::Stopped => InvokeError::Stopped,
    };
    if env.settle(None, Err(error.clone())) {
        tracing::error!(function, environment = %env.name, %error, "the invocation failed; the environment is gone");
    } else if env.initialized.get().is_none() && !matches!(ending, Ending::Stopped) {
        let reported = env
            .init_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let output: Vec<String> = env
            .last_lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        let why = match reported {
            Some(reported) => format!("{reported} ({error})"),
            None => error.to_string(),
        };
        tracing::error!(function, environment = %env.name, error = %why, output = %output.join("\n"),
            "init error: the function could not start");
        pool.init_errors.fetch_add(1, Ordering::Relaxed);
        // The invocation that started this environment gets the init
        // error, as Lambda returns it to the caller.
        pool.fail_one_waiting(InvokeError::Init(why));
    }
    pool.environment_ended();
}

/// `GET /invocation/next`: the next invocation, when there is one.
async fn next(State(env): State<Arc<Environment>>) -> Response {
    let pool = &env.pool;
    if env.initialized.get().is_none() {
        let init = env.started.elapsed();
        if env.initialized.set(init).is_ok() {
            pool.record_init(init);
            tracing::debug!(function = pool.spec.function, environment = %env.name, ?init, "initialized");
        }
    }
    let Some(invocation) = pool.take(&env.ended).await else {
        return (StatusCode::GONE, "the environment is stopping").into_response();
    };
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        + invocation.timeout.as_millis() as u64;
    let mut headers = HeaderMap::new();
    let header = |v: &str| {
        v.parse()
            .expect("request ids, ARNs and numbers are valid header values")
    };
    headers.insert(
        "lambda-runtime-aws-request-id",
        header(&invocation.request_id),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        header(&deadline_ms.to_string()),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header(&pool.spec.arn),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        header(&format!(
            "Root=1-{:08x}-{};Sampled=0",
            deadline_ms / 1000,
            &uuid::Uuid::new_v4().simple().to_string()[..24]
        )),
    );
    headers.insert("content-type", header("application/json"));
    *env.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running {
        request_id: invocation.request_id,
        reply: invocation.reply,
    });
    env.deadline
        .send_replace(Some(Instant::now() + invocation.timeout));
    (StatusCode::OK, headers, invocation.payload).into_response()
}

fn invalid_request_id() -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})),
    )
        .into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

/// `POST /invocation/{id}/response`.
async fn response(
    State(env): State<Arc<Environment>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if env.settle(Some(&id), Ok(body)) {
        accepted()
    } else {
        invalid_request_id()
    }
}

/// `POST /invocation/{id}/error`: the function's error (`errorType`,
/// `errorMessage`), as Lambda returns it to the caller.
async fn error(
    State(env): State<Arc<Environment>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let error_type = parsed["errorType"]
        .as_str()
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")?
                .to_str()
                .ok()
        })
        .unwrap_or("Unhandled")
        .to_string();
    let message = parsed["errorMessage"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    if env.settle(
        Some(&id),
        Err(InvokeError::Function {
            error_type,
            message,
        }),
    ) {
        accepted()
    } else {
        invalid_request_id()
    }
}

/// `POST /init/error`: kept for the init error's report (the process
/// exits next).
async fn init_error(State(env): State<Arc<Environment>>, body: Bytes) -> Response {
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = format!(
        "{}: {}",
        parsed["errorType"].as_str().unwrap_or("Runtime.InitError"),
        parsed["errorMessage"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned())
    );
    *env.init_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    accepted()
}
