//! `fanout dlq`: what on-call does with dead-letter queues, on AWS, on an
//! AWS-compatible endpoint (moto), or on the local stack (whose endpoint
//! serves the SQS operations these need).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use clap::{Args, Subcommand};
use fanout_aws::SqsQueue;
use fanout_aws::dlq;
use fanout_core::clock::{Clock, SystemClock};
use fanout_core::ports::Queue;

#[derive(Args)]
pub struct Connection {
    /// SQS endpoint URL: the local stack (http://127.0.0.1:3001) or an
    /// AWS-compatible server. Omit for AWS.
    #[arg(long, env = "FANOUT_SQS_ENDPOINT", global = true, value_parser = fanout_aws::parse_endpoint_url)]
    endpoint: Option<String>,
    /// AWS region (default: from the environment or profile).
    #[arg(long, global = true)]
    region: Option<String>,
    /// AWS profile from ~/.aws/config.
    #[arg(long, global = true)]
    profile: Option<String>,
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// List every dead-letter queue with its depth and the queue it
    /// collects from.
    List {
        /// Only queues whose names start with this (e.g. the stack name).
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Show up to N messages of a queue without consuming them: event id,
    /// why it failed, failed connections, attempts and age.
    Show {
        /// Queue name or URL.
        queue: String,
        #[arg(short = 'n', long, default_value_t = 10)]
        count: usize,
    },
    /// Move messages back to the queue that dead-lettered them (or --to).
    /// Starts SQS's own redrive (StartMessageMoveTask) and prints its
    /// progress; where that cannot run (moto, a queue that is no queue's
    /// DLQ such as the bus's, or with --max) moves them in batches,
    /// deleting each from the dead-letter queue only once it is sent.
    Redrive {
        /// Dead-letter queue name or URL.
        queue: String,
        /// Destination queue (default: the queue whose redrive policy
        /// targets this one; required for the bus's dead-letter queue).
        #[arg(long)]
        to: Option<String>,
        /// At most this many messages per second.
        #[arg(long)]
        rate: Option<u32>,
        /// Move at most this many messages.
        #[arg(long)]
        max: Option<usize>,
    },
}

pub async fn run(connection: Connection, command: DlqCommand) -> anyhow::Result<()> {
    let client = client(&connection).await;
    match command {
        DlqCommand::List { prefix } => list(&client, &prefix).await,
        DlqCommand::Show { queue, count } => show(&client, &queue, count).await,
        DlqCommand::Redrive {
            queue,
            to,
            rate,
            max,
        } => redrive(&client, &queue, to.as_deref(), rate, max).await,
    }
}

async fn client(c: &Connection) -> aws_sdk_sqs::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(profile) = &c.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &c.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &c.endpoint {
        // Local endpoints accept any credentials; supply dummies so no
        // credential chain is needed.
        loader = loader.endpoint_url(endpoint);
        if c.region.is_none() {
            loader = loader.region(aws_config::Region::new("us-east-1"));
        }
        if c.profile.is_none() {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "fanout-cli",
            ));
        }
    }
    aws_sdk_sqs::Client::new(&loader.load().await)
}

fn sdk_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E, R>) -> anyhow::Error {
    let what = what.to_string();
    move |e| anyhow::anyhow!("{what}: {}", fanout_aws::describe(&e))
}

/// A queue's name, given its name or URL.
fn queue_name(queue: &str) -> &str {
    queue.rsplit('/').next().unwrap_or(queue)
}

struct QueueInfo {
    name: String,
    arn: String,
    visible: u64,
    in_flight: u64,
    delayed: u64,
    dead_letter_target: Option<String>,
}

async fn queues(client: &aws_sdk_sqs::Client, prefix: &str) -> anyhow::Result<Vec<QueueInfo>> {
    let mut urls = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_queues()
            .queue_name_prefix(prefix)
            .set_next_token(token)
            .send()
            .await
            .map_err(sdk_error("ListQueues"))?;
        urls.extend(out.queue_urls.unwrap_or_default());
        match out.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let mut infos = Vec::new();
    for url in urls {
        let attributes = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(sdk_error("GetQueueAttributes"))?
            .attributes
            .unwrap_or_default();
        let count = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let dead_letter_target = attributes
            .get(&QueueAttributeName::RedrivePolicy)
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_owned));
        infos.push(QueueInfo {
            name: queue_name(&url).to_string(),
            arn: attributes
                .get(&QueueAttributeName::QueueArn)
                .cloned()
                .unwrap_or_default(),
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            dead_letter_target,
        });
    }
    Ok(infos)
}

/// Dead-letter queues: targets of a redrive policy, or named like one
/// (the bus's, which an EventBridge rule targets, not a queue).
fn is_dead_letter_queue(q: &QueueInfo, all: &[QueueInfo]) -> bool {
    let lower = q.name.to_lowercase();
    all.iter()
        .any(|s| s.dead_letter_target.as_deref() == Some(q.arn.as_str()))
        || lower.contains("dlq")
        || lower.contains("deadletter")
}

async fn list(client: &aws_sdk_sqs::Client, prefix: &str) -> anyhow::Result<()> {
    let all = queues(client, prefix).await?;
    let sources: HashMap<&str, &str> = all
        .iter()
        .filter_map(|s| {
            s.dead_letter_target
                .as_deref()
                .map(|t| (t, s.name.as_str()))
        })
        .collect();
    let dlqs: Vec<&QueueInfo> = all
        .iter()
        .filter(|q| is_dead_letter_queue(q, &all))
        .collect();
    if dlqs.is_empty() {
        println!(
            "no dead-letter queues{}",
            if prefix.is_empty() {
                String::new()
            } else {
                format!(" starting with '{prefix}'")
            }
        );
        return Ok(());
    }
    println!(
        "{:<48} {:>9} {:>9} {:>8}  collects from",
        "dead-letter queue", "messages", "in flight", "delayed"
    );
    for q in dlqs {
        println!(
            "{:<48} {:>9} {:>9} {:>8}  {}",
            q.name,
            q.visible,
            q.in_flight,
            q.delayed,
            sources
                .get(q.arn.as_str())
                .copied()
                .unwrap_or("(an EventBridge rule target)")
        );
    }
    Ok(())
}

async fn show(client: &aws_sdk_sqs::Client, queue: &str, count: usize) -> anyhow::Result<()> {
    let q = SqsQueue::open(client.clone(), queue_name(queue)).await?;
    let messages = dlq::peek(&q, count).await?;
    let depth = q.depth().await?;
    if messages.is_empty() {
        if depth.total() == 0 {
            println!("{} is empty", q.name());
        } else {
            println!(
                "{} has no message to show now: {} in flight (received by someone else; visible again after their visibility timeout), {} delayed",
                q.name(),
                depth.in_flight,
                depth.delayed
            );
        }
        return Ok(());
    }
    for m in &messages {
        println!("{}\n", dlq::describe(m, SystemClock.now_ms()));
    }
    println!(
        "showed {} of {} message(s) in {}; none was deleted, but as in SQS each shown message's receive count went up by one",
        messages.len(),
        depth.total(),
        q.name()
    );
    Ok(())
}

async fn redrive(
    client: &aws_sdk_sqs::Client,
    queue: &str,
    to: Option<&str>,
    rate: Option<u32>,
    max: Option<usize>,
) -> anyhow::Result<()> {
    let from = SqsQueue::open(client.clone(), queue_name(queue)).await?;
    let destination = match to {
        Some(to) => queue_name(to).to_string(),
        None => {
            let all = queues(client, "").await?;
            let arn = from.arn();
            match all
                .iter()
                .find(|s| s.dead_letter_target.as_deref() == Some(arn.as_str()))
            {
                Some(source) => source.name.clone(),
                None => bail!(
                    "no queue dead-letters into {}; give the destination with --to (for the bus's dead-letter queue, the plan queue)",
                    from.name()
                ),
            }
        }
    };
    let to_queue = SqsQueue::open(client.clone(), &destination)
        .await
        .with_context(|| format!("destination queue {destination}"))?;
    if max.is_some() {
        eprintln!("--max given: moving batch by batch (a move task always moves everything)");
    } else {
        // SQS's own redrive: one request starts it, SQS moves the messages
        // (and whatever arrives meanwhile) and reports progress.
        let destination_arn = to.map(|_| to_queue.arn());
        match start_move_task(client, &from.arn(), destination_arn.as_deref(), rate).await? {
            Ok(handle) => return follow_move_task(client, &from, &to_queue, &handle).await,
            Err(reason) => eprintln!(
                "StartMessageMoveTask is not available for {} ({reason}); moving batch by batch instead",
                from.name()
            ),
        }
    }
    move_batches(&from, &to_queue, rate, max).await
}

/// Starts SQS's move task; `Err` with the service's reason when the
/// endpoint or the queue does not support one (moto; a queue that is no
/// queue's dead-letter queue, such as the bus's). Network errors fail.
async fn start_move_task(
    client: &aws_sdk_sqs::Client,
    source_arn: &str,
    destination_arn: Option<&str>,
    rate: Option<u32>,
) -> anyhow::Result<Result<String, String>> {
    let started = client
        .start_message_move_task()
        .source_arn(source_arn)
        .set_destination_arn(destination_arn.map(str::to_string))
        .set_max_number_of_messages_per_second(rate.map(|r| r as i32))
        .send()
        .await;
    match started {
        Ok(output) => Ok(output
            .task_handle
            .ok_or_else(|| "StartMessageMoveTask returned no task handle".to_string())),
        Err(aws_sdk_sqs::error::SdkError::ServiceError(e)) => {
            Ok(Err(fanout_aws::describe(e.err())))
        }
        Err(other) => Err(anyhow::anyhow!(
            "StartMessageMoveTask: {}",
            fanout_aws::describe(&other)
        )),
    }
}

/// How often a running move task's progress is read.
const MOVE_TASK_POLL: Duration = Duration::from_secs(1);

/// Reports a move task's progress until it ends.
async fn follow_move_task(
    client: &aws_sdk_sqs::Client,
    from: &SqsQueue,
    to: &SqsQueue,
    handle: &str,
) -> anyhow::Result<()> {
    eprintln!(
        "move task started: {} -> {} (task {handle})",
        from.name(),
        to.name()
    );
    let mut last = None;
    loop {
        let listed = client
            .list_message_move_tasks()
            .source_arn(from.arn())
            .max_results(1)
            .send()
            .await
            .map_err(sdk_error("ListMessageMoveTasks"))?;
        let Some(task) = listed.results.unwrap_or_default().into_iter().next() else {
            bail!("the move task of {} is not listed", from.name());
        };
        let moved = task.approximate_number_of_messages_moved;
        let to_move = task.approximate_number_of_messages_to_move.unwrap_or(0);
        let status = task.status.unwrap_or_default();
        if last != Some((moved, status.clone())) {
            eprintln!("  {status}: moved {moved} of ~{to_move}");
            last = Some((moved, status.clone()));
        }
        match status.as_str() {
            "RUNNING" | "CANCELLING" => tokio::time::sleep(MOVE_TASK_POLL).await,
            "COMPLETED" => {
                println!(
                    "redrove {moved} message(s) from {} to {}",
                    from.name(),
                    to.name()
                );
                return Ok(());
            }
            other => bail!(
                "the move task ended {other} after {moved} message(s): {}",
                task.failure_reason
                    .unwrap_or_else(|| "no reason given".into())
            ),
        }
    }
}

/// Receive, send, delete: where no move task can run, or with --max.
async fn move_batches(
    from: &SqsQueue,
    to: &SqsQueue,
    rate: Option<u32>,
    max: Option<usize>,
) -> anyhow::Result<()> {
    let total = from.depth().await?.visible;
    let limit = max.unwrap_or(usize::MAX);
    eprintln!(
        "moving up to {} of {total} message(s) from {} to {}{}",
        if limit == usize::MAX {
            total.to_string()
        } else {
            limit.to_string()
        },
        from.name(),
        to.name(),
        rate.map(|r| format!(" at {r}/s")).unwrap_or_default()
    );
    // In batches, so progress shows on long redrives.
    let mut moved = 0;
    while moved < limit {
        let batch = (limit - moved).min(100);
        let n = dlq::redrive(from, to, batch, rate).await?;
        if n == 0 {
            break;
        }
        moved += n;
        eprintln!("  moved {moved}");
        tokio::time::sleep(Duration::ZERO).await;
    }
    println!(
        "redrove {moved} message(s) from {} to {}",
        from.name(),
        to.name()
    );
    Ok(())
}
