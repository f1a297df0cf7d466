//! `fanout`: the operator CLI. `token` mints a client JWT; `publish` sends
//! a `fanout.broadcast` event with the AWS SDK's EventBridge client, to the
//! local stack (`--endpoint`) or to AWS; `history` reads a room's stream;
//! `presence` lists who is online;
//! `dlq` lists, shows and redrives dead-letter queues.

mod dlq;
mod history;
mod presence;
mod source;

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use fanout_aws::EventBridgeBus;
use fanout_core::event::{AllOfTenant, BROADCAST, BroadcastEvent, Target};
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::ports::BusEntry;
use fanout_core::settings::positive_duration;
use fanout_core::token::{DEV_JWT_SECRET, TokenSigner, check_secret};
use serde_json::value::RawValue;

/// Operate a fanout deployment or the local stack.
#[derive(Parser)]
#[command(name = "fanout", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a client token (HS256 JWT) signed with FANOUT_JWT_SECRET, or
    /// with the local stack's development secret when it is unset.
    Token {
        /// Tenant the connection belongs to.
        #[arg(long)]
        tenant: String,
        /// User id (the token's `sub`).
        #[arg(long)]
        user: String,
        /// How long the token is valid: 30s, 15m, 1h, 2d.
        #[arg(long, default_value = "1h", value_parser = positive_duration)]
        ttl: Duration,
        /// The HS256 key to sign with (the local stack's by default).
        #[arg(long, env = "FANOUT_JWT_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Publish a fanout.broadcast event to a room, a user, a connection or
    /// a whole tenant.
    Publish(PublishArgs),
    /// Print a page of a room's stream (history), from the local stack or
    /// a deployment's DynamoDB table.
    History(history::HistoryArgs),
    /// List who is online: a room's present users, or every user of a
    /// tenant with a live connection.
    Presence(presence::PresenceArgs),
    /// Inspect and redrive dead-letter queues (AWS, moto or the local stack).
    Dlq {
        #[command(flatten)]
        connection: dlq::Connection,
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["room", "user", "connection", "all_tenant"])))]
struct PublishArgs {
    /// EventBridge endpoint URL, e.g. http://127.0.0.1:3001 for the local
    /// stack. Omit to use AWS (region and credentials from the environment).
    #[arg(long, env = "FANOUT_EVENTS_ENDPOINT", value_parser = fanout_aws::parse_endpoint_url)]
    endpoint: Option<String>,
    /// Event bus name or ARN.
    #[arg(long, default_value = fanout_core::local_api::BUS, env = "FANOUT_EVENT_BUS")]
    bus: String,
    /// The event's Source (default `<tenant>.cli`). It must speak for the
    /// tenant (`<tenant>` or `<tenant>.<service>`) unless the stack turns
    /// tenant-bound sources off; `fanout.*` is reserved for the gateway.
    #[arg(long)]
    source: Option<String>,
    #[arg(long)]
    tenant: String,
    /// Deliver to every member of this room.
    #[arg(long)]
    room: Option<String>,
    /// Deliver to every connection of this user.
    #[arg(long)]
    user: Option<String>,
    /// Deliver to this one connection.
    #[arg(long)]
    connection: Option<String>,
    /// Deliver to every connection of the tenant.
    #[arg(long)]
    all_tenant: bool,
    /// The payload: any JSON value.
    #[arg(long)]
    data: String,
    /// Connection ids that must not receive it (repeatable).
    #[arg(long)]
    exclude: Vec<String>,
    /// Events with the same key are delivered once.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Deliver to the room without storing it in the room's stream (no
    /// seq, no history).
    #[arg(long, requires = "room")]
    no_stream: bool,
    /// Replace stored message SEQ of --room with --data.
    #[arg(long, value_name = "SEQ", requires = "room", conflicts_with_all = ["delete", "no_stream"])]
    update: Option<u64>,
    /// Delete stored message SEQ of --room (--data is ignored; pass null).
    #[arg(
        long,
        value_name = "SEQ",
        requires = "room",
        conflicts_with = "no_stream"
    )]
    delete: Option<u64>,
}

#[tokio::main]
async fn main() {
    quiet_on_closed_pipe();
    // Errors print as one readable line (with their causes), never as a
    // backtrace, whatever RUST_BACKTRACE says.
    if let Err(error) = run(Cli::parse().command).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// `fanout dlq show … | head` closes our stdout early: end quietly, as
/// Unix tools do, instead of panicking on the broken pipe. Rust ignores
/// SIGPIPE by default; this restores the default action.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; it only
    // changes the process's disposition of one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Token {
            tenant,
            user,
            ttl,
            secret,
        } => {
            let tenant = TenantId::new(tenant).context("--tenant")?;
            let user = UserId::new(user).context("--user")?;
            let secret = secret.filter(|s| !s.is_empty()).unwrap_or_else(|| {
                eprintln!(
                    "note: FANOUT_JWT_SECRET (--secret) is unset; signing with the local development secret"
                );
                DEV_JWT_SECRET.to_string()
            });
            check_secret(&secret, false).context("--secret / FANOUT_JWT_SECRET")?;
            let now = chrono_now();
            println!(
                "{}",
                TokenSigner::new(secret.as_bytes()).mint(&tenant, &user, now, ttl)?
            );
        }
        Command::Publish(args) => publish(args).await?,
        Command::History(args) => history::run(args).await?,
        Command::Presence(args) => presence::run(args).await?,
        Command::Dlq {
            connection,
            command,
        } => dlq::run(connection, command).await?,
    }
    Ok(())
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn build_event(args: &PublishArgs) -> anyhow::Result<BroadcastEvent> {
    let target = if let Some(room) = &args.room {
        Target::Room(RoomId::new(room.as_str()).context("--room")?)
    } else if let Some(user) = &args.user {
        Target::User(UserId::new(user.as_str()).context("--user")?)
    } else if let Some(connection) = &args.connection {
        Target::Connection(ConnectionId::new(connection.as_str()).context("--connection")?)
    } else if args.all_tenant {
        Target::Tenant(AllOfTenant)
    } else {
        bail!("give one of --room, --user, --connection or --all-tenant");
    };
    let data = RawValue::from_string(args.data.clone())
        .context("--data must be valid JSON, e.g. '{\"text\":\"hi\"}' or '\"plain text\"'")?;
    let exclude = args
        .exclude
        .iter()
        .map(|c| ConnectionId::new(c.as_str()).context("--exclude"))
        .collect::<anyhow::Result<_>>()?;
    Ok(BroadcastEvent {
        tenant: TenantId::new(args.tenant.as_str()).context("--tenant")?,
        target,
        data,
        exclude,
        idempotency_key: args.idempotency_key.clone(),
        // The planner names the publishing service from its Source.
        from: None,
        stream: !args.no_stream,
        update: args.update,
        delete: args.delete,
        signal: false,
        presence: None,
    })
}

async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let event = build_event(&args)?;
    let detail = serde_json::to_string(&event)?;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(endpoint) = &args.endpoint {
        // The local stack accepts any credentials; supply dummies so no
        // credential provider chain is needed.
        loader = loader
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "fanout-cli",
            ));
    }
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&loader.load().await),
        &args.bus,
    );
    // `publish` resends a throttled or failed entry before giving up.
    let source = args
        .source
        .clone()
        .unwrap_or_else(|| format!("{}.cli", args.tenant));
    let ids = fanout_core::ports::publish(&bus, &[BusEntry::new(source, BROADCAST, detail)])
        .await
        .context("PutEvents")?;
    println!("published event {}", ids[0]);
    Ok(())
}
