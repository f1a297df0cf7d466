//! Opening a share of the run's connections in this process: each client
//! connects at its slot of the ramp, joins its room and listens. The
//! generator runs this itself, or in each of its worker processes
//! ([`crate::workers`]), which then hold the sockets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use fanout_core::ids::{TenantId, UserId};
use fanout_core::token::TokenSigner;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clients::{self, ClientLog};
use crate::publish::room_name;
use crate::system::monotonic_us;

/// Connections opened at once while ramping (the ramp rate paces starts).
const CONNECTS_IN_FLIGHT: usize = 512;

/// How clients get their tokens: minted per client (user `load{i}`) with
/// the HS256 secret, or one ready token for all.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub tenant: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Tokens {
    /// The token client `i` connects with.
    pub fn for_client(&self, i: usize) -> anyhow::Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let tenant = TenantId::new(self.tenant.as_str()).context("--tenant")?;
        let user = UserId::new(format!("load{i}"))?;
        let now = chrono::Utc::now().timestamp();
        let signer = TokenSigner::new(self.secret.as_bytes());
        Ok(signer.mint(&tenant, &user, now, Duration::from_secs(2 * 3600))?)
    }
}

/// Which connections to open, and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RampPlan {
    pub url: String,
    pub tokens: Tokens,
    /// Clients `first .. first + count` of the run (client `i` joins room
    /// `i % rooms`).
    pub first: usize,
    pub count: usize,
    pub rooms: usize,
    /// Connections per second this share opens.
    pub rate: f64,
    /// 127.0.0.x source addresses to spread sockets over.
    pub sources: usize,
    /// Monotonic µs ([`monotonic_us`]) every time in the run is measured
    /// from.
    pub time_base_us: u64,
    /// Monotonic µs at which the first connection starts.
    pub start_at_us: u64,
}

/// How the ramp went.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ramped {
    /// Joined connections per room.
    pub members: Vec<u64>,
    /// Open + join time of every connection that succeeded, µs.
    pub connect_latency_us: Vec<u64>,
    /// Failed connections by the kind of error.
    pub connect_errors: BTreeMap<String, u64>,
    pub first_error: Option<String>,
}

/// The listening clients this process holds.
pub struct HeldClients {
    listeners: Vec<JoinHandle<ClientLog>>,
    /// Message frames received so far, by all of them.
    pub delivered: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
}

impl HeldClients {
    /// Stops listening and returns what every client saw.
    pub async fn stop(&mut self) -> anyhow::Result<Vec<ClientLog>> {
        let _ = self.stop.send(true);
        let mut logs = Vec::with_capacity(self.listeners.len());
        for l in std::mem::take(&mut self.listeners) {
            logs.push(l.await?);
        }
        Ok(logs)
    }
}

/// Opens the plan's connections at its rate, counting each attempt in
/// `attempted`; the clients listen until [`HeldClients::stop`].
pub async fn open_here(
    plan: &RampPlan,
    attempted: &AtomicU64,
) -> anyhow::Result<(Ramped, HeldClients)> {
    let delivered = Arc::new(AtomicU64::new(0));
    let (stop, stop_rx) = watch::channel(false);
    let mut ramped = Ramped {
        members: vec![0; plan.rooms],
        ..Ramped::default()
    };
    let mut listeners = Vec::with_capacity(plan.count);
    let mut attempts = Vec::with_capacity(plan.count);
    for i in plan.first..plan.first + plan.count {
        attempts.push((i, plan.tokens.for_client(i)?));
    }
    let interval_us = 1e6 / plan.rate;
    let ramp_start = tokio::time::Instant::now()
        + Duration::from_micros(plan.start_at_us.saturating_sub(monotonic_us()));
    let opened = futures::stream::iter(attempts)
        .map(|(i, token)| async move {
            let slot = Duration::from_micros(((i - plan.first) as f64 * interval_us) as u64);
            tokio::time::sleep_until(ramp_start + slot).await;
            let began = monotonic_us();
            let room = i % plan.rooms;
            let source = clients::source_address(i, plan.sources);
            let mut ws = clients::open(&plan.url, &token, source).await?;
            clients::join(&mut ws, &room_name(room)).await?;
            Ok::<_, String>((room, ws, monotonic_us() - began))
        })
        .buffer_unordered(CONNECTS_IN_FLIGHT);
    tokio::pin!(opened);
    while let Some(result) = opened.next().await {
        attempted.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok((room, ws, took_us)) => {
                ramped.connect_latency_us.push(took_us.max(1));
                ramped.members[room] += 1;
                listeners.push(tokio::spawn(clients::listen(
                    ws,
                    room,
                    plan.time_base_us,
                    delivered.clone(),
                    stop_rx.clone(),
                )));
            }
            Err(error) => {
                let kind = error.split(':').next().unwrap_or("connect").to_string();
                *ramped
                    .connect_errors
                    .entry(format!("connect_{kind}"))
                    .or_default() += 1;
                ramped.first_error.get_or_insert(error);
            }
        }
    }
    Ok((
        ramped,
        HeldClients {
            listeners,
            delivered,
            stop,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_token_is_shared_and_minted_ones_name_the_client() {
        let ready = Tokens {
            tenant: "t".into(),
            secret: String::new(),
            token: Some("abc".into()),
        };
        assert_eq!(ready.for_client(7).unwrap(), "abc");
        let minted = Tokens {
            tenant: "t".into(),
            secret: fanout_core::token::DEV_JWT_SECRET.into(),
            token: None,
        };
        assert_ne!(minted.for_client(1).unwrap(), minted.for_client(2).unwrap());
        let bad = Tokens {
            tenant: "bad tenant!".into(),
            ..minted
        };
        assert!(bad.for_client(1).is_err());
    }
}
