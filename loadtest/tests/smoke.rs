//! The smoke scenario: a few hundred real WebSocket connections on the
//! in-process local stack, a few dozen messages through the whole pipeline
//! (by PutEvents and by client publish). Every expected delivery arrives
//! exactly once. No assertion on time: speed is the benchmarks' business.

use clap::Parser;
use fanout_loadtest::config::Scenario;

async fn smoke(via: &str, extra: &[&str]) {
    let dir = std::env::temp_dir().join(format!(
        "fanout-smoke-{via}-{}-{}",
        extra.len(),
        std::process::id()
    ));
    let report_path = dir.join("report.json");
    let mut args = vec![
        "fanout-loadtest",
        "--connections",
        "300",
        "--rooms",
        "3",
        "--messages",
        "24",
        "--publish-rate",
        "200",
        "--via",
        via,
        "--quiet",
        "--report",
        report_path.to_str().unwrap(),
    ];
    args.extend(extra);
    let scenario = Scenario::parse_from(args);
    let (report, latency) = fanout_loadtest::run(&scenario).await.unwrap();
    assert_eq!(report.connect.succeeded, 300, "{report:?}");
    assert_eq!(report.expected, 300 * 24 / 3);
    assert_eq!(report.deliveries, report.expected, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(report.duplicates, 0, "{report:?}");
    // Streams are on by default: every frame carries its room's seq, and
    // every client can restore a gap-free order from it.
    assert_eq!(report.with_seq, report.deliveries, "{report:?}");
    assert_eq!(report.seq_gaps, 0, "{report:?}");
    let phases: Vec<_> = report.cpu_by_phase.iter().map(|p| p.phase).collect();
    assert_eq!(phases, ["ramp", "publish", "drain", "close"]);
    let generator: f64 = report.cpu_by_phase.iter().map(|p| p.generator).sum();
    assert!(generator > 0.0, "the clients' CPU is counted: {report:?}");
    // Receipts and publishes are timed on one clock: no delivery took
    // longer than the whole run.
    assert!(
        report.latency_ms.max <= report.elapsed_sec * 1000.0,
        "{report:?}"
    );
    let charts = report.write(&report_path, &latency).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    for field in [
        "connections",
        "deliveries",
        "deliveries_per_sec",
        "latency_ms",
        "lost",
        "duplicates",
        "errors",
    ] {
        assert!(!json[field].is_null(), "report field {field}");
    }
    for field in ["p50", "p90", "p99", "p999", "max"] {
        assert!(json["latency_ms"][field].is_number(), "latency_ms.{field}");
    }
    for chart in charts {
        let svg = std::fs::read_to_string(&chart).unwrap();
        assert!(svg.starts_with("<svg"), "{}", chart.display());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_via_events_loses_and_duplicates_nothing() {
    smoke("events", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_via_client_publish_loses_and_duplicates_nothing() {
    smoke("client", &[]).await;
}

/// The clients in two worker processes: their receipts merge with the
/// publisher's times (one clock), and their CPU counts as the generator's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_with_worker_processes_loses_and_duplicates_nothing() {
    let binary = env!("CARGO_BIN_EXE_fanout-loadtest");
    smoke(
        "events",
        &[
            "--workers",
            "2",
            "--worker-binary",
            binary,
            "--ramp-rate",
            "2000",
        ],
    )
    .await;
}
