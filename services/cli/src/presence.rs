//! `fanout presence`: who is online — a room's present users (with
//! `--room`), or every user of the tenant with a live connection — from
//! the local stack's presence endpoint or a deployment's DynamoDB table.
//! Prints one JSON object per user and a summary on stderr.

use anyhow::Context;
use clap::Args;
use fanout_core::handlers::presence::{PAGE_SIZE, online_users};
use fanout_core::ids::{RoomId, TenantId};
use fanout_core::ports::PresenceStore;
use fanout_core::protocol::PresentUser;
use fanout_core::settings::StoreSettings;
use serde_json::json;

use crate::source::{Reader, Source, get};

#[derive(Args)]
pub struct PresenceArgs {
    #[command(flatten)]
    source: Source,
    #[arg(long)]
    tenant: String,
    /// A room's present users; without it, the tenant's online users.
    #[arg(long)]
    room: Option<String>,
    /// With --table: the deployment's shard count (FANOUT_SHARDS).
    #[command(flatten)]
    store: StoreSettings,
}

pub async fn run(args: PresenceArgs) -> anyhow::Result<()> {
    let tenant = TenantId::new(args.tenant.as_str()).context("--tenant")?;
    let room = args
        .room
        .as_deref()
        .map(RoomId::new)
        .transpose()
        .context("--room")?;
    let users = match (args.source.open(args.store.shards).await, &room) {
        (Reader::Stack(base), room) => from_stack(&base, &tenant, room.as_ref()).await?,
        (Reader::Table(store), None) => online_users(&store, &tenant)
            .await
            .context("reading the table")?
            .into_iter()
            .map(|(user, connections)| json!({"user": user.as_str(), "connections": connections}))
            .collect(),
        (Reader::Table(store), Some(room)) => {
            let mut users = Vec::new();
            let mut cursor = None;
            loop {
                let page = store
                    .presence_page(&tenant, room, cursor.as_deref(), PAGE_SIZE)
                    .await
                    .context("reading the table")?;
                for member in &page.items {
                    users.push(serde_json::to_value(PresentUser::from(member))?);
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            users
        }
    };
    for user in &users {
        println!("{user}");
    }
    match &room {
        Some(room) => eprintln!("{} users present in {room}", users.len()),
        None => eprintln!("{} users of {tenant} online", users.len()),
    }
    Ok(())
}

async fn from_stack(
    base: &str,
    tenant: &TenantId,
    room: Option<&RoomId>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let path = fanout_core::local_api::PRESENCE_PATH;
    let Some(room) = room else {
        let reply: serde_json::Value =
            serde_json::from_str(&get(base, &format!("{path}?tenant={tenant}")).await?)?;
        return Ok(reply["online"].as_array().cloned().unwrap_or_default());
    };
    let mut users = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply: serde_json::Value = serde_json::from_str(
            &get(base, &format!("{path}?tenant={tenant}&room={room}{cursor}")).await?,
        )?;
        users.extend(reply["members"].as_array().cloned().unwrap_or_default());
        match reply["next"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return Ok(users),
        }
    }
}
