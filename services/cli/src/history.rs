//! `fanout history`: a page of a room's stream, as a service reads it —
//! from the local stack's history endpoint (`--stack-url`), or straight
//! from the DynamoDB table (`--table`, on AWS or moto). Prints one message
//! frame per line, oldest first, and a summary on stderr.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use fanout_aws::DynamoStore;
use fanout_aws::http::HttpGet;
use fanout_core::clock::SystemClock;
use fanout_core::ids::{RoomId, TenantId};
use fanout_core::protocol::HistoryRange;
use fanout_core::settings::StreamSettings;
use fanout_core::stream;

/// Largest history reply read from the local stack (one 128 KB frame).
const MAX_REPLY_BYTES: usize = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["stack_url", "table"])))]
pub struct HistoryArgs {
    /// The local stack's HTTP URL, e.g. http://127.0.0.1:3001.
    #[arg(long, env = "FANOUT_STACK_URL")]
    stack_url: Option<String>,
    /// The DynamoDB table of a deployed stack (or of `--backend aws`).
    #[arg(long, env = "FANOUT_TABLE")]
    table: Option<String>,
    /// With --table: a DynamoDB-compatible endpoint (e.g. moto's server).
    /// Omit for AWS (region and credentials from the environment).
    #[arg(long, value_parser = fanout_aws::parse_endpoint_url)]
    dynamodb_endpoint: Option<String>,
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    room: String,
    /// The page just before this seq (default: the newest page).
    #[arg(long, conflicts_with = "after")]
    before: Option<u64>,
    /// The page just after this seq.
    #[arg(long)]
    after: Option<u64>,
    /// Most messages in the page (capped at --history-max-page).
    #[arg(long)]
    limit: Option<usize>,
    /// With --table: the deployment's stream settings (the same variables
    /// its functions read), for the per-room cap and the page size.
    #[command(flatten)]
    stream: StreamSettings,
}

pub async fn run(args: HistoryArgs) -> anyhow::Result<()> {
    let tenant = TenantId::new(args.tenant.as_str()).context("--tenant")?;
    let room = RoomId::new(args.room.as_str()).context("--room")?;
    let range = match (args.before, args.after) {
        (Some(b), _) => HistoryRange::Before(b),
        (_, Some(a)) => HistoryRange::After(a),
        _ => HistoryRange::Latest,
    };
    let reply = if let Some(url) = &args.stack_url {
        from_stack(url, &tenant, &room, &args).await?
    } else if let Some(table) = &args.table {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = &args.dynamodb_endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&loader.load().await),
            table,
            Arc::new(SystemClock),
            1,
        );
        let page = stream::history(&store, &args.stream, &tenant, &room, range, args.limit)
            .await
            .with_context(|| format!("reading table {table}"))?;
        stream::history_frame(None, &room, &page, matches!(range, HistoryRange::After(_)))
    } else {
        bail!("give --stack-url or --table");
    };
    print_page(&reply)
}

async fn from_stack(
    base: &str,
    tenant: &TenantId,
    room: &RoomId,
    args: &HistoryArgs,
) -> anyhow::Result<String> {
    let mut url = format!(
        "{}{}?tenant={tenant}&room={room}",
        base.trim_end_matches('/'),
        fanout_local::history::HISTORY_PATH
    );
    for (name, value) in [
        ("before", args.before.map(|v| v as usize)),
        ("after", args.after.map(|v| v as usize)),
        ("limit", args.limit),
    ] {
        if let Some(value) = value {
            url.push_str(&format!("&{name}={value}"));
        }
    }
    HttpGet::new(&url, "--stack-url")
        .map_err(anyhow::Error::msg)?
        .text(MAX_REPLY_BYTES, TIMEOUT)
        .await
        .map_err(anyhow::Error::msg)
}

fn print_page(reply: &str) -> anyhow::Result<()> {
    let page: serde_json::Value =
        serde_json::from_str(reply).context("the history reply is not JSON")?;
    let messages = page["messages"].as_array().cloned().unwrap_or_default();
    for message in &messages {
        println!("{message}");
    }
    let seqs: Vec<u64> = messages.iter().filter_map(|m| m["seq"].as_u64()).collect();
    match (seqs.first(), seqs.last()) {
        (Some(first), Some(last)) => eprintln!(
            "{} messages, seq {first}–{last}; more: {}",
            messages.len(),
            page["more"]
        ),
        _ => eprintln!("no messages; more: {}", page["more"]),
    }
    Ok(())
}
