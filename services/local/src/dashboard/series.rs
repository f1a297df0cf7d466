//! [`DeliverySeries`] is a metrics sink beside the totals: the broadcaster
//! records each job's deliveries and latency, and the series keeps them in
//! fixed time buckets (each with its own HDR histogram), so the page gets
//! a rate and a p99 per bucket rather than one average since start.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fanout_core::clock::Clock;
use fanout_core::metrics::{DELIVERED, Metric, MetricsSink, PUBLISH_TO_POST_LATENCY};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Width of one point of the chart.
pub const BUCKET: Duration = Duration::from_secs(2);
/// How far back the chart reaches.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Highest latency the histograms track; longer ones count as this.
const MAX_TRACKED_LATENCY_MS: u64 = 60 * 60 * 1000;

/// Deliveries and publish→post latency per [`BUCKET`], for the last
/// [`WINDOW`].
pub struct DeliverySeries {
    clock: Arc<dyn Clock>,
    // std Mutex: held for a few additions per broadcaster job, never
    // across an await.
    buckets: Mutex<VecDeque<Bucket>>,
}

struct Bucket {
    start_ms: i64,
    deliveries: u64,
    /// Created on the first latency of the bucket: idle buckets cost
    /// nothing.
    latency_ms: Option<Histogram<u64>>,
}

/// One point of the chart.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    pub start_ms: i64,
    pub deliveries_per_second: f64,
    /// Absent when nothing was delivered in the bucket.
    pub p99_ms: Option<u64>,
}

impl DeliverySeries {
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            buckets: Mutex::new(VecDeque::new()),
        })
    }

    fn bucket_ms() -> i64 {
        BUCKET.as_millis() as i64
    }

    fn bucket_count() -> usize {
        (WINDOW.as_millis() / BUCKET.as_millis()) as usize
    }

    /// The chart's points from the oldest bucket of the window to the
    /// current one, empty buckets included.
    pub fn points(&self) -> Vec<SeriesPoint> {
        let width = Self::bucket_ms();
        let current = self.clock.now_ms().div_euclid(width) * width;
        let first = current - width * (Self::bucket_count() as i64 - 1);
        let buckets = self.lock();
        let by_start: HashMap<i64, &Bucket> = buckets.iter().map(|b| (b.start_ms, b)).collect();
        (0..Self::bucket_count() as i64)
            .map(|i| {
                let start_ms = first + i * width;
                let bucket = by_start.get(&start_ms);
                SeriesPoint {
                    start_ms,
                    deliveries_per_second: bucket
                        .map_or(0.0, |b| b.deliveries as f64 / BUCKET.as_secs_f64()),
                    p99_ms: bucket
                        .and_then(|b| b.latency_ms.as_ref())
                        .filter(|h| !h.is_empty())
                        .map(|h| h.value_at_quantile(0.99)),
                }
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MetricsSink for DeliverySeries {
    fn record(&self, _function: &str, _event_id: &str, metrics: &[Metric]) {
        let value = |name: &str| metrics.iter().find(|m| m.name == name).map(|m| m.value);
        let delivered = value(DELIVERED).unwrap_or(0.0).max(0.0) as u64;
        let latency = value(PUBLISH_TO_POST_LATENCY);
        if delivered == 0 && latency.is_none() {
            return;
        }
        let width = Self::bucket_ms();
        let start_ms = self.clock.now_ms().div_euclid(width) * width;
        let mut buckets = self.lock();
        if buckets.back().is_none_or(|b| b.start_ms < start_ms) {
            buckets.push_back(Bucket {
                start_ms,
                deliveries: 0,
                latency_ms: None,
            });
        }
        while buckets.len() > Self::bucket_count() {
            buckets.pop_front();
        }
        // A late record for an older bucket lands in the newest: the
        // chart is a picture of the last minutes, not an audit.
        let Some(bucket) = buckets.back_mut() else {
            return;
        };
        bucket.deliveries += delivered;
        if let Some(latency) = latency {
            let histogram = bucket.latency_ms.get_or_insert_with(|| {
                Histogram::new_with_bounds(1, MAX_TRACKED_LATENCY_MS, 2)
                    .expect("constant histogram bounds are valid")
            });
            // The job's latency stands for each post it delivered.
            let ms = (latency.max(1.0) as u64).min(MAX_TRACKED_LATENCY_MS);
            histogram.saturating_record_n(ms, delivered.max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout_core::clock::ManualClock;

    #[test]
    fn series_has_a_rate_and_p99_per_bucket_and_forgets_old_buckets() {
        let clock = ManualClock::at_ms(1_000_000);
        let series = DeliverySeries::new(clock.clone());
        let job = |delivered: usize, latency: i64| {
            [
                Metric::count(DELIVERED, delivered),
                Metric::millis(PUBLISH_TO_POST_LATENCY, latency),
            ]
        };
        series.record("broadcaster", "e1", &job(98, 10));
        series.record("broadcaster", "e2", &job(2, 500));
        let points = series.points();
        assert_eq!(points.len(), DeliverySeries::bucket_count());
        let last = points.last().unwrap();
        assert_eq!(last.deliveries_per_second, 100.0 / BUCKET.as_secs_f64());
        // 98 of 100 posts took 10 ms: the 99th percentile is the slow job.
        assert!(last.p99_ms.unwrap() >= 495, "{last:?}");
        assert!(
            points[..points.len() - 1]
                .iter()
                .all(|p| p.p99_ms.is_none())
        );

        clock.advance_ms(WINDOW.as_millis() as i64);
        series.record("broadcaster", "e3", &job(1, 5));
        let points = series.points();
        assert_eq!(
            points
                .iter()
                .filter(|p| p.deliveries_per_second > 0.0)
                .count(),
            1,
            "the first bucket has left the window"
        );
        assert_eq!(points.last().unwrap().p99_ms, Some(5));
    }
}
