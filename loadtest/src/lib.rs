//! # fanout-loadtest
//!
//! Drives real WebSocket connections through fanout and measures delivery.
//!
//! # Layout
//! - [`config`]: the flags (scenario, target, prices).
//! - [`system`]: the open-file limit and per-thread-group CPU time.
//! - [`clients`]: opening, joining and listening connections.
//! - [`publish`]: PutEvents, client publishes, or direct posts.
//! - [`churn`]: presence churn (joins and leaves at a steady rate).
//! - [`measure`]: latency, throughput, loss, duplicates, order.
//! - [`cost`]: the AWS cost estimate.
//! - [`report`]: the table, the JSON report and the SVG charts.
//!
//! [`run`] is the whole scenario; `main` only parses flags and prints.

pub mod churn;
pub mod clients;
pub mod config;
pub mod cost;
pub mod measure;
pub mod publish;
pub mod report;
pub mod system;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fanout_core::ids::{TenantId, UserId};
use fanout_core::settings::{JobSettings, StoreSettings};
use fanout_core::token::{DEV_JWT_SECRET, TokenSigner, check_secret};
use fanout_local::{RunningStack, StackConfig};
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use crate::config::{Mode, Scenario, Via};
use crate::measure::Percentiles;
use crate::publish::{Publisher, room_name};
use crate::report::{Connect, Report};

/// How long the listeners keep listening after the last churner left.
const PRESENCE_DRAIN: Duration = Duration::from_secs(2);

/// Connections opened at once while ramping (the ramp rate paces starts).
const CONNECTS_IN_FLIGHT: usize = 512;

/// The local stack, on its own runtime so its CPU time is its own.
struct LocalStack {
    stack: RunningStack,
    runtime: tokio::runtime::Runtime,
}

async fn start_local(scenario: &Scenario) -> anyhow::Result<LocalStack> {
    let mut args = vec!["fanout-local".to_string(), "--port".into(), "0".into()];
    // The harness measures delivery: its one publisher per room sends far
    // more than a client may, so the abuse limits are off unless a
    // --stack-arg sets them.
    for flag in ["--client-frame-rate", "--tenant-publish-rate"] {
        if !scenario.stack_args.iter().any(|a| a.starts_with(flag)) {
            args.extend([flag.to_string(), "0".into()]);
        }
    }
    if !scenario.streams {
        args.push("--ephemeral-rooms=*".into());
    }
    args.extend(scenario.stack_args.iter().cloned());
    let config = <StackConfig as clap::Parser>::try_parse_from(&args)
        .map_err(|e| anyhow::anyhow!("--stack-arg: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("stack-worker")
        .enable_all()
        .build()?;
    let stack = runtime
        .spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            fanout_local::start(config, listener).await
        })
        .await??;
    Ok(LocalStack { stack, runtime })
}

fn bar(scenario: &Scenario, len: u64, what: &str) -> ProgressBar {
    if scenario.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU and wall time per phase of a run, as they end.
struct Phases {
    stack_pid: Option<u32>,
    cpu: system::CpuSplit,
    at: Instant,
    done: Vec<report::PhaseCpu>,
}

impl Phases {
    fn start(stack_pid: Option<u32>) -> Self {
        Self {
            stack_pid,
            cpu: system::CpuSplit::now(stack_pid),
            at: Instant::now(),
            done: Vec::new(),
        }
    }

    fn end(&mut self, phase: &'static str) {
        let cpu = system::CpuSplit::now(self.stack_pid);
        let used = cpu.since(self.cpu);
        self.done.push(report::PhaseCpu {
            phase,
            wall_sec: self.at.elapsed().as_secs_f64(),
            stack: used.stack,
            generator: used.generator,
        });
        self.cpu = cpu;
        self.at = Instant::now();
    }
}

/// Runs the scenario end to end and returns its report.
pub async fn run(scenario: &Scenario) -> anyhow::Result<(Report, Histogram<u64>)> {
    scenario.validate().map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let local = match scenario.url {
        None => {
            // Both ends of every socket are in this process.
            system::raise_fd_limit(2 * scenario.connections as u64 + 256)
                .map_err(anyhow::Error::msg)?;
            Some(start_local(scenario).await?)
        }
        Some(_) => {
            system::raise_fd_limit(scenario.connections as u64 + 256)
                .map_err(anyhow::Error::msg)?;
            None
        }
    };
    let url = match (&scenario.url, &local) {
        (Some(url), _) => url.clone(),
        (None, Some(l)) => l.stack.ws_url(),
        (None, None) => unreachable!("a local stack is started without --url"),
    };
    let tenant = TenantId::new(scenario.tenant.as_str()).context("--tenant")?;
    let secret = scenario.jwt_secret.as_deref().unwrap_or(DEV_JWT_SECRET);
    check_secret(secret, false).context("--jwt-secret")?;
    let signer = TokenSigner::new(secret.as_bytes());
    let token_for = |i: usize| -> anyhow::Result<String> {
        if let Some(t) = &scenario.token {
            return Ok(t.clone());
        }
        let user = UserId::new(format!("load{i}"))?;
        let now = chrono::Utc::now().timestamp();
        Ok(signer.mint(&tenant, &user, now, Duration::from_secs(2 * 3600))?)
    };

    // Ramp: open and join every connection at --ramp-rate.
    let mut phases = Phases::start(scenario.stack_pid);
    let sources = scenario.source_address_count();
    let rss_before = resident_bytes();
    let ramp = bar(scenario, scenario.connections as u64, "connecting");
    let start = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let interval = Duration::from_secs_f64(1.0 / f64::from(scenario.ramp_rate));
    let mut connect_latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut connect_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut listeners = Vec::with_capacity(scenario.connections);
    // Joined connections per room: who a message to that room must reach.
    let mut members = vec![0u64; scenario.rooms];
    let mut attempts = Vec::with_capacity(scenario.connections);
    for i in 0..scenario.connections {
        attempts.push((i, token_for(i)?));
    }
    let ramp_start = tokio::time::Instant::now();
    let opened = futures::stream::iter(attempts)
        .map(|(i, token)| {
            let url = url.clone();
            async move {
                tokio::time::sleep_until(ramp_start + interval * i as u32).await;
                let began = Instant::now();
                let room = i % scenario.rooms;
                let mut ws =
                    clients::open(&url, &token, clients::source_address(i, sources)).await?;
                clients::join(&mut ws, &room_name(room)).await?;
                Ok::<_, String>((room, ws, began.elapsed()))
            }
        })
        .buffer_unordered(CONNECTS_IN_FLIGHT);
    tokio::pin!(opened);
    while let Some(result) = opened.next().await {
        ramp.inc(1);
        match result {
            Ok((room, ws, took)) => {
                let _ = connect_latency.record(took.as_micros().max(1) as u64);
                members[room] += 1;
                listeners.push(tokio::spawn(clients::listen(
                    ws,
                    room,
                    start,
                    delivered.clone(),
                    stop_rx.clone(),
                )));
            }
            Err(error) => {
                let kind = error.split(':').next().unwrap_or("connect").to_string();
                *connect_errors.entry(format!("connect_{kind}")).or_default() += 1;
                if connect_errors.values().sum::<u64>() == 1 {
                    ramp.println(format!("first connection error: {error}"));
                }
            }
        }
    }
    ramp.finish_and_clear();
    phases.end("ramp");
    let connected = listeners.len();
    if connected == 0 {
        bail!("no connection succeeded (errors: {connect_errors:?})");
    }
    let memory_per_connection = rss_before
        .zip(resident_bytes())
        .map(|(before, after)| after.saturating_sub(before) / connected as u64);

    // Publish.
    let mut publisher = match (scenario.mode, scenario.via) {
        (Mode::Direct, _) => {
            let resources = local.as_ref().expect("validated").stack.resources.clone();
            publish::direct(resources, tenant.clone())
        }
        (Mode::Pipeline, Via::Events) => {
            let endpoint = match (&scenario.publish_endpoint, &local) {
                (Some(e), _) => e.clone(),
                (None, Some(l)) => l.stack.http_url(),
                (None, None) => bail!("--url needs --publish-endpoint"),
            };
            Publisher::Events {
                bus: fanout_aws::EventBridgeBus::new(
                    publish::eventbridge(&endpoint).await,
                    &scenario.bus,
                ),
                tenant: scenario.tenant.clone(),
                streams: scenario.streams,
            }
        }
        (Mode::Pipeline, Via::Client) => {
            let mut sockets = Vec::new();
            for room in 0..scenario.rooms {
                let token = token_for(scenario.connections + room)?;
                let mut ws = clients::open(&url, &token, clients::source_address(room, sources))
                    .await
                    .map_err(anyhow::Error::msg)?;
                clients::join(&mut ws, &room_name(room))
                    .await
                    .map_err(anyhow::Error::msg)?;
                sockets.push(ws);
            }
            Publisher::clients(sockets)
        }
    };
    let failed_connects: u64 = connect_errors.values().sum();
    // Presence churn runs beside the publishing.
    let churn = if scenario.presence_churn > 0.0 {
        let mut tokens = Vec::with_capacity(scenario.churners);
        for i in 0..scenario.churners {
            let user = format!("churn{i}");
            let now = chrono::Utc::now().timestamp();
            let token = signer.mint(
                &tenant,
                &UserId::new(user.as_str())?,
                now,
                Duration::from_secs(3600),
            )?;
            tokens.push((user, token));
        }
        Some(tokio::spawn(churn::run(
            url.clone(),
            tokens,
            scenario.presence_churn,
            scenario.churn_stay,
            clients::source_address(scenario.connections, sources),
            start,
        )))
    } else {
        None
    };
    let publishing = bar(scenario, scenario.messages as u64, "publishing");
    let mut published_us: Vec<Option<u64>> = Vec::with_capacity(scenario.messages);
    let mut room_of = Vec::with_capacity(scenario.messages);
    let mut publish_errors = 0u64;
    let pace = Duration::from_secs_f64(1.0 / scenario.publish_rate);
    let publish_start = tokio::time::Instant::now();
    let mut expected = 0u64;
    for seq in 0..scenario.messages {
        tokio::time::sleep_until(publish_start + pace * seq as u32).await;
        let room = seq % scenario.rooms;
        room_of.push(room);
        let payload = publish::data(seq as u32, scenario.payload_bytes);
        let at = start.elapsed().as_micros() as u64;
        match publisher.publish(seq as u32, room, &payload).await {
            Ok(()) => {
                published_us.push(Some(at));
                expected += members[room];
            }
            Err(error) => {
                published_us.push(None);
                publish_errors += 1;
                publishing.println(format!("publish {seq} failed: {error}"));
            }
        }
        publishing.inc(1);
    }
    publishing.finish_and_clear();
    phases.end("publish");

    // Wait for the deliveries, or the timeout.
    let waiting = bar(scenario, expected, "delivering");
    let deadline = Instant::now() + Duration::from_secs(scenario.timeout);
    loop {
        let got = delivered.load(Ordering::Relaxed);
        waiting.set_position(got.min(expected));
        if got >= expected || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A little longer, so late duplicates are seen too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    waiting.finish_and_clear();
    let churn = match churn {
        Some(task) => {
            let log = task.await?;
            // The last departures' notices are still on their way.
            tokio::time::sleep(PRESENCE_DRAIN).await;
            Some(log)
        }
        None => None,
    };
    let _ = stop_tx.send(true);
    let mut logs = Vec::with_capacity(listeners.len());
    for l in listeners {
        logs.push(l.await?);
    }
    phases.end("drain");
    let cpu = system::cpu_seconds_by_thread_group();
    let quota = local
        .as_ref()
        .and_then(|l| l.stack.resources.quota.as_ref())
        .map(|q| {
            let s = q.stats();
            report::QuotaCalls {
                accepted: s.accepted,
                throttled: s.throttled,
                throttled_share: s.throttled as f64 / (s.accepted + s.throttled).max(1) as f64,
            }
        });
    if let Some(local) = local {
        local.stack.stop().await;
        local.runtime.shutdown_background();
    }

    let d = measure::analyse(&logs, &published_us, &room_of);
    let mut errors = d.errors.clone();
    errors.extend(connect_errors);
    if publish_errors > 0 {
        errors.insert("publish_failed".into(), publish_errors);
    }
    let span = (d.span_us as f64 / 1e6).max(1e-6);
    let elapsed = started.elapsed().as_secs_f64();
    let frame_bytes = 120 + scenario.payload_bytes as u64;
    let usage = cost::Usage {
        connections: connected as u64,
        connection_minutes: connected as f64 * elapsed / 60.0,
        messages_published: published_us.iter().flatten().count() as u64,
        deliveries: d.delivered,
        frame_bytes,
        rooms: scenario.rooms as u64,
        shards: u64::from(StoreSettings::default().shards),
        max_connections_per_job: JobSettings::default().max_connections_per_job as u64,
        via: scenario.via,
    };
    let presence = churn.map(|log| {
        for e in &log.errors {
            let kind = e.split(':').next().unwrap_or("error");
            *errors.entry(format!("churn_{kind}")).or_insert(0) += 1;
        }
        let p = measure::presence(&logs, &log);
        report::PresenceReport {
            joins: p.joins,
            leaves: p.leaves,
            notices: p.notices,
            expected: p.expected,
            notices_per_sec: p.notices as f64 / (p.span_us as f64 / 1e6).max(1e-6),
            latency_ms: Percentiles::of(&p.latency_us, 1000.0),
        }
    });
    let report = Report {
        target: match &scenario.url {
            Some(u) => u.clone(),
            None => "local stack (in process)".into(),
        },
        mode: scenario.mode,
        via: scenario.via,
        connections: connected as u64,
        rooms: scenario.rooms as u64,
        messages: scenario.messages as u64,
        payload_bytes: scenario.payload_bytes as u64,
        connect: Connect {
            succeeded: connected as u64,
            failed: failed_connects,
            latency_ms: Percentiles::of(&connect_latency, 1000.0),
        },
        expected,
        deliveries: d.delivered,
        deliveries_per_sec: d.delivered as f64 / span,
        latency_ms: Percentiles::of(&d.latency_us, 1000.0),
        lost: d.lost,
        duplicates: d.duplicates,
        out_of_order: d.out_of_order,
        streams: scenario.streams,
        with_seq: d.with_seq,
        seq_inversions: d.seq_inversions,
        seq_gaps: d.seq_gaps,
        errors,
        // The stack's runtime threads are `stack-*`; everything else in
        // this process is the generator.
        cpu_seconds: cpu
            .into_iter()
            .fold(BTreeMap::new(), |mut m, (group, secs)| {
                let side = if group == "stack" {
                    "stack"
                } else {
                    "generator"
                };
                *m.entry(side.to_string()).or_insert(0.0) += secs;
                m
            }),
        cpu_by_phase: phases.done,
        memory_per_connection_bytes: memory_per_connection,
        elapsed_sec: elapsed,
        estimated_aws_cost: cost::estimate(&usage, &scenario.prices),
        quota,
        presence,
        deliveries_per_100ms: d.per_100ms.clone(),
    };
    Ok((report, d.latency_us))
}
