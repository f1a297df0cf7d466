//! Poster benchmark: what one broadcaster worker costs per delivered post.
//! `ApiGatewayPoster` (the broadcaster's real @connections client: SigV4
//! signing, the SDK's HTTP client) posts to the local stack's @connections
//! endpoint with `--in-flight` posts outstanding, from a single-threaded
//! runtime on a thread of its own, whose CPU time is read with
//! `CLOCK_THREAD_CPUTIME_ID`: the posting side alone, apart from the stack
//! (its own runtime and threads in this process) that answers.
//!
//!     cargo bench -p fanout-local --bench poster -- --posts 100000
//!
//! Reports posts/s, CPU µs per post on the posting thread, and what that
//! means at Lambda's CPU share for the broadcaster's memory size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use fanout_aws::ApiGatewayPoster;
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::ports::ConnectionPoster;
use fanout_local::StackConfig;
use fanout_local::inprocess::InProcessClient;
use futures::StreamExt;
use tokio::net::TcpListener;

/// Lambda's CPU share: one vCPU at 1,769 MB, proportional below.
const MB_PER_VCPU: f64 = 1769.0;

/// One worker's posts through the real @connections client.
#[derive(Debug, Parser)]
struct Args {
    /// Posts to measure (after a warm-up of 2,000).
    #[arg(long, default_value_t = 100_000)]
    posts: usize,
    /// Posts outstanding at once (the broadcaster's FANOUT_MAX_IN_FLIGHT).
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Connections the posts go to, round robin.
    #[arg(long, default_value_t = 1_000)]
    connections: usize,
    /// Bytes of each frame.
    #[arg(long, default_value_t = 256)]
    frame_bytes: usize,
    /// The broadcaster's memory size, for the CPU-share figures.
    #[arg(long, default_value_t = 256)]
    memory_mb: u32,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is available on Linux");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Measured {
    ok: usize,
    failed: usize,
    wall: Duration,
    cpu: Duration,
}

async fn post_all(
    poster: &ApiGatewayPoster,
    ids: &[ConnectionId],
    frame: &Bytes,
    posts: usize,
    in_flight: usize,
) -> Measured {
    let (wall, cpu) = (Instant::now(), thread_cpu());
    let results: Vec<bool> = futures::stream::iter(0..posts)
        .map(|i| async move { poster.post(&ids[i % ids.len()], frame).await.is_ok() })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let ok = results.iter().filter(|r| **r).count();
    Measured {
        ok,
        failed: posts - ok,
        wall: wall.elapsed(),
        cpu: thread_cpu() - cpu,
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The stack answers on a runtime of its own (one worker thread).
    let stack_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (stack, clients, ids) = stack_runtime.block_on(async {
        let config = <StackConfig as clap::Parser>::parse_from(["fanout-local", "--port", "0"]);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let stack = fanout_local::start(config, listener).await?;
        let tenant = TenantId::new("bench")?;
        let room = RoomId::new("arena")?;
        let mut clients = Vec::new();
        let mut ids = Vec::new();
        for i in 0..args.connections {
            let id = ConnectionId::new(format!("post{i:06}="))?;
            let user = UserId::new(format!("u{i}"))?;
            ids.push(id.clone());
            clients.push(
                InProcessClient::join(&stack.resources, id, &tenant, user, &room, 4096, false)
                    .await?,
            );
        }
        anyhow::Ok((stack, clients, ids))
    })?;
    // Readers that keep every connection's buffer from filling (a full
    // one would answer 429).
    let clients = Arc::new(std::sync::Mutex::new(clients));
    let draining = {
        let clients = clients.clone();
        stack_runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                for c in clients.lock().unwrap().iter_mut() {
                    c.received();
                }
            }
        })
    };

    let endpoint = stack.management_url();
    let frame = Bytes::from(format!(
        r#"{{"type":"message","id":"bench","data":"{}"}}"#,
        "x".repeat(args.frame_bytes.saturating_sub(40))
    ));
    let frame_bytes = frame.len();
    let (posts, in_flight) = (args.posts, args.in_flight);
    let measured = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        runtime.block_on(async {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
                    "bench", "bench", None, None, "bench",
                ))
                .load()
                .await;
            let poster = ApiGatewayPoster::for_endpoint(&sdk, &endpoint, Duration::from_secs(3));
            post_all(&poster, &ids, &frame, 2_000, in_flight).await;
            post_all(&poster, &ids, &frame, posts, in_flight).await
        })
    })
    .join()
    .expect("the posting thread");

    draining.abort();
    stack_runtime.block_on(stack.stop());

    let per_post_us = measured.cpu.as_secs_f64() * 1e6 / measured.ok.max(1) as f64;
    let posts_per_s = measured.ok as f64 / measured.wall.as_secs_f64();
    let share = f64::from(args.memory_mb) / MB_PER_VCPU;
    println!(
        "{} posts ({} failed) at {} in flight to {} connections, {}-byte frames",
        measured.ok, measured.failed, args.in_flight, args.connections, frame_bytes
    );
    println!(
        "wall {:.2} s: {:.0} posts/s on one posting thread",
        measured.wall.as_secs_f64(),
        posts_per_s
    );
    println!(
        "posting thread CPU {:.2} s: {:.1} µs per post ({:.0} posts per CPU-second)",
        measured.cpu.as_secs_f64(),
        per_post_us,
        1e6 / per_post_us
    );
    println!(
        "at {} MB ({:.3} vCPU): at most {:.0} posts/s per worker by CPU; a 500-connection job costs {:.0} ms of CPU",
        args.memory_mb,
        share,
        1e6 / per_post_us * share,
        500.0 * per_post_us / share / 1000.0
    );
    Ok(())
}
