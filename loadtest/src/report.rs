//! The run's report: a table on stdout, a JSON file, and two SVG charts
//! (the latency distribution and deliveries over time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::config::{Mode, Via};
use crate::cost::Cost;
use crate::measure::Percentiles;

/// CPU seconds of the stack and the generator during one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseCpu {
    pub phase: &'static str,
    pub wall_sec: f64,
    pub stack: f64,
    pub generator: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connect {
    pub succeeded: u64,
    pub failed: u64,
    pub latency_ms: Percentiles,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct QuotaCalls {
    pub accepted: u64,
    pub throttled: u64,
    pub throttled_share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub mode: Mode,
    pub via: Via,
    pub connections: u64,
    pub rooms: u64,
    pub messages: u64,
    pub payload_bytes: u64,
    pub connect: Connect,
    /// Expected (connection, message) pairs.
    pub expected: u64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    pub latency_ms: Percentiles,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Whether messages were stored in their rooms' streams.
    pub streams: bool,
    /// Message frames that carried a room-stream `seq`.
    pub with_seq: u64,
    /// Frames that arrived after a higher `seq` (clients reorder them).
    pub seq_inversions: u64,
    /// `seq`s missing between each client's first and last (0: every
    /// client can restore a gap-free order from `seq` alone).
    pub seq_gaps: u64,
    pub errors: BTreeMap<String, u64>,
    /// CPU seconds of the local stack's threads and the generator's.
    pub cpu_seconds: BTreeMap<String, f64>,
    /// The same, per phase: ramp (connect and join), publish, drain
    /// (waiting for the last deliveries), close (the clients closing; the
    /// stack's `$disconnect` work may go on after it).
    pub cpu_by_phase: Vec<PhaseCpu>,
    /// The stack's CPU while publishing and delivering, per delivery (µs;
    /// when the stack's CPU is known).
    pub stack_cpu_us_per_delivery: Option<f64>,
    /// Resident memory the open connections added to the stack's process
    /// (--stack-pid, or this process), per connection.
    pub memory_per_connection_bytes: Option<u64>,
    /// Whose memory that is: "stack" alone, or "stack and clients" when
    /// both ends were in this process.
    pub memory_of: &'static str,
    pub elapsed_sec: f64,
    pub estimated_aws_cost: Cost,
    /// @connections calls the in-process stack's quota emulation accepted
    /// and refused with 429 (when --stack-arg=--quota-rps is on).
    pub quota: Option<QuotaCalls>,
    /// Presence churn figures (with --presence-churn).
    pub presence: Option<PresenceReport>,
    #[serde(skip)]
    pub deliveries_per_100ms: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PresenceReport {
    pub joins: u64,
    pub leaves: u64,
    pub notices: u64,
    pub expected: u64,
    pub notices_per_sec: f64,
    pub latency_ms: Percentiles,
}

impl Report {
    pub fn print_table(&self) {
        let l = &self.latency_ms;
        println!();
        println!(
            "target                {} ({:?}, via {:?})",
            self.target, self.mode, self.via
        );
        println!(
            "connections           {} ok, {} failed (connect p50 {:.1} ms, p99 {:.1} ms)",
            self.connect.succeeded,
            self.connect.failed,
            self.connect.latency_ms.p50,
            self.connect.latency_ms.p99
        );
        println!("rooms / messages      {} / {}", self.rooms, self.messages);
        println!(
            "deliveries            {} of {} expected",
            self.deliveries, self.expected
        );
        println!("deliveries/s          {:.0}", self.deliveries_per_sec);
        println!(
            "latency (ms)          min {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            l.min, l.p50, l.p90, l.p99, l.p999, l.max
        );
        println!(
            "lost / duplicates     {} / {}  (out of order {})",
            self.lost, self.duplicates, self.out_of_order
        );
        if self.streams {
            println!(
                "stream order          {} frames with seq, {} inversions, {} gaps",
                self.with_seq, self.seq_inversions, self.seq_gaps
            );
        } else {
            println!("stream order          streams off (no seq)");
        }
        if let Some(p) = &self.presence {
            println!(
                "presence              {} joins, {} leaves: {} of {} notices, {:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
                p.joins,
                p.leaves,
                p.notices,
                p.expected,
                p.notices_per_sec,
                p.latency_ms.p50,
                p.latency_ms.p99
            );
        }
        if !self.errors.is_empty() {
            println!("errors                {:?}", self.errors);
        }
        let cpu: Vec<String> = self
            .cpu_seconds
            .iter()
            .map(|(k, v)| format!("{k} {v:.2} s"))
            .collect();
        println!("cpu                   {}", cpu.join(", "));
        if self.cpu_by_phase.iter().all(|p| p.stack == 0.0)
            && self.target != "local stack (in process)"
        {
            println!(
                "                      (the stack's CPU: give --stack-pid for a stack on this machine)"
            );
        }
        for p in &self.cpu_by_phase {
            println!(
                "  {:<8} {:>7.2} s wall: stack {:>6.2} s, generator {:>6.2} s{}",
                p.phase,
                p.wall_sec,
                p.stack,
                p.generator,
                if p.generator > p.stack && p.stack > 0.0 {
                    "  (the generator used more than the stack)"
                } else {
                    ""
                }
            );
        }
        if let Some(us) = self.stack_cpu_us_per_delivery {
            println!("stack cpu/delivery    {us:.2} µs (publish and drain)");
        }
        if let Some(m) = self.memory_per_connection_bytes {
            println!(
                "memory/connection     {:.1} KiB ({})",
                m as f64 / 1024.0,
                self.memory_of
            );
        }
        if let Some(q) = &self.quota {
            println!(
                "quota emulation       {} accepted, {} throttled ({:.2} %)",
                q.accepted,
                q.throttled,
                q.throttled_share * 100.0
            );
        }
        println!("elapsed               {:.1} s", self.elapsed_sec);
        println!(
            "estimated AWS cost    ${:.4} ({})",
            self.estimated_aws_cost.total_usd, self.estimated_aws_cost.assumptions
        );
    }

    /// Writes the JSON report and the charts; returns the chart paths.
    pub fn write(&self, path: &Path, latency_us: &Histogram<u64>) -> anyhow::Result<Vec<PathBuf>> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")?;
        let stem = path.with_extension("");
        let latency = PathBuf::from(format!("{}-latency.svg", stem.display()));
        let over_time = PathBuf::from(format!("{}-deliveries.svg", stem.display()));
        let percentiles = PathBuf::from(format!("{}-percentiles.svg", stem.display()));
        latency_chart(&latency, latency_us).map_err(|e| anyhow::anyhow!("{e}"))?;
        percentiles_chart(&percentiles, latency_us).map_err(|e| anyhow::anyhow!("{e}"))?;
        deliveries_chart(&over_time, &self.deliveries_per_100ms)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(vec![latency, percentiles, over_time])
    }
}

type ChartResult = Result<(), Box<dyn std::error::Error>>;

/// Deliveries per latency bucket (1 ms wide up to the 99.9th percentile).
fn latency_chart(path: &Path, h: &Histogram<u64>) -> ChartResult {
    let top_ms = ((h.value_at_quantile(0.999) / 1000) + 1).max(2);
    let mut buckets = vec![0u64; top_ms as usize + 1];
    for v in h.iter_recorded() {
        let ms = (v.value_iterated_to() / 1000).min(top_ms) as usize;
        buckets[ms] += v.count_since_last_iteration();
    }
    let peak = buckets.iter().copied().max().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("publish → receive latency", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0u64..top_ms + 1, 0u64..peak + peak / 10 + 1)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("deliveries")
        .draw()?;
    chart.draw_series(buckets.iter().enumerate().map(|(ms, &count)| {
        Rectangle::new(
            [(ms as u64, 0), (ms as u64 + 1, count)],
            BLUE.mix(0.6).filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

/// Where the percentile axis ends: 1 / (1 − p) at p99.999.
const PERCENTILE_AXIS_END: f64 = 1e5;

/// The percentile a point of the log axis stands for (x = 1 / (1 − p)).
fn percentile_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let digits = (x.log10().floor() as usize).saturating_sub(2);
    format!("{p:.digits$}%")
}

/// The percentile distribution, HdrHistogram style: latency against the
/// percentile on a log scale of 1 / (1 − p), so p99, p99.9 and p99.99 get
/// as much room as the body, where the histogram beside it shows the body.
fn percentiles_chart(path: &Path, h: &Histogram<u64>) -> ChartResult {
    let points: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| {
            (
                v.quantile_iterated_to(),
                v.value_iterated_to() as f64 / 1000.0,
            )
        })
        .filter(|(q, _)| *q < 1.0)
        .map(|(q, ms)| ((1.0 / (1.0 - q)).min(PERCENTILE_AXIS_END), ms))
        .collect();
    let top = (h.max() as f64 / 1000.0).max(1.0) * 1.1;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "publish → receive latency by percentile",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..PERCENTILE_AXIS_END).log_scale(), 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&percentile_label)
        .draw()?;
    chart.draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

/// Deliveries per second over the run, in 100 ms steps.
fn deliveries_chart(path: &Path, per_100ms: &[u64]) -> ChartResult {
    let rates: Vec<(f64, f64)> = per_100ms
        .iter()
        .enumerate()
        .map(|(i, &n)| (i as f64 / 10.0, n as f64 * 10.0))
        .collect();
    let end = (rates.len() as f64 / 10.0).max(0.1);
    let peak = rates.iter().map(|(_, r)| *r).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("deliveries over time", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..end, 0.0..peak * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first publish")
        .y_desc("deliveries / s")
        .draw()?;
    chart.draw_series(LineSeries::new(rates, RED.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_axis_is_labelled_in_percentiles() {
        assert_eq!(percentile_label(&1.0), "0%");
        assert_eq!(percentile_label(&10.0), "90%");
        assert_eq!(percentile_label(&100.0), "99%");
        assert_eq!(percentile_label(&1000.0), "99.9%");
        assert_eq!(percentile_label(&10000.0), "99.99%");
    }

    #[test]
    fn the_percentile_chart_reaches_the_tail() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for i in 1..=10_000u64 {
            h.record(i * 100).unwrap();
        }
        let path = std::env::temp_dir().join(format!("percentiles-{}.svg", std::process::id()));
        percentiles_chart(&path, &h).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("99.9%"), "the tail is labelled");
    }
}
