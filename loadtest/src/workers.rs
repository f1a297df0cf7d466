//! `--workers N`: the generator's clients spread over N worker processes
//! (this binary again, with the hidden `--worker` flag), each holding its
//! share of the sockets under its own open-file limit and on its own
//! runtime. They share the machine's monotonic clock with the publisher,
//! so their receipt times merge with its publish times as they are.
//!
//! The conversation, one JSON line at a time: the parent writes a
//! [`RampPlan`] to the worker's stdin; the worker reports
//! [`Report::Attempted`] while ramping, then [`Report::Ramped`], then
//! [`Report::Delivered`] every 100 ms; a `stop` line (or the end of stdin)
//! makes it close its clients and answer [`Report::Logs`] before exiting.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

use crate::clients::ClientLog;
use crate::ramp::{self, RampPlan, Ramped};

/// How often a worker reports its counts.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// What a worker says on its stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// Connections attempted so far.
    Attempted(u64),
    Ramped(Ramped),
    /// Message frames received so far.
    Delivered(u64),
    Logs(Vec<ClientLog>),
    Failed(String),
}

/// A worker process's side: reads the plan from stdin, ramps, listens,
/// and answers as the module's docs say.
pub async fn serve() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = stdin
        .next_line()
        .await?
        .context("no ramp plan on stdin (a --worker is started by the generator)")?;
    let plan: RampPlan = serde_json::from_str(&line).context("the ramp plan")?;
    crate::system::raise_fd_limit(plan.count as u64 + 64).map_err(anyhow::Error::msg)?;
    let (out, mut lines) = mpsc::unbounded_channel::<Report>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(report) = lines.recv().await {
            let mut line = serde_json::to_vec(&report).expect("reports serialize");
            line.push(b'\n');
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });

    let attempted = Arc::new(AtomicU64::new(0));
    let ticker = every(REPORT_EVERY, out.clone(), {
        let attempted = attempted.clone();
        move || Report::Attempted(attempted.load(Ordering::Relaxed))
    });
    let outcome = ramp::open_here(&plan, &attempted).await;
    ticker.abort();
    let (ramped, mut clients) = match outcome {
        Ok(done) => done,
        Err(error) => {
            let _ = out.send(Report::Failed(format!("{error:#}")));
            drop(out);
            let _ = writer.await;
            return Err(error);
        }
    };
    let _ = out.send(Report::Ramped(ramped));
    let ticker = every(REPORT_EVERY, out.clone(), {
        let delivered = clients.delivered.clone();
        move || Report::Delivered(delivered.load(Ordering::Relaxed))
    });
    // Until `stop`, or the parent is gone.
    while let Ok(Some(line)) = stdin.next_line().await {
        if line.trim() == "stop" {
            break;
        }
    }
    ticker.abort();
    let logs = clients.stop().await?;
    let _ = out.send(Report::Logs(logs));
    drop(out);
    let _ = writer.await;
    Ok(())
}

/// Sends `report()` every `period` until aborted.
fn every(
    period: Duration,
    out: mpsc::UnboundedSender<Report>,
    report: impl Fn() -> Report + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if out.send(report()).is_err() {
                return;
            }
        }
    })
}

/// One worker process, as the parent sees it.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    pid: u32,
    attempted: Arc<AtomicU64>,
    delivered: Arc<AtomicU64>,
    ramped: Option<oneshot::Receiver<Ramped>>,
    logs: oneshot::Receiver<Vec<ClientLog>>,
    /// Why it failed, when it said so.
    failed: Arc<std::sync::Mutex<Option<String>>>,
}

/// The parent's handle on its worker processes.
pub struct Workers {
    workers: Vec<Worker>,
}

impl Workers {
    /// Starts one worker per plan (`binary --worker`) and hands each its
    /// plan.
    pub async fn start(binary: &Path, plans: Vec<RampPlan>) -> anyhow::Result<Self> {
        let mut workers = Vec::with_capacity(plans.len());
        for (n, plan) in plans.into_iter().enumerate() {
            let mut child = Command::new(binary)
                .arg("--worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting worker {n} ({})", binary.display()))?;
            let pid = child.id().context("a worker's process id")?;
            let mut stdin = child.stdin.take().context("a worker's stdin")?;
            let stdout = child.stdout.take().context("a worker's stdout")?;
            let mut line = serde_json::to_vec(&plan)?;
            line.push(b'\n');
            stdin.write_all(&line).await?;
            stdin.flush().await?;
            let attempted = Arc::new(AtomicU64::new(0));
            let delivered = Arc::new(AtomicU64::new(0));
            let failed = Arc::new(std::sync::Mutex::new(None));
            let (ramped_tx, ramped) = oneshot::channel();
            let (logs_tx, logs) = oneshot::channel();
            tokio::spawn(read_reports(
                BufReader::new(stdout),
                attempted.clone(),
                delivered.clone(),
                failed.clone(),
                ramped_tx,
                logs_tx,
            ));
            workers.push(Worker {
                child,
                stdin,
                pid,
                attempted,
                delivered,
                ramped: Some(ramped),
                logs,
                failed,
            });
        }
        Ok(Self { workers })
    }

    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.pid).collect()
    }

    /// Each worker's count of connections attempted so far.
    pub fn attempted_counters(&self) -> Vec<Arc<AtomicU64>> {
        self.workers.iter().map(|w| w.attempted.clone()).collect()
    }

    /// Message frames received so far, by all workers.
    pub fn delivered(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.delivered.load(Ordering::Relaxed))
            .sum()
    }

    /// Waits for every worker's ramp and merges them.
    pub async fn ramped(&mut self, rooms: usize) -> anyhow::Result<Ramped> {
        let mut merged = Ramped {
            members: vec![0; rooms],
            ..Ramped::default()
        };
        for (n, w) in self.workers.iter_mut().enumerate() {
            let Some(ramped) = w.ramped.take() else {
                bail!("worker {n}'s ramp was already taken");
            };
            let r = ramped.await.map_err(|_| ended(n, &w.failed))?;
            for (room, count) in r.members.into_iter().enumerate() {
                merged.members[room] += count;
            }
            merged.connect_latency_us.extend(r.connect_latency_us);
            for (kind, count) in r.connect_errors {
                *merged.connect_errors.entry(kind).or_default() += count;
            }
            if merged.first_error.is_none() {
                merged.first_error = r.first_error;
            }
        }
        Ok(merged)
    }

    /// Tells every worker to stop and collects what their clients saw.
    /// The processes are left to be reaped by [`Workers::finish`], so
    /// their CPU time can still be read.
    pub async fn stop(&mut self) -> anyhow::Result<Vec<ClientLog>> {
        for w in &mut self.workers {
            // A worker that is already gone says why below.
            let _ = w.stdin.write_all(b"stop\n").await;
            let _ = w.stdin.flush().await;
        }
        let mut logs = Vec::new();
        for (n, w) in self.workers.iter_mut().enumerate() {
            let (_, placeholder) = oneshot::channel();
            let receiver = std::mem::replace(&mut w.logs, placeholder);
            logs.extend(receiver.await.map_err(|_| ended(n, &w.failed))?);
        }
        Ok(logs)
    }

    /// Waits for the processes to exit.
    pub async fn finish(self) -> anyhow::Result<()> {
        for (n, mut w) in self.workers.into_iter().enumerate() {
            drop(w.stdin);
            let status = w.child.wait().await?;
            if !status.success() {
                bail!("worker {n} exited with {status}");
            }
        }
        Ok(())
    }
}

fn ended(n: usize, failed: &std::sync::Mutex<Option<String>>) -> anyhow::Error {
    match failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(why) => anyhow::anyhow!("worker {n} failed: {why}"),
        None => anyhow::anyhow!("worker {n} ended without reporting (see its stderr above)"),
    }
}

async fn read_reports(
    stdout: BufReader<tokio::process::ChildStdout>,
    attempted: Arc<AtomicU64>,
    delivered: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Option<String>>>,
    ramped: oneshot::Sender<Ramped>,
    logs: oneshot::Sender<Vec<ClientLog>>,
) {
    let mut ramped = Some(ramped);
    let mut logs = Some(logs);
    let mut lines = stdout.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<Report>(&line) {
            Ok(Report::Attempted(n)) => attempted.store(n, Ordering::Relaxed),
            Ok(Report::Delivered(n)) => delivered.store(n, Ordering::Relaxed),
            Ok(Report::Ramped(r)) => {
                attempted.store(
                    r.connect_latency_us.len() as u64 + r.connect_errors.values().sum::<u64>(),
                    Ordering::Relaxed,
                );
                if let Some(tx) = ramped.take() {
                    let _ = tx.send(r);
                }
            }
            Ok(Report::Logs(l)) => {
                if let Some(tx) = logs.take() {
                    let _ = tx.send(l);
                }
            }
            Ok(Report::Failed(why)) => {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            }
            Err(error) => {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("an unreadable report ({error})"));
            }
        }
    }
}

/// Splits clients `0 .. connections` into `workers` contiguous shares,
/// each opening at its part of `rate`.
pub fn split(template: &RampPlan, connections: usize, workers: usize) -> Vec<RampPlan> {
    let workers = workers.clamp(1, connections.max(1));
    let base = connections / workers;
    let extra = connections % workers;
    let mut first = 0;
    (0..workers)
        .map(|n| {
            let count = base + usize::from(n < extra);
            let plan = RampPlan {
                first,
                count,
                rate: template.rate * count as f64 / connections.max(1) as f64,
                ..template.clone()
            };
            first += count;
            plan
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ramp::Tokens;

    #[test]
    fn shares_cover_every_client_once_at_the_whole_rate() {
        let template = RampPlan {
            url: "ws://127.0.0.1:1/local".into(),
            tokens: Tokens {
                tenant: "t".into(),
                secret: "s".into(),
                token: None,
            },
            first: 0,
            count: 10,
            rooms: 3,
            rate: 1000.0,
            sources: 1,
            time_base_us: 0,
            start_at_us: 0,
        };
        let plans = split(&template, 10, 3);
        let ranges: Vec<_> = plans.iter().map(|p| (p.first, p.count)).collect();
        assert_eq!(ranges, vec![(0, 4), (4, 3), (7, 3)]);
        let rate: f64 = plans.iter().map(|p| p.rate).sum();
        assert!((rate - 1000.0).abs() < 1e-9);
        assert_eq!(split(&template, 2, 5).len(), 2, "no worker without clients");
    }
}
