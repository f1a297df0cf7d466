//! The room stream contract: `MemoryStore` and `DynamoStore` number,
//! store, read, edit and find stream entries the same way.

use std::sync::Arc;

use fanout_aws::{DynamoStore, provision};
use fanout_core::clock::ManualClock;
use fanout_core::event::Sender;
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::ports::{Edit, EditOutcome, EntryKind, RoomStreams, StreamEntry, StreamRange};
use fanout_embedded::MemoryStore;
use futures::future::join_all;
use serde_json::value::RawValue;

use crate::common::{sdk_config, unique};
use crate::contract;

pub struct Subject {
    streams: Arc<dyn RoomStreams>,
    clock: Arc<ManualClock>,
}

const NOW_MS: i64 = 1_800_000_000_000;
/// Query pages this small make every read page on DynamoDB.
const PAGE: usize = 3;

async fn embedded() -> Subject {
    let clock = ManualClock::at_ms(NOW_MS);
    Subject {
        streams: Arc::new(MemoryStore::with_page_size(clock.clone(), 2, PAGE)),
        clock,
    }
}

async fn aws(endpoint: &str) -> Subject {
    let config = sdk_config(endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("fanout-stream");
    provision::table(&client, &table).await.unwrap();
    let clock = ManualClock::at_ms(NOW_MS);
    Subject {
        streams: Arc::new(
            DynamoStore::new(client, table, clock.clone(), 2).with_page_limit(PAGE as i32),
        ),
        clock,
    }
}

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

fn entry(seq: u64, text: &str, ttl_secs: i64) -> StreamEntry {
    StreamEntry {
        seq,
        kind: EntryKind::Message,
        event_id: format!("event-{seq}"),
        dedupe_key: format!("acme#key-{seq}"),
        from: Some(Sender::Client {
            user: UserId::new("alice").unwrap(),
            connection: ConnectionId::new("c1").unwrap(),
        }),
        data: Some(RawValue::from_string(format!(r#"{{"text":"{text}"}}"#)).unwrap()),
        sent_at_ms: NOW_MS,
        updated_at_ms: None,
        deleted: false,
        ttl: NOW_MS / 1000 + ttl_secs,
    }
}

fn seqs(entries: &[StreamEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

/// Concurrent numbering never shares or skips a number, and rooms and
/// tenants count apart.
async fn numbering(s: Subject) {
    let streams = s.streams.as_ref();
    let lobby = room("lobby");
    let tenant = acme();
    assert_eq!(streams.head(&tenant, &lobby).await.unwrap(), 0);
    let mut taken: Vec<u64> = join_all((0..40).map(|_| streams.next_seq(&tenant, &lobby)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    taken.sort_unstable();
    assert_eq!(taken, (1..=40).collect::<Vec<_>>());
    assert_eq!(streams.head(&acme(), &lobby).await.unwrap(), 40);
    assert_eq!(streams.next_seq(&acme(), &room("other")).await.unwrap(), 1);
    let globex = TenantId::new("globex").unwrap();
    assert_eq!(streams.next_seq(&globex, &lobby).await.unwrap(), 1);
}

/// Entries read back in order, paged before and after, with expired ones
/// skipped; a second put of a number keeps the first.
async fn reads(s: Subject) {
    let streams = s.streams.as_ref();
    let lobby = room("lobby");
    for seq in 1..=10 {
        streams.next_seq(&acme(), &lobby).await.unwrap();
        // 1–3 expire after a minute, the rest after a day.
        let ttl = if seq <= 3 { 60 } else { 86_400 };
        streams
            .put_entry(&acme(), &lobby, &entry(seq, &format!("m{seq}"), ttl))
            .await
            .unwrap();
    }
    streams
        .put_entry(&acme(), &lobby, &entry(5, "again", 86_400))
        .await
        .unwrap();
    let five = streams
        .get_entry(&acme(), &lobby, 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(five.data.unwrap().get(), r#"{"text":"m5"}"#);
    assert_eq!(five.from, entry(5, "", 0).from);
    assert_eq!(five.event_id, "event-5");
    let all = streams
        .read(&acme(), &lobby, StreamRange::After(0), 100)
        .await
        .unwrap();
    assert_eq!(seqs(&all), (1..=10).collect::<Vec<_>>());
    let after = streams
        .read(&acme(), &lobby, StreamRange::After(4), 4)
        .await
        .unwrap();
    assert_eq!(seqs(&after), vec![5, 6, 7, 8]);
    let before = streams
        .read(&acme(), &lobby, StreamRange::Before(9), 4)
        .await
        .unwrap();
    assert_eq!(seqs(&before), vec![5, 6, 7, 8]);

    s.clock.advance_ms(120_000);
    let live = streams
        .read(&acme(), &lobby, StreamRange::After(0), 5)
        .await
        .unwrap();
    assert_eq!(
        seqs(&live),
        vec![4, 5, 6, 7, 8],
        "expired entries are skipped"
    );
    let before = streams
        .read(&acme(), &lobby, StreamRange::Before(6), 10)
        .await
        .unwrap();
    assert_eq!(seqs(&before), vec![4, 5]);
    assert!(
        streams
            .get_entry(&acme(), &lobby, 2)
            .await
            .unwrap()
            .is_none()
    );
    let other = streams
        .read(&acme(), &room("empty"), StreamRange::After(0), 10)
        .await
        .unwrap();
    assert!(other.is_empty());
}

/// Updates replace data, deletes drop it, both conditionally.
async fn edits(s: Subject) {
    let streams = s.streams.as_ref();
    let lobby = room("lobby");
    for seq in 1..=2 {
        streams
            .put_entry(&acme(), &lobby, &entry(seq, "v1", 86_400))
            .await
            .unwrap();
    }
    let mut update = entry(2, "", 86_400);
    update.kind = EntryKind::Updated { of: 1 };
    streams.put_entry(&acme(), &lobby, &update).await.unwrap();
    let v2 = RawValue::from_string(r#"{"text":"v2"}"#.into()).unwrap();
    let at = NOW_MS + 5_000;
    assert_eq!(
        streams
            .edit_entry(&acme(), &lobby, 1, &Edit::Update(v2), at)
            .await
            .unwrap(),
        EditOutcome::Applied
    );
    let one = streams
        .get_entry(&acme(), &lobby, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.data.unwrap().get(), r#"{"text":"v2"}"#);
    assert_eq!(one.updated_at_ms, Some(at));
    assert!(!one.deleted);
    assert_eq!(
        streams
            .edit_entry(&acme(), &lobby, 1, &Edit::Delete, at + 1)
            .await
            .unwrap(),
        EditOutcome::Applied
    );
    let one = streams
        .get_entry(&acme(), &lobby, 1)
        .await
        .unwrap()
        .unwrap();
    assert!(one.deleted && one.data.is_none());
    assert_eq!(one.updated_at_ms, Some(at + 1));
    assert_eq!(
        streams
            .edit_entry(&acme(), &lobby, 1, &Edit::Delete, at + 2)
            .await
            .unwrap(),
        EditOutcome::Deleted
    );
    assert_eq!(
        streams
            .edit_entry(&acme(), &lobby, 99, &Edit::Delete, at)
            .await
            .unwrap(),
        EditOutcome::Missing
    );
}

/// A crashed planner's retry finds the number its event got.
async fn find_by_key(s: Subject) {
    let streams = s.streams.as_ref();
    let lobby = room("lobby");
    for seq in 1..=12 {
        streams
            .put_entry(&acme(), &lobby, &entry(seq, "x", 86_400))
            .await
            .unwrap();
    }
    assert_eq!(
        streams
            .find_by_key(&acme(), &lobby, "acme#key-10", 5)
            .await
            .unwrap(),
        Some(10)
    );
    assert_eq!(
        streams
            .find_by_key(&acme(), &lobby, "acme#key-2", 5)
            .await
            .unwrap(),
        None,
        "only the last `scan` entries are searched"
    );
    assert_eq!(
        streams
            .find_by_key(&acme(), &lobby, "acme#nope", 100)
            .await
            .unwrap(),
        None
    );
}

contract!(stream_numbering: numbering, embedded = embedded, aws = aws);
contract!(stream_reads: reads, embedded = embedded, aws = aws);
contract!(stream_edits: edits, embedded = embedded, aws = aws);
contract!(stream_find_by_key: find_by_key, embedded = embedded, aws = aws);
