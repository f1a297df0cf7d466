//! Broadcaster hot path: `deliver` posting one frame to every connection of
//! a job through a poster that only counts, with no rate gate, on one
//! thread (one worker). It measures what the broadcaster itself costs per
//! post: frame sharing, the in-flight window, timeouts and classification.
//!
//!     cargo bench -p fanout-core --bench broadcaster_hot_path
//!
//! Optional: `-- --jobs N --connections M --frame-bytes B`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use fanout_core::clock::SystemClock;
use fanout_core::handlers::broadcaster::{
    BroadcasterDeps, BroadcasterSettings, JobSettings, deliver,
};
use fanout_core::ids::ConnectionId;
use fanout_core::metrics::MetricTotals;
use fanout_core::plan::DeliveryJob;
use fanout_core::ports::{ConnectionInfo, ConnectionPoster, PostError};
use fanout_embedded::{MemoryQueue, MemoryStore, QueueSettings};

/// Accepts every post and counts it.
#[derive(Default)]
struct CountingPoster {
    posts: AtomicU64,
    bytes: AtomicU64,
}

#[async_trait]
impl ConnectionPoster for CountingPoster {
    async fn post(&self, _id: &ConnectionId, frame: &Bytes) -> Result<(), PostError> {
        self.posts.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    async fn get(&self, _id: &ConnectionId) -> Result<ConnectionInfo, PostError> {
        Err(PostError::Gone)
    }
    async fn delete(&self, _id: &ConnectionId) -> Result<(), PostError> {
        Ok(())
    }
}

fn flag(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let jobs = flag("--jobs", 2_000);
    let per_job = flag("--connections", 500);
    let frame_bytes = flag("--frame-bytes", 200);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let clock = Arc::new(SystemClock);
        let poster = Arc::new(CountingPoster::default());
        let deps = BroadcasterDeps {
            store: Arc::new(MemoryStore::new(clock.clone(), 4)),
            poster: poster.clone(),
            deliver_queue: MemoryQueue::new("deliver", QueueSettings::default()),
            dead_letter_queue: MemoryQueue::new("deliver-dlq", QueueSettings::default()),
            gate: None,
            metrics: MetricTotals::new(),
            clock,
            settings: BroadcasterSettings::default(),
            jobs: JobSettings::default(),
        };
        let frame = format!(
            r#"{{"type":"message","id":"e","room":"r","data":"{}","sentAt":"2026-11-22T09:00:00.000Z"}}"#,
            "x".repeat(frame_bytes)
        );
        let job = DeliveryJob {
            event_id: "bench".into(),
            attempt: 1,
            published_at_ms: None,
            dead_letter: None,
            connections: (0..per_job)
                .map(|i| ConnectionId::new(format!("conn{i:08}=")).expect("valid id"))
                .collect(),
            frame: serde_json::value::RawValue::from_string(frame).expect("valid JSON"),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3_600);
        // Warm up allocations and the timer wheel.
        for _ in 0..jobs / 20 + 1 {
            deliver(&job, deadline, &deps).await.expect("delivered");
        }
        poster.posts.store(0, Ordering::Relaxed);
        let started = Instant::now();
        for _ in 0..jobs {
            deliver(&job, deadline, &deps).await.expect("delivered");
        }
        let elapsed = started.elapsed();
        let posts = poster.posts.load(Ordering::Relaxed);
        println!(
            "{jobs} jobs × {per_job} connections, frame {} bytes",
            job.frame.get().len()
        );
        println!(
            "{posts} posts in {:.3} s: {:.0} posts/s on one thread, {:.0} ns per post",
            elapsed.as_secs_f64(),
            posts as f64 / elapsed.as_secs_f64(),
            elapsed.as_nanos() as f64 / posts as f64
        );
    });
}
