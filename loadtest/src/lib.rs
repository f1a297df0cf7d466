//! # fanout-loadtest
//!
//! Drives real WebSocket connections through fanout and measures delivery.
//!
//! # Layout
//! - [`config`]: the flags (scenario, target, prices).
//! - [`system`]: the open-file limit and per-thread-group CPU time.
//! - [`clients`]: opening, joining and listening connections.
//! - [`ramp`]: opening a share of the run's connections at its rate.
//! - [`workers`]: `--workers N`, the clients spread over worker processes.
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
pub mod ramp;
pub mod report;
pub mod system;
pub mod workers;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fanout_core::ids::{TenantId, UserId};
use fanout_core::settings::{JobSettings, StoreSettings};
use fanout_core::token::{DEV_JWT_SECRET, TokenSigner, check_secret};
use fanout_local::{RunningStack, StackConfig};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{Mode, Scenario, Via};
use crate::measure::Percentiles;
use crate::publish::{Publisher, room_name};
use crate::report::{Connect, Report};

/// How long the listeners keep listening after the last churner left.
const PRESENCE_DRAIN: Duration = Duration::from_secs(2);

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

/// CPU and wall time per phase of a run, as they end.
struct Phases {
    stack_pid: Option<u32>,
    worker_pids: Vec<u32>,
    cpu: system::CpuSplit,
    at: Instant,
    done: Vec<report::PhaseCpu>,
}

impl Phases {
    fn start(stack_pid: Option<u32>, worker_pids: Vec<u32>) -> Self {
        Self {
            cpu: system::CpuSplit::now(stack_pid, &worker_pids),
            stack_pid,
            worker_pids,
            at: Instant::now(),
            done: Vec::new(),
        }
    }

    fn end(&mut self, phase: &'static str) {
        let cpu = system::CpuSplit::now(self.stack_pid, &self.worker_pids);
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

/// The run's clients: held here, or by worker processes.
enum Clients {
    Here(ramp::HeldClients),
    Workers(workers::Workers),
}

impl Clients {
    fn delivered(&self) -> u64 {
        match self {
            Clients::Here(held) => held.delivered.load(Ordering::Relaxed),
            Clients::Workers(workers) => workers.delivered(),
        }
    }

    async fn stop(&mut self) -> anyhow::Result<Vec<clients::ClientLog>> {
        match self {
            Clients::Here(held) => held.stop().await,
            Clients::Workers(workers) => workers.stop().await,
        }
    }

    async fn finish(self) -> anyhow::Result<()> {
        match self {
            Clients::Here(_) => Ok(()),
            Clients::Workers(workers) => workers.finish().await,
        }
    }
}

/// The stack's CPU per delivery, µs: its CPU while publishing and
/// delivering (not ramping or closing) over the deliveries.
fn stack_cpu_per_delivery(phases: &[report::PhaseCpu], deliveries: u64) -> Option<f64> {
    let stack: f64 = phases
        .iter()
        .filter(|p| p.phase == "publish" || p.phase == "drain")
        .map(|p| p.stack)
        .sum();
    (deliveries > 0 && stack > 0.0).then(|| stack * 1e6 / deliveries as f64)
}

/// Runs the scenario end to end and returns its report.
pub async fn run(scenario: &Scenario) -> anyhow::Result<(Report, Histogram<u64>)> {
    scenario.validate().map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let local = match scenario.url {
        None => {
            // The stack's end of every socket is in this process, and the
            // clients' end too unless worker processes hold them.
            let ends = if scenario.workers > 0 { 1 } else { 2 };
            system::raise_fd_limit(ends * scenario.connections as u64 + 256)
                .map_err(anyhow::Error::msg)?;
            Some(start_local(scenario).await?)
        }
        Some(_) => {
            if scenario.workers == 0 {
                system::raise_fd_limit(scenario.connections as u64 + 256)
                    .map_err(anyhow::Error::msg)?;
            }
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
    let tokens = ramp::Tokens {
        tenant: scenario.tenant.clone(),
        secret: secret.to_string(),
        token: scenario.token.clone(),
    };

    // Ramp: open and join every connection at --ramp-rate.
    let sources = scenario.source_address_count();
    let time_base_us = system::monotonic_us();
    let plan = ramp::RampPlan {
        url: url.clone(),
        tokens: tokens.clone(),
        first: 0,
        count: scenario.connections,
        rooms: scenario.rooms,
        rate: f64::from(scenario.ramp_rate),
        sources,
        time_base_us,
        // Worker processes need a moment to start.
        start_at_us: time_base_us + if scenario.workers > 0 { 300_000 } else { 0 },
    };
    let stack_rss = || match (&local, scenario.stack_pid) {
        (Some(_), _) => system::resident_bytes("self"),
        (None, Some(pid)) => system::resident_bytes(&pid.to_string()),
        (None, None) => None,
    };
    let rss_before = stack_rss();
    let ramp = bar(scenario, scenario.connections as u64, "connecting");
    let (ramped, mut listeners, mut phases) = if scenario.workers > 0 {
        let binary = match &scenario.worker_binary {
            Some(path) => path.clone(),
            None => std::env::current_exe().context("this binary's path, for --workers")?,
        };
        let plans = workers::split(&plan, scenario.connections, scenario.workers);
        let mut workers = workers::Workers::start(&binary, plans).await?;
        let phases = Phases::start(scenario.stack_pid, workers.pids());
        let ramped = {
            let attempted = workers.attempted_counters();
            let progress = async {
                loop {
                    ramp.set_position(attempted.iter().map(|c| c.load(Ordering::Relaxed)).sum());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            tokio::select! {
                _ = progress => unreachable!("the progress loop never ends"),
                ramped = workers.ramped(scenario.rooms) => ramped?,
            }
        };
        (ramped, Clients::Workers(workers), phases)
    } else {
        let phases = Phases::start(scenario.stack_pid, Vec::new());
        let attempted = AtomicU64::new(0);
        let opening = ramp::open_here(&plan, &attempted);
        tokio::pin!(opening);
        let (ramped, held) = loop {
            tokio::select! {
                done = &mut opening => break done?,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    ramp.set_position(attempted.load(Ordering::Relaxed));
                }
            }
        };
        (ramped, Clients::Here(held), phases)
    };
    ramp.finish_and_clear();
    phases.end("ramp");
    if let Some(error) = &ramped.first_error {
        eprintln!("first connection error: {error}");
    }
    let connected = ramped.connect_latency_us.len();
    let connect_errors = ramped.connect_errors;
    let members = ramped.members;
    let mut connect_latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for us in &ramped.connect_latency_us {
        let _ = connect_latency.record(*us);
    }
    if connected == 0 {
        bail!("no connection succeeded (errors: {connect_errors:?})");
    }
    let memory_per_connection = rss_before
        .zip(stack_rss())
        .map(|(before, after)| after.saturating_sub(before) / connected as u64);

    // Publish.
    let mut publisher = match (scenario.mode, scenario.via) {
        (Mode::Direct, _) => {
            let local = local.as_ref().expect("validated");
            let resources = local.stack.resources.clone();
            publish::direct(resources, tenant.clone(), local.runtime.handle().clone())
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
                let token = tokens.for_client(scenario.connections + room)?;
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
            time_base_us,
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
        let at = system::monotonic_us() - time_base_us;
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
        let got = listeners.delivered();
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
    phases.end("drain");
    let logs = listeners.stop().await?;
    phases.end("close");
    listeners.finish().await?;
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
    if publisher.failed_posts() > 0 {
        errors.insert("direct_post_failed".into(), publisher.failed_posts());
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
        cpu_seconds: BTreeMap::from([
            (
                "stack".to_string(),
                phases.done.iter().map(|p| p.stack).sum(),
            ),
            (
                "generator".to_string(),
                phases.done.iter().map(|p| p.generator).sum(),
            ),
        ]),
        stack_cpu_us_per_delivery: stack_cpu_per_delivery(&phases.done, d.delivered),
        cpu_by_phase: phases.done,
        memory_per_connection_bytes: memory_per_connection,
        memory_of: if scenario.url.is_none() && scenario.workers == 0 {
            "stack and clients"
        } else {
            "stack"
        },
        elapsed_sec: elapsed,
        estimated_aws_cost: cost::estimate(&usage, &scenario.prices),
        quota,
        presence,
        deliveries_per_100ms: d.per_100ms.clone(),
    };
    Ok((report, d.latency_us))
}
