//! `fanout history --table` with the real binary against a DynamoDB table
//! on moto's server, as a service reads a deployment's room streams.

use std::process::Command;
use std::sync::Arc;

use fanout_aws::{DynamoStore, provision};
use fanout_core::clock::SystemClock;
use fanout_core::event::BroadcastEvent;
use fanout_core::ids::{RoomId, TenantId};
use fanout_core::ports::RoomStreams;
use fanout_core::stream::{StreamSettings, new_entry};
use serde_json::value::RawValue;

mod common;

#[tokio::test]
async fn history_reads_a_rooms_stream_from_the_table() {
    let Some(endpoint) = common::moto_endpoint() else {
        return;
    };
    let config = common::moto_config(&endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("cli{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    provision::table(&client, &table).await.unwrap();
    let store = DynamoStore::new(client, &table, Arc::new(SystemClock), 4);
    let (acme, lobby) = (
        TenantId::new("acme").unwrap(),
        RoomId::new("lobby").unwrap(),
    );
    let now = chrono::Utc::now().timestamp_millis();
    for n in 1..=5 {
        let event = BroadcastEvent::to_room(
            acme.clone(),
            lobby.clone(),
            RawValue::from_string(format!(r#"{{"n":{n}}}"#)).unwrap(),
        );
        let seq = store.next_seq(&acme, &lobby).await.unwrap();
        let entry = new_entry(
            &format!("e{n}"),
            &format!("acme#e{n}"),
            &event,
            seq,
            now,
            &StreamSettings::default(),
        );
        store.put_entry(&acme, &lobby, &entry).await.unwrap();
    }

    let out = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args([
            "history",
            "--table",
            &table,
            "--dynamodb-endpoint",
            &endpoint,
            "--tenant",
            "acme",
            "--room",
            "lobby",
            "--after",
            "1",
            "--limit",
            "2",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run fanout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["seq"].as_u64(), lines[1]["seq"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(lines[0]["data"], serde_json::json!({"n": 2}));
    assert!(
        stderr.contains("2 messages, seq 2–3; more: true"),
        "{stderr}"
    );
}
