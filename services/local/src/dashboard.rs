//! `GET /_fanout/dashboard`: what the local dashboard page shows, as one
//! JSON document — open connections, rooms and their sizes, every queue's
//! depth, deliveries per second and p99 publish→post latency over the last
//! minutes, and the dead letters waiting in each dead-letter queue with
//! why they failed.
//!
//! [`DeliverySeries`] is a metrics sink beside the totals: the broadcaster
//! records each job's deliveries and latency, and the series keeps them in
//! fixed time buckets (each with its own HDR histogram), so the page gets
//! a rate and a p99 per bucket rather than one average since start.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use fanout_core::clock::Clock;
use fanout_core::metrics::{DELIVERED, Metric, MetricsSink, PUBLISH_TO_POST_LATENCY};
use fanout_core::ports::ConnectionStore;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use crate::state::AppState;

pub const DASHBOARD_DATA_PATH: &str = "/_fanout/dashboard";
/// Width of one point of the chart.
pub const BUCKET: Duration = Duration::from_secs(2);
/// How far back the chart reaches.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Connections whose rooms are read for the room list, per refresh: room
/// sizes are counted from each open connection's memberships (one store
/// read each), so a stack with more connections shows a sample.
pub const ROOM_SCAN_MAX_CONNECTIONS: usize = 2_000;
/// Rooms listed, largest first.
const ROOMS_SHOWN: usize = 50;
/// Store reads in flight while counting rooms.
const ROOM_SCAN_CONCURRENCY: usize = 16;
/// Dead letters shown per dead-letter queue.
const DEAD_LETTERS_SHOWN: usize = 5;
/// How long a look at the dead-letter queues is reused: each look is a
/// receive, which raises the messages' receive counts (as `fanout dlq
/// show` does), so a page polling every second does not peek every second.
const DEAD_LETTER_REFRESH: Duration = Duration::from_secs(5);
/// How long a count of the rooms is reused: it costs two store reads per
/// counted connection, too many to repeat on every poll.
const ROOM_REFRESH: Duration = Duration::from_secs(5);
/// Highest latency the histograms track; longer ones count as this.
const MAX_TRACKED_LATENCY_MS: u64 = 60 * 60 * 1000;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(DASHBOARD_DATA_PATH, axum::routing::get(dashboard))
}

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

/// The dashboard's slow reads, each reused for a while: the room count and
/// the last look at the dead-letter queues.
#[derive(Default)]
pub struct DashboardCache {
    rooms: Cached<Rooms>,
    dead_letters: Cached<serde_json::Value>,
}

/// A value and when it was read.
struct Cached<T> {
    last: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Self {
            last: tokio::sync::Mutex::new(None),
        }
    }
}

impl<T: Clone> Cached<T> {
    /// The value read less than `fresh` ago, or a new one from `read`
    /// (kept when `keep` says it is worth keeping). Concurrent polls wait
    /// for one read rather than each reading.
    async fn get<F: Future<Output = T>>(
        &self,
        fresh: Duration,
        read: impl FnOnce() -> F,
        keep: impl FnOnce(&T) -> bool,
    ) -> T {
        let mut last = self.last.lock().await;
        if let Some((at, value)) = last.as_ref()
            && at.elapsed() < fresh
        {
            return value.clone();
        }
        let value = read().await;
        if keep(&value) {
            *last = Some((Instant::now(), value.clone()));
        }
        value
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetter {
    queue: String,
    message_id: String,
    receive_count: u32,
    /// Why it failed and what it held, as `fanout dlq show` prints it.
    description: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueRow {
    name: String,
    dead_letter: bool,
    visible: Option<u64>,
    in_flight: Option<u64>,
    delayed: Option<u64>,
    /// Why the depth could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomRow {
    tenant: String,
    room: String,
    connections: usize,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Rooms {
    rooms: Vec<RoomRow>,
    /// Distinct rooms among the connections counted.
    total: usize,
    /// Connections whose rooms were read.
    connections_counted: usize,
    /// Connections whose rooms could not be read (gone meanwhile, or the
    /// store failed).
    unreadable: usize,
}

async fn dashboard(State(app): State<Arc<AppState>>) -> Response {
    let mut queues = Vec::new();
    for queue in app.queues.all() {
        let depth = queue.depth().await;
        queues.push(QueueRow {
            name: queue.name().to_string(),
            dead_letter: app.queues.is_dead_letter_queue(queue.name()),
            visible: depth.as_ref().ok().map(|d| d.visible),
            in_flight: depth.as_ref().ok().map(|d| d.in_flight),
            delayed: depth.as_ref().ok().map(|d| d.delayed),
            error: depth.err().map(|e| e.to_string()),
        });
    }
    let cache = &app.dashboard;
    let rooms = cache
        .rooms
        .get(ROOM_REFRESH, || rooms(&app), |_| true)
        .await;
    let dead_letters = cache
        .dead_letters
        .get(
            DEAD_LETTER_REFRESH,
            || dead_letters(&app),
            |looked| looked["errors"].as_array().is_some_and(|e| e.is_empty()),
        )
        .await;
    let body = serde_json::json!({
        "nowMs": app.clock.now_ms(),
        "connections": app.registry.len(),
        "rooms": rooms,
        "queues": queues,
        "bucketSeconds": BUCKET.as_secs(),
        "series": app.series.points(),
        "deadLetters": dead_letters,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Room sizes, counted from the memberships of (up to
/// [`ROOM_SCAN_MAX_CONNECTIONS`]) open connections.
async fn rooms(app: &AppState) -> Rooms {
    let ids = app.registry.ids(ROOM_SCAN_MAX_CONNECTIONS);
    let counted = ids.len();
    let reads = futures::stream::iter(ids)
        .map(|id| {
            let store: Arc<dyn ConnectionStore> = app.gateway.store.clone();
            async move {
                let record = store.get_connection(&id).await.ok().flatten()?;
                let rooms = store.connection_rooms(&id).await.ok()?;
                Some((record.tenant, rooms))
            }
        })
        .buffer_unordered(ROOM_SCAN_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut sizes: HashMap<(String, String), usize> = HashMap::new();
    let mut unreadable = 0;
    for read in &reads {
        match read {
            Some((tenant, rooms)) => {
                for room in rooms {
                    *sizes
                        .entry((tenant.to_string(), room.to_string()))
                        .or_default() += 1;
                }
            }
            None => unreadable += 1,
        }
    }
    let total = sizes.len();
    let mut rooms: Vec<RoomRow> = sizes
        .into_iter()
        .map(|((tenant, room), connections)| RoomRow {
            tenant,
            room,
            connections,
        })
        .collect();
    rooms.sort_by(|a, b| {
        b.connections
            .cmp(&a.connections)
            .then_with(|| (&a.tenant, &a.room).cmp(&(&b.tenant, &b.room)))
    });
    rooms.truncate(ROOMS_SHOWN);
    Rooms {
        rooms,
        total,
        connections_counted: counted,
        unreadable,
    }
}

/// Up to [`DEAD_LETTERS_SHOWN`] messages of each dead-letter queue, with
/// why they failed, and the queues that could not be read.
async fn dead_letters(app: &AppState) -> serde_json::Value {
    let mut letters = Vec::new();
    let mut errors = Vec::new();
    let now_ms = app.clock.now_ms();
    for queue in app.queues.all() {
        if !app.queues.is_dead_letter_queue(queue.name()) {
            continue;
        }
        match fanout_aws::dlq::peek(queue.as_ref(), DEAD_LETTERS_SHOWN).await {
            Ok(messages) => letters.extend(messages.iter().map(|m| DeadLetter {
                queue: queue.name().to_string(),
                message_id: m.message_id.clone(),
                receive_count: m.receive_count,
                description: fanout_aws::dlq::describe(m, now_ms),
            })),
            Err(e) => errors.push(format!("{}: {e}", queue.name())),
        }
    }
    serde_json::json!({ "messages": letters, "errors": errors })
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
