//! `fanout dlq list/show/redrive` with the real binary, against the local
//! stack's SQS-compatible endpoint and against moto's server (the AWS SQS
//! API) — the same commands on-call runs against AWS.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use fanout_aws::provision;
use fanout_core::ports::{OutgoingMessage, Queue};
use fanout_local::StackConfig;
use tokio::net::TcpListener;

mod common;

fn fanout(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run fanout");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`fanout`] from async code, on a blocking thread.
async fn fanout_off_thread(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fanout(&args)
    })
    .await
    .unwrap()
}

/// A delivery job the broadcaster gave up on, as it writes them.
const DEAD_JOB: &str = r#"{"eventId":"ev-42","attempt":5,"deadLetter":{"reason":"retries_exhausted","code":"throttled","detail":"throttled (429): LimitExceededException","attempts":5,"at":"2026-11-22T09:00:00.000Z"},"connections":["c1=","c2="],"frame":{"type":"message","id":"ev-42","data":{}}}"#;

/// The three commands on a dead-letter queue holding [`DEAD_JOB`], whose
/// source queue is `source`; the redrive's progress lines say `redrive_by`.
fn exercise(endpoint: &str, prefix: &str, dlq: &str, source: &str, redrive_by: &str) {
    let (ok, out, err) = fanout(&["dlq", "--endpoint", endpoint, "list", "--prefix", prefix]);
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(dlq))
        .unwrap_or_else(|| panic!("{dlq} not listed:\n{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "1", "one message: {row}");
    assert_eq!(cells.last(), Some(&source), "{row}");

    let (ok, out, err) = fanout(&["dlq", "--endpoint", endpoint, "show", dlq, "-n", "5"]);
    assert!(ok, "{err}");
    assert!(out.contains("event      ev-42"), "{out}");
    assert!(out.contains("retries_exhausted (throttled)"), "{out}");
    assert!(out.contains("attempts   5"), "{out}");
    assert!(out.contains("2 connection(s): c1=, c2="), "{out}");
    assert!(out.contains("none was deleted"), "{out}");
    assert!(out.contains("receive count went up by one"), "{out}");

    // Showing deleted nothing: still there.
    let (_, out, _) = fanout(&["dlq", "--endpoint", endpoint, "list", "--prefix", prefix]);
    assert!(
        out.lines()
            .any(|l| l.starts_with(dlq) && l.split_whitespace().nth(1) == Some("1")),
        "{out}"
    );

    let (ok, out, err) = fanout(&[
        "dlq",
        "--endpoint",
        endpoint,
        "redrive",
        dlq,
        "--rate",
        "10",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("redrove 1 message(s) from {dlq} to {source}")),
        "{out}"
    );
    assert!(err.contains(redrive_by), "{err}");

    let (ok, _, err) = fanout(&["dlq", "--endpoint", endpoint, "redrive", "no-such-queue"]);
    assert!(!ok);
    assert!(err.contains("no-such-queue"), "{err}");
}

/// The local stack on port 0, with [`DEAD_JOB`] in its deliver DLQ.
async fn local_stack_with_a_dead_job() -> (fanout_local::RunningStack, Arc<dyn Queue>) {
    let config = <StackConfig as clap::Parser>::parse_from(["fanout-local", "--port", "0"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stack = fanout_local::start(config, listener).await.unwrap();
    let dlq = stack.resources.deliver_dlq.clone();
    dlq.send_batch(&[OutgoingMessage::new("0", DEAD_JOB)])
        .await
        .unwrap();
    (stack, dlq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_local_stack() {
    let (stack, dlq) = local_stack_with_a_dead_job().await;
    let endpoint = stack.http_url();
    tokio::task::spawn_blocking(move || {
        // The stack's endpoint runs SQS's own move tasks.
        exercise(
            &endpoint,
            "fanout",
            "fanout-deliver-dlq",
            "fanout-deliver",
            "move task started",
        )
    })
    .await
    .unwrap();
    assert_eq!(dlq.depth().await.unwrap().total(), 0);

    let endpoint = stack.http_url();
    // A longer redrive reports its progress and moves everything.
    let many: Vec<OutgoingMessage> = (0..10)
        .map(|i| OutgoingMessage::new(i.to_string(), DEAD_JOB))
        .collect();
    for _ in 0..3 {
        dlq.send_batch(&many).await.unwrap();
    }
    let (ok, out, err) = fanout_off_thread(&[
        "dlq",
        "--endpoint",
        &endpoint,
        "redrive",
        "fanout-deliver-dlq",
        "--rate",
        "20",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("redrove 30 message(s)"), "{out}");
    assert!(
        err.contains("RUNNING: moved"),
        "progress while it runs: {err}"
    );
    assert_eq!(dlq.depth().await.unwrap().total(), 0);

    // --max moves batch by batch: a move task cannot stop early.
    dlq.send_batch(&many[..3]).await.unwrap();
    let (ok, out, err) = fanout_off_thread(&[
        "dlq",
        "--endpoint",
        &endpoint,
        "redrive",
        "fanout-deliver-dlq",
        "--max",
        "2",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("redrove 2 message(s)"), "{out}");
    assert!(err.contains("--max given"), "{err}");
    assert_eq!(dlq.depth().await.unwrap().total(), 1);

    // The bus's dead-letter queue is no queue's: SQS refuses a move task
    // for it, and the command moves it batch by batch to --to.
    stack
        .resources
        .bus_dlq
        .send_batch(&[OutgoingMessage::new("0", DEAD_JOB)])
        .await
        .unwrap();
    let (ok, out, err) = fanout_off_thread(&[
        "dlq",
        "--endpoint",
        &endpoint,
        "redrive",
        "fanout-bus-dlq",
        "--to",
        "fanout-deliver-dlq",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("redrove 1 message(s) from fanout-bus-dlq to fanout-deliver-dlq"),
        "{out}"
    );
    assert!(
        err.contains("Source queue must be configured as a Dead Letter Queue"),
        "{err}"
    );
    let (ok, out, _) =
        fanout_off_thread(&["dlq", "--endpoint", &endpoint, "redrive", "fanout-bus-dlq"]).await;
    assert!(
        !ok,
        "the bus DLQ has no source queue: --to is required\n{out}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_moto() {
    let Some(endpoint) = common::moto_endpoint() else {
        return;
    };
    let config = common::moto_config(&endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let prefix = format!("cli{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let dlq_name = format!("{prefix}-deliver-dlq");
    let source_name = format!("{prefix}-deliver");
    let dlq = Arc::new(
        provision::queue(&sqs, &dlq_name, Duration::from_secs(30), None)
            .await
            .unwrap(),
    );
    provision::queue(&sqs, &source_name, Duration::from_secs(30), Some((&dlq, 5)))
        .await
        .unwrap();
    dlq.send_batch(&[OutgoingMessage::new("0", DEAD_JOB)])
        .await
        .unwrap();
    // moto does not serve StartMessageMoveTask: the command falls back.
    tokio::task::spawn_blocking(move || {
        exercise(
            &endpoint,
            &prefix,
            &dlq_name,
            &source_name,
            "StartMessageMoveTask is not available",
        )
    })
    .await
    .unwrap();
    assert_eq!(dlq.depth().await.unwrap().total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_does_not_call_a_queue_empty_while_its_messages_are_in_flight() {
    let (stack, dlq) = local_stack_with_a_dead_job().await;
    // Someone else is looking at it.
    let taken = dlq
        .receive(1, Duration::ZERO, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let endpoint = stack.http_url();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        fanout(&["dlq", "--endpoint", &endpoint, "show", "fanout-deliver-dlq"])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(!out.contains("is empty"), "{out}");
    assert!(out.contains("1 in flight"), "{out}");
    stack.stop().await;
}
