//! Quota benchmark: the local stack behind the AWS-quota emulation
//! (`--quota-rps 10000 --quota-burst 5000` by default), broadcasting to one
//! large room of in-process connections. Reports sustained deliveries per
//! second as a fraction of the quota, the share of @connections calls the
//! quota refused, and how many deliveries were lost or duplicated.
//!
//!     cargo bench -p fanout-local --bench quota -- --members 20000 --broadcasts 10
//!
//! Flags after `--` are this benchmark's, then any `fanout-local` flag.

use std::time::{Duration, Instant};

use clap::Parser;
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::metrics;
use fanout_core::ports::{BusEntry, EventBus, publish};
use fanout_local::StackConfig;
use fanout_local::inprocess::InProcessClient;
use tokio::net::TcpListener;

/// Broadcast to one large room under the emulated @connections quota.
#[derive(Debug, Parser)]
struct Args {
    /// Connections in the room.
    #[arg(long, default_value_t = 20_000)]
    members: usize,

    /// Broadcasts published at once.
    #[arg(long, default_value_t = 10)]
    broadcasts: usize,

    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,

    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,

    #[command(flatten)]
    stack: StackConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.stack.quota_rps.is_none() {
        args.stack.quota_rps = Some(10_000);
        args.stack.quota_burst = Some(5_000);
    }
    args.stack.port = 0;
    let quota = args.stack.quota().expect("quota set above");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let stack = fanout_local::start(args.stack.clone(), listener).await?;
    let r = stack.resources.clone();

    let tenant = TenantId::new("bench")?;
    let room = RoomId::new("arena")?;
    let mut clients = Vec::with_capacity(args.members);
    for i in 0..args.members {
        let id = ConnectionId::new(format!("bench{i:06}="))?;
        let user = UserId::new(format!("u{i}"))?;
        // Room for every broadcast plus duplicates, so no post is refused
        // for a full buffer.
        let capacity = args.broadcasts * 2 + 8;
        clients.push(InProcessClient::join(&r, id, &tenant, user, &room, capacity, false).await?);
    }
    let expected = args.members * args.broadcasts;
    println!(
        "room of {} members, {} broadcasts = {expected} deliveries; quota {}/s burst {}; \
         {} broadcaster workers at {:?} each",
        args.members,
        args.broadcasts,
        quota.per_second,
        quota.burst,
        args.stack.budget.broadcaster_concurrency,
        args.stack.budget.worker_rate().map(|r| r.per_second),
    );

    let detail =
        serde_json::json!({"tenant": "bench", "target": {"room": "arena"}, "data": {"n": 1}})
            .to_string();
    let entries: Vec<BusEntry> = (0..args.broadcasts)
        .map(|_| BusEntry::new("bench.quota", "fanout.broadcast", detail.clone()))
        .collect();
    let started = Instant::now();
    let bus: &dyn EventBus = r.bus.as_ref();
    let event_ids = publish(bus, &entries).await?;

    let deadline = started + Duration::from_secs(args.timeout);
    let mut last_report = Instant::now();
    while r.in_flight().await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            println!(
                "  {:>5.1} s: {} delivered",
                started.elapsed().as_secs_f64(),
                r.metrics.count(metrics::DELIVERED)
            );
        }
    }
    let elapsed = started.elapsed();

    let (mut unique, mut duplicates) = (0usize, 0usize);
    for client in &mut clients {
        let mut got = client.received();
        let total = got.len();
        got.sort();
        got.dedup();
        got.retain(|id| event_ids.contains(id));
        unique += got.len();
        duplicates += total - got.len();
    }
    let lost = expected - unique;
    let stats = r.quota.as_ref().expect("quota on").stats();
    let calls = stats.accepted + stats.throttled;
    // The bucket starts full: its burst is free, so the sustained rate
    // leaves it out.
    let sustained = (unique as f64 - f64::from(quota.burst.get())).max(0.0) / elapsed.as_secs_f64();
    println!();
    println!("elapsed                 {:.2} s", elapsed.as_secs_f64());
    println!("deliveries              {unique} of {expected}");
    println!(
        "deliveries/s            {:.0} overall, {sustained:.0} sustained (after the burst)",
        unique as f64 / elapsed.as_secs_f64()
    );
    println!(
        "fraction of the quota   {:.1} %",
        100.0 * sustained / f64::from(quota.per_second.get())
    );
    println!(
        "@connections calls      {calls}, throttled {} ({:.2} %)",
        stats.throttled,
        100.0 * stats.throttled as f64 / calls.max(1) as f64
    );
    println!("lost                    {lost}");
    println!("duplicates              {duplicates}");
    println!("dead letters            {}", r.dead_letters().await?);
    stack.stop().await;
    if lost > 0 {
        anyhow::bail!("{lost} deliveries lost");
    }
    Ok(())
}
