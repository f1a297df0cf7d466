//! `GET /_fanout/dashboard`: what the local dashboard page shows, as one
//! JSON document — open connections, rooms and their sizes, every queue's
//! depth, deliveries per second and p99 publish→post latency over the last
//! minutes, and the dead letters waiting in each dead-letter queue with
//! why they failed.
//!
//! `series` keeps the chart's points; `cache` the slow reads between polls.

pub mod cache;
pub mod series;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use fanout_core::ports::ConnectionStore;
use futures::StreamExt;
use serde::Serialize;

use crate::state::AppState;
use series::BUCKET;

pub const DASHBOARD_DATA_PATH: &str = "/_fanout/dashboard";
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

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(DASHBOARD_DATA_PATH, axum::routing::get(dashboard))
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomRow {
    tenant: String,
    room: String,
    connections: usize,
}

#[derive(Serialize)]
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
        .get(ROOM_REFRESH, || rooms_json(&app), |_| true)
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

async fn rooms_json(app: &AppState) -> serde_json::Value {
    serde_json::to_value(rooms(app).await).unwrap_or_default()
}

/// Room sizes, counted from the memberships of (up to
/// [`ROOM_SCAN_MAX_CONNECTIONS`]) open connections.
async fn rooms(app: &AppState) -> Rooms {
    let ids = app.registry.ids(ROOM_SCAN_MAX_CONNECTIONS);
    let counted = ids.len();
    let reads = futures::stream::iter(ids)
        .map(|id| {
            let store: Arc<dyn ConnectionStore> = app.deps.gateway.store.clone();
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
