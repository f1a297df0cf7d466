//! `fanout history`: a page of a room's stream, as a service reads it —
//! from the local stack's history endpoint (`--stack-url`), or straight
//! from the DynamoDB table (`--table`, on AWS or moto). Prints one message
//! frame per line, oldest first, and a summary on stderr.

use anyhow::Context;
use clap::Args;
use fanout_core::ids::{RoomId, TenantId};
use fanout_core::protocol::HistoryRange;
use fanout_core::settings::StreamSettings;
use fanout_core::stream;

use crate::source::{Reader, Source, get};

#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    source: Source,
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
    let reply = match args.source.open(1).await {
        Reader::Stack(base) => from_stack(&base, &tenant, &room, &args).await?,
        Reader::Table(store) => {
            let page = stream::history(&store, &args.stream, &tenant, &room, range, args.limit)
                .await
                .context("reading the table")?;
            stream::history_frame(None, &room, &page)
        }
    };
    print_page(&reply)
}

async fn from_stack(
    base: &str,
    tenant: &TenantId,
    room: &RoomId,
    args: &HistoryArgs,
) -> anyhow::Result<String> {
    let mut path = format!(
        "{}?tenant={tenant}&room={room}",
        fanout_core::local_api::HISTORY_PATH
    );
    for (name, value) in [
        ("before", args.before.map(|v| v as usize)),
        ("after", args.after.map(|v| v as usize)),
        ("limit", args.limit),
    ] {
        if let Some(value) = value {
            path.push_str(&format!("&{name}={value}"));
        }
    }
    get(base, &path).await
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
