//! The Lambda Runtime API the stack serves its bootstraps (`--lambdas`),
//! driven by a stand-in bootstrap (`fixtures/fake_bootstrap.py`, a Python
//! runtime loop) so each way an invocation can end is exercised: a
//! response, an error response, a crash, a timeout, and an init error.
//! The real bootstraps run the end-to-end suites in this mode from
//! `./scripts/test.sh`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fanout_core::metrics::MetricTotals;
use fanout_local::lambdas::{FunctionPool, FunctionSpec, InvokeError, Output};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn fake_bootstrap() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_bootstrap.py")
}

fn pool(extra_env: &[(&str, &str)], timeout: Duration) -> (Arc<FunctionPool>, CancellationToken) {
    let mut environment = vec![
        (
            "AWS_LAMBDA_FUNCTION_NAME".to_string(),
            "test-fanout-fake".to_string(),
        ),
        // The script's interpreter is found on PATH, as Lambda sets one.
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        ),
    ];
    environment.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let shutdown = CancellationToken::new();
    let spec = FunctionSpec {
        function: "fake",
        binary: fake_bootstrap(),
        arn: "arn:aws:lambda:us-east-1:123456789012:function:test-fanout-fake".into(),
        environment,
        timeout,
        max_environments: 2,
    };
    let output = Arc::new(Output {
        metrics: MetricTotals::new(),
    });
    (FunctionPool::new(spec, output, shutdown.clone()), shutdown)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits until an environment is back in `/next`. An invocation sent
/// while the only environment is still returning from the last one would
/// start a second, as Lambda does, and these tests mean the warm one.
async fn until_idle(pool: &FunctionPool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pool.idle_environments() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no environment came back to /next within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_invocation_gets_its_request_id_deadline_and_arn_and_the_response_comes_back() {
    let (pool, shutdown) = pool(&[], Duration::from_secs(20));
    let before = now_ms();
    let answer: Value = pool.invoke(&json!({"mode": "ok"})).await.unwrap();
    assert_eq!(answer["function"], "test-fanout-fake");
    assert_eq!(answer["arn"], pool.spec.arn);
    assert_eq!(answer["requestId"].as_str().unwrap().len(), 36);
    let deadline = answer["deadlineMs"].as_u64().unwrap();
    assert!(
        deadline >= before + 20_000 && deadline <= now_ms() + 20_000,
        "deadline {deadline} is the invocation's start plus the timeout"
    );
    // Warm: the same environment answers the next one.
    until_idle(&pool).await;
    let again: Value = pool.invoke(&json!({"mode": "ok"})).await.unwrap();
    assert_eq!(again["pid"], answer["pid"]);
    assert_ne!(again["requestId"], answer["requestId"]);
    assert_eq!(pool.init_times().len(), 1);
    shutdown.cancel();
}

#[tokio::test]
async fn an_error_response_reaches_the_caller_and_the_environment_stays() {
    let (pool, shutdown) = pool(&[], Duration::from_secs(20));
    let first: Value = pool.invoke(&json!({"mode": "ok"})).await.unwrap();
    until_idle(&pool).await;
    match pool.invoke::<Value>(&json!({"mode": "error"})).await {
        Err(InvokeError::Function {
            error_type,
            message,
        }) => {
            assert_eq!(error_type, "Boom");
            assert_eq!(message, "bad input");
        }
        other => panic!("expected the function's error, got {other:?}"),
    }
    until_idle(&pool).await;
    let after: Value = pool.invoke(&json!({"mode": "ok"})).await.unwrap();
    assert_eq!(after["pid"], first["pid"]);
    shutdown.cancel();
}

#[tokio::test]
async fn a_crash_fails_its_invocation_and_the_next_one_gets_a_new_environment() {
    let (pool, shutdown) = pool(&[], Duration::from_secs(20));
    let first: Value = pool.invoke(&json!({"mode": "ok"})).await.unwrap();
    // The crash must reach the first environment, not a second one
    // started because the first had not asked for more yet.
    until_idle(&pool).await;
    match pool.invoke::<Value>(&json!({"mode": "crash"})).await {
        Err(InvokeError::Crashed(why)) => assert!(why.contains("exit status: 1"), "{why}"),
        other => panic!("expected a crash, got {other:?}"),
    }
    let after: Value = pool.invoke(&json!({"mode": "ok"})).await.unwrap();
    assert_ne!(after["pid"], first["pid"], "a new execution environment");
    assert_eq!(pool.init_times().len(), 2, "a second cold start");
    shutdown.cancel();
}

#[tokio::test]
async fn an_invocation_past_its_deadline_times_out_and_its_process_is_stopped() {
    let (pool, shutdown) = pool(&[], Duration::from_secs(1));
    let started = std::time::Instant::now();
    match pool.invoke::<Value>(&json!({"mode": "hang"})).await {
        Err(InvokeError::TimedOut(after)) => assert_eq!(after, Duration::from_secs(1)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let after: Value = pool.invoke(&json!({"mode": "ok"})).await.unwrap();
    assert!(after["pid"].is_number());
    assert_eq!(pool.init_times().len(), 2);
    shutdown.cancel();
}

#[tokio::test]
async fn an_init_error_is_reported_to_the_invocation_that_started_the_environment() {
    let (pool, shutdown) = pool(&[("FAKE_INIT", "fail")], Duration::from_secs(20));
    match pool.invoke::<Value>(&json!({"mode": "ok"})).await {
        Err(InvokeError::Init(why)) => {
            assert!(why.contains("FANOUT_TABLE is not set"), "{why}");
            assert!(why.contains("Runtime.ExitError"), "{why}");
        }
        other => panic!("expected an init error, got {other:?}"),
    }
    assert_eq!(pool.init_errors(), 1);
    assert!(pool.init_times().is_empty());
    // Every invocation tries a new environment, as Lambda does.
    assert!(matches!(
        pool.invoke::<Value>(&json!({"mode": "ok"})).await,
        Err(InvokeError::Init(_))
    ));
    assert_eq!(pool.init_errors(), 2);
    shutdown.cancel();
}

#[tokio::test]
async fn a_missing_bootstrap_is_an_error_that_says_how_to_build_it() {
    let dir = std::env::temp_dir().join(format!("no-bootstraps-{}", std::process::id()));
    let error = fanout_local::lambdas::locate(&dir, "connect").unwrap_err();
    assert!(error.contains("fanout-connect/bootstrap"), "{error}");
    assert!(error.contains("cargo build --bins"), "{error}");
}
