//! Presence churn: connections that enter a room's presence and leave it
//! again, at a steady rate, while the room's listeners measure how fast
//! the `presence.joined` and `presence.left` notices reach them.
//!
//! Each churner connects as its own user, joins room 0 with
//! `"presence": true`, stays `--churn-stay`, then closes its socket (the
//! `$disconnect` path announces the departure), so at `--presence-churn R`
//! the room sees R joins and R leaves per second.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::clients;
use crate::publish::room_name;

/// When each churner's join and close were sent, µs since the run's start.
#[derive(Debug, Default)]
pub struct ChurnLog {
    pub joined_at: HashMap<String, u64>,
    pub left_at: HashMap<String, u64>,
    pub errors: Vec<String>,
}

/// Runs `count` churners at `rate` per second; `token_for(user)` mints
/// each one's token.
pub async fn run(
    url: String,
    tokens: Vec<(String, String)>,
    rate: f64,
    stay: Duration,
    source: Ipv4Addr,
    time_base_us: u64,
) -> ChurnLog {
    let pace = Duration::from_secs_f64(1.0 / rate);
    let began = tokio::time::Instant::now();
    let churners = tokens.into_iter().enumerate().map(|(i, (user, token))| {
        let url = url.clone();
        async move {
            tokio::time::sleep_until(began + pace * i as u32).await;
            let mut ws = clients::open(&url, &token, source).await?;
            let join = format!(
                r#"{{"action":"join","room":"{}","presence":true}}"#,
                room_name(0)
            );
            let joined_at = crate::system::monotonic_us().saturating_sub(time_base_us);
            ws.send(Message::Text(join.into()))
                .await
                .map_err(|e| format!("send join: {e}"))?;
            // Drain what arrives (the room's notices) while staying.
            let _ = tokio::time::timeout(stay, async { while ws.next().await.is_some() {} }).await;
            let left_at = crate::system::monotonic_us().saturating_sub(time_base_us);
            let _ = ws.close(None).await;
            Ok::<_, String>((user, joined_at, left_at))
        }
    });
    let mut log = ChurnLog::default();
    let results: Vec<_> = futures::stream::iter(churners)
        .buffer_unordered(4_096)
        .collect()
        .await;
    for result in results {
        match result {
            Ok((user, joined, left)) => {
                log.joined_at.insert(user.clone(), joined);
                log.left_at.insert(user, left);
            }
            Err(e) => log.errors.push(e),
        }
    }
    log
}
