//! Metrics from the planner and broadcaster as CloudWatch Embedded Metric
//! Format (EMF) lines: one JSON object per line, which the binaries write
//! to stdout, Lambda forwards to CloudWatch Logs and CloudWatch turns into
//! metrics with no API calls. The local stack also keeps running totals for its summary
//! and its tests.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// Every function: one per execution environment, at its start.
pub const COLD_START: &str = "ColdStart";

// Broadcaster.
pub const DELIVERED: &str = "Delivered";
pub const GONE: &str = "Gone";
pub const THROTTLED: &str = "Throttled";
pub const RETRIED: &str = "Retried";
pub const FAILED: &str = "Failed";
pub const MISCONFIGURED: &str = "Misconfigured";
pub const REQUEUED: &str = "Requeued";
pub const DEAD_LETTERED: &str = "DeadLettered";
pub const PUBLISH_TO_POST_LATENCY: &str = "PublishToPostLatency";
// Planner.
pub const PLANNED_CONNECTIONS: &str = "PlannedConnections";
pub const JOBS: &str = "Jobs";
pub const DUPLICATE_EVENTS: &str = "DuplicateEvents";
pub const DIRECT_DELIVERIES: &str = "DirectDeliveries";
/// Targets that named another tenant's connections (dropped, never delivered).
pub const CROSS_TENANT_TARGETS: &str = "CrossTenantTargets";
/// Broadcasts refused for their `Source` (reserved, or not speaking for the
/// event's tenant).
pub const REFUSED_SOURCES: &str = "RefusedSources";
/// Events stored in a room's stream (numbered).
pub const STREAMED_EVENTS: &str = "StreamedEvents";
/// Updates and deletes refused: their message is not in the stream, or
/// the room is not streamed (never delivered).
pub const REFUSED_EDITS: &str = "RefusedEdits";
/// Signals dropped because a later one from the same sender to the same
/// room was in the same batch.
pub const COALESCED_SIGNALS: &str = "CoalescedSignals";

/// Every metric name, for reading EMF lines back ([`parse_emf_line`]).
pub const ALL: [&str; 19] = [
    COLD_START,
    DELIVERED,
    GONE,
    THROTTLED,
    RETRIED,
    FAILED,
    MISCONFIGURED,
    REQUEUED,
    DEAD_LETTERED,
    PUBLISH_TO_POST_LATENCY,
    PLANNED_CONNECTIONS,
    JOBS,
    DUPLICATE_EVENTS,
    DIRECT_DELIVERIES,
    CROSS_TENANT_TARGETS,
    REFUSED_SOURCES,
    STREAMED_EVENTS,
    REFUSED_EDITS,
    COALESCED_SIGNALS,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
    pub unit: Unit,
}

impl Metric {
    pub fn count(name: &'static str, value: usize) -> Self {
        Self {
            name,
            value: value as f64,
            unit: Unit::Count,
        }
    }

    pub fn millis(name: &'static str, value: i64) -> Self {
        Self {
            name,
            value: value.max(0) as f64,
            unit: Unit::Milliseconds,
        }
    }
}

/// Where handlers send their metrics.
pub trait MetricsSink: Send + Sync {
    /// Records `metrics` for one unit of work of `function` on `event_id`.
    fn record(&self, function: &str, event_id: &str, metrics: &[Metric]);
}

/// Where metrics go: the namespace and the `Service` dimension
/// (`fanout_core::settings::MetricsSettings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsTarget {
    pub namespace: String,
    pub service: String,
}

impl From<&crate::settings::MetricsSettings> for MetricsTarget {
    fn from(settings: &crate::settings::MetricsSettings) -> Self {
        Self {
            namespace: settings.metrics_namespace.clone(),
            service: settings.service_name.clone(),
        }
    }
}

/// One EMF line (without the newline): dimensions `Service` and
/// `Function`, the event id as a searchable property, and each metric as a
/// top-level member.
pub fn emf_line(
    target: &MetricsTarget,
    function: &str,
    event_id: &str,
    timestamp_ms: i64,
    metrics: &[Metric],
) -> String {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
        .collect();
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": target.namespace,
                "Dimensions": [["Service", "Function"]],
                "Metrics": definitions,
            }],
        }),
    );
    line.insert("Service".into(), target.service.clone().into());
    line.insert("Function".into(), function.into());
    line.insert("eventId".into(), event_id.into());
    for m in metrics {
        line.insert(m.name.into(), json!(m.value));
    }
    Value::Object(line).to_string()
}

/// One EMF line read back: what CloudWatch would make of it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmfRecord {
    pub function: String,
    pub event_id: String,
    pub metrics: Vec<Metric>,
}

/// Reads a line [`emf_line`] wrote (the local stack does, from the
/// bootstraps' stdout); `None` for any other line. Metrics of unknown
/// names are left out.
pub fn parse_emf_line(line: &str) -> Option<EmfRecord> {
    let value: Value = serde_json::from_str(line.trim()).ok()?;
    let directive = value.get("_aws")?.get("CloudWatchMetrics")?.get(0)?;
    let metrics = directive
        .get("Metrics")?
        .as_array()?
        .iter()
        .filter_map(|definition| {
            let name = ALL
                .into_iter()
                .find(|n| Some(*n) == definition["Name"].as_str())?;
            let unit = match definition["Unit"].as_str()? {
                "Milliseconds" => Unit::Milliseconds,
                _ => Unit::Count,
            };
            Some(Metric {
                name,
                value: value.get(name)?.as_f64()?,
                unit,
            })
        })
        .collect();
    Some(EmfRecord {
        function: value.get("Function")?.as_str()?.to_string(),
        event_id: value
            .get("eventId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        metrics,
    })
}

/// Writes one EMF line per record to `out`. The binaries give it stdout,
/// which Lambda ships to CloudWatch Logs (and the local stack prints with
/// `--emf`); the library itself never writes to stdout.
#[derive(Debug)]
pub struct EmfWriter<W> {
    // std Mutex: held for one write, never across an await; it keeps lines
    // from interleaving.
    out: Mutex<W>,
    target: MetricsTarget,
}

impl<W: Write + Send> EmfWriter<W> {
    pub fn new(out: W, target: MetricsTarget) -> Self {
        Self {
            out: Mutex::new(out),
            target,
        }
    }
}

impl<W: Write + Send> MetricsSink for EmfWriter<W> {
    fn record(&self, function: &str, event_id: &str, metrics: &[Metric]) {
        if metrics.is_empty() {
            return;
        }
        let mut line = emf_line(
            &self.target,
            function,
            event_id,
            chrono::Utc::now().timestamp_millis(),
            metrics,
        );
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A metric line that cannot be written is lost, not fatal.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}

/// Sum, count and maximum of one metric.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Total {
    pub sum: f64,
    pub count: u64,
    pub max: f64,
}

/// Running totals per metric name, across functions.
#[derive(Debug, Default)]
pub struct MetricTotals {
    // std Mutex: updated once per job, never held across an await.
    totals: Mutex<BTreeMap<&'static str, Total>>,
}

impl MetricTotals {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The total of one metric (zero when never recorded).
    pub fn get(&self, name: &str) -> Total {
        self.lock().get(name).copied().unwrap_or_default()
    }

    /// The sum of a counter, as an integer.
    pub fn count(&self, name: &str) -> u64 {
        self.get(name).sum as u64
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, Total> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Total>> {
        self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MetricsSink for MetricTotals {
    fn record(&self, _function: &str, _event_id: &str, metrics: &[Metric]) {
        let mut totals = self.lock();
        for m in metrics {
            let t = totals.entry(m.name).or_default();
            t.sum += m.value;
            t.count += 1;
            t.max = t.max.max(m.value);
        }
    }
}

/// Sends every record to each of several sinks.
pub struct Tee(pub Vec<Arc<dyn MetricsSink>>);

impl MetricsSink for Tee {
    fn record(&self, function: &str, event_id: &str, metrics: &[Metric]) {
        for sink in &self.0 {
            sink.record(function, event_id, metrics);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_reads_back_as_written() {
        let metrics = [
            Metric::count(DELIVERED, 3),
            Metric::millis(PUBLISH_TO_POST_LATENCY, 42),
        ];
        let line = emf_line(&target(), "broadcaster", "e-1", 1_700_000_000_000, &metrics);
        let record = parse_emf_line(&line).unwrap();
        assert_eq!(record.function, "broadcaster");
        assert_eq!(record.event_id, "e-1");
        assert_eq!(record.metrics, metrics);
        assert_eq!(parse_emf_line(r#"{"level":"INFO","message":"hi"}"#), None);
        assert_eq!(parse_emf_line("not json"), None);
    }

    fn target() -> MetricsTarget {
        MetricsTarget {
            namespace: "acme/fanout".into(),
            service: "fanout-staging".into(),
        }
    }

    #[test]
    fn emf_line_declares_every_metric_it_carries_under_its_stacks_namespace_and_service() {
        let line = emf_line(
            &target(),
            "broadcaster",
            "e-1",
            1_700_000_000_000,
            &[
                Metric::count(DELIVERED, 3),
                Metric::millis(PUBLISH_TO_POST_LATENCY, 42),
            ],
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "acme/fanout");
        assert_eq!(directive["Dimensions"], json!([["Service", "Function"]]));
        assert_eq!(v["Service"], "fanout-staging");
        assert_eq!(
            directive["Metrics"],
            json!([{"Name":"Delivered","Unit":"Count"},{"Name":"PublishToPostLatency","Unit":"Milliseconds"}])
        );
        assert_eq!(v["Function"], "broadcaster");
        assert_eq!(v["eventId"], "e-1");
        assert_eq!(v["Delivered"], 3.0);
        assert_eq!(v["PublishToPostLatency"], 42.0);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn totals_sum_count_and_max() {
        let totals = MetricTotals::new();
        totals.record("b", "e1", &[Metric::count(DELIVERED, 2)]);
        totals.record("b", "e2", &[Metric::count(DELIVERED, 5)]);
        assert_eq!(
            totals.get(DELIVERED),
            Total {
                sum: 7.0,
                count: 2,
                max: 5.0
            }
        );
        assert_eq!(totals.count(GONE), 0);
    }
}
