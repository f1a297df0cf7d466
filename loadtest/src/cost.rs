//! What the run would cost on AWS, from the scenario's counts and the
//! prices given (defaults from the price list the project designs to).
//! An estimate: the broadcaster's duration comes from its measured CPU
//! time per post (`--broadcaster-cpu-us-per-post`), the other functions'
//! from an assumption (`--lambda-ms-per-invocation`), and DynamoDB reads
//! assume ~100-byte membership items.

use serde::Serialize;

use crate::config::{Prices, Via};

/// What happened, in the units AWS bills.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub connections: u64,
    pub connection_minutes: f64,
    pub messages_published: u64,
    pub deliveries: u64,
    pub frame_bytes: u64,
    pub rooms: u64,
    pub shards: u64,
    pub max_connections_per_job: u64,
    pub via: Via,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub api_gateway_messages: f64,
    pub api_gateway_connection_minutes: f64,
    pub eventbridge_events: f64,
    pub sqs_requests: f64,
    pub lambda_requests: f64,
    pub lambda_gb_seconds: f64,
    pub dynamodb_writes: f64,
    pub dynamodb_reads: f64,
    pub total_usd: f64,
    pub assumptions: String,
}

fn units(bytes: u64, unit: u64) -> u64 {
    bytes.div_ceil(unit).max(1)
}

pub fn estimate(u: &Usage, p: &Prices) -> Cost {
    let n = u.connections as f64;
    let m = u.messages_published as f64;
    let per_room = u.connections.div_ceil(u.rooms.max(1));
    let jobs_per_message = per_room.div_ceil(u.max_connections_per_job.max(1)) as f64;
    let jobs = m * jobs_per_message;
    let client_publish = if u.via == Via::Client { m } else { 0.0 };

    // API Gateway: joins and client publishes in, their replies and every
    // delivery out; deliveries in 32 KB units.
    let api_messages =
        2.0 * (n + client_publish) + u.deliveries as f64 * units(u.frame_bytes, 32 * 1024) as f64;
    // EventBridge: each broadcast, and the lifecycle events (opened,
    // joined, closed) of every connection.
    let events = m + 3.0 * n;
    // SQS: per plan message and per delivery job, a send, a receive and a
    // delete, each in 64 KB units; jobs carry frame plus ids (≤ 256 KB).
    let job_units = units(
        u.frame_bytes + 25 * u.max_connections_per_job.min(per_room),
        64 * 1024,
    ) as f64;
    let sqs = 3.0 * m + 3.0 * jobs * job_units;
    // Lambda: authorizer, connect, join (message) and disconnect per
    // connection; a message per client publish; planner per broadcast;
    // broadcaster per job.
    let invocations = 4.0 * n + client_publish + m + jobs;
    let other_seconds = (invocations - jobs) * f64::from(p.lambda_ms_per_invocation) / 1000.0;
    let job_ms = broadcaster_job_ms(
        u.deliveries as f64 / jobs.max(1.0),
        p.broadcaster_cpu_us_per_post,
        p.lambda_memory_mb,
    );
    let broadcaster_seconds = jobs * job_ms / 1000.0;
    let gb_seconds = (other_seconds + broadcaster_seconds) * f64::from(p.lambda_memory_mb) / 1024.0;
    // DynamoDB: connect 2, join 2, disconnect ~4 writes per connection;
    // a dedupe claim and completion per broadcast. Reads: a membership
    // check per client publish, and per broadcast the room's member pages
    // (4 KB per ~40 items, eventually consistent = half a unit) per shard.
    let writes = 8.0 * n + 2.0 * m;
    let reads = client_publish + m * (u.shards as f64 + (per_room as f64 / 40.0) * 0.5);

    let mut cost = Cost {
        api_gateway_messages: api_messages / 1e6 * p.price_apigw_messages_per_million,
        api_gateway_connection_minutes: u.connection_minutes / 1e6
            * p.price_apigw_connection_minutes_per_million,
        eventbridge_events: events / 1e6 * p.price_eventbridge_events_per_million,
        sqs_requests: sqs / 1e6 * p.price_sqs_requests_per_million,
        lambda_requests: invocations / 1e6 * p.price_lambda_requests_per_million,
        lambda_gb_seconds: gb_seconds * p.price_lambda_gb_second,
        dynamodb_writes: writes / 1e6 * p.price_dynamodb_writes_per_million,
        dynamodb_reads: reads / 1e6 * p.price_dynamodb_reads_per_million,
        total_usd: 0.0,
        assumptions: format!(
            "{} MB functions; {} ms per invocation, broadcaster {job_ms:.0} ms per job ({} µs CPU per post, measured); {jobs_per_message} delivery job(s) per broadcast; ~100-byte membership items",
            p.lambda_memory_mb, p.lambda_ms_per_invocation, p.broadcaster_cpu_us_per_post
        ),
    };
    cost.total_usd = cost.api_gateway_messages
        + cost.api_gateway_connection_minutes
        + cost.eventbridge_events
        + cost.sqs_requests
        + cost.lambda_requests
        + cost.lambda_gb_seconds
        + cost.dynamodb_writes
        + cost.dynamodb_reads;
    cost
}

/// Lambda's CPU share: one vCPU at 1,769 MB, proportional below.
const MB_PER_VCPU: f64 = 1769.0;

/// A broadcaster job's billed ms: its posts' CPU time at the function's
/// vCPU share (the posts are CPU-bound at 64 in flight; waiting on
/// API Gateway overlaps with it), 1 ms at least.
fn broadcaster_job_ms(posts: f64, cpu_us_per_post: f64, memory_mb: u32) -> f64 {
    let share = f64::from(memory_mb) / MB_PER_VCPU;
    (posts * cpu_us_per_post / share / 1000.0).ceil().max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_million_deliveries_cost_about_a_dollar_of_api_gateway() {
        let prices = crate::config::Scenario::parse_from(["x"]).prices;
        let usage = Usage {
            connections: 10_000,
            connection_minutes: 10_000.0,
            messages_published: 100,
            deliveries: 1_000_000,
            frame_bytes: 200,
            rooms: 1,
            shards: 4,
            max_connections_per_job: 500,
            via: Via::Events,
        };
        let c = estimate(&usage, &prices);
        // 1 M deliveries + 2 × 10 k joins/acks at $1 per million.
        assert!((c.api_gateway_messages - 1.02).abs() < 1e-9, "{c:?}");
        assert!((c.eventbridge_events - 0.0301).abs() < 1e-9, "{c:?}");
        assert!(c.total_usd > c.api_gateway_messages);
    }

    #[test]
    fn the_broadcasters_time_follows_its_measured_cpu_per_post() {
        // 500 posts at 52.3 µs on 256 MB (0.145 vCPU): 181 ms.
        assert_eq!(broadcaster_job_ms(500.0, 52.3, 256), 181.0);
        // Twice the memory, about half the time.
        assert_eq!(broadcaster_job_ms(500.0, 52.3, 512), 91.0);
        assert_eq!(broadcaster_job_ms(1.0, 52.3, 256), 1.0);
        let prices = crate::config::Scenario::parse_from(["x"]).prices;
        let usage = |deliveries| Usage {
            connections: 10_000,
            connection_minutes: 10_000.0,
            messages_published: 100,
            deliveries,
            frame_bytes: 200,
            rooms: 1,
            shards: 4,
            max_connections_per_job: 500,
            via: Via::Events,
        };
        let (few, many) = (
            estimate(&usage(100), &prices),
            estimate(&usage(1_000_000), &prices),
        );
        assert!(
            many.lambda_gb_seconds > few.lambda_gb_seconds,
            "{few:?} {many:?}"
        );
        assert!(
            many.assumptions.contains("µs CPU per post"),
            "{}",
            many.assumptions
        );
    }
}
