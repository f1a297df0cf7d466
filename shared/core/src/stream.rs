//! Room streams: what the planner stores for each room event, and how the
//! message function reads it back as `history` pages and `join … since`
//! replays. Frames are rendered here, for live delivery and history alike,
//! so a replayed event is the frame its members got live (plus any edit
//! made since).
//!
//! Reach: an entry is out of reach once its TTL (`--stream-retention`)
//! passes, or once the room has stored `--stream-max-events` newer ones
//! (DynamoDB's TTL deletes the item later; the embedded store drops it).

use serde_json::value::RawValue;

use crate::clock::rfc3339_ms;
use crate::event::{BroadcastEvent, StreamOp};
use crate::ids::{RoomId, TenantId};
use crate::limits::MAX_MESSAGE_BYTES;
use crate::ports::{EntryKind, RoomStreams, StoreError, StreamEntry, StreamRange};
use crate::protocol::{HistoryRange, ServerFrame};
pub use crate::settings::StreamSettings;

/// The entry the planner stores for `event` under `seq`.
pub fn new_entry(
    event_id: &str,
    dedupe_key: &str,
    event: &BroadcastEvent,
    seq: u64,
    now_ms: i64,
    settings: &StreamSettings,
) -> StreamEntry {
    let (kind, data) = match event.stream_op() {
        StreamOp::Append => (EntryKind::Message, Some(event.data.clone())),
        StreamOp::Update(of) => (EntryKind::Updated { of }, Some(event.data.clone())),
        StreamOp::Delete(of) => (EntryKind::Deleted { of }, None),
    };
    StreamEntry {
        seq,
        kind,
        event_id: event_id.to_string(),
        dedupe_key: dedupe_key.to_string(),
        from: event.from.clone(),
        data,
        sent_at_ms: now_ms,
        updated_at_ms: None,
        deleted: false,
        ttl: now_ms.div_euclid(1000) + settings.stream_retention.as_secs() as i64,
    }
}

/// The frame members receive for `entry`: live, in history and in
/// replays. `seq` is `None` for an event that is not stored; `room` is
/// `None` for one sent to a user, a connection or a whole tenant.
pub fn frame(entry: &StreamEntry, room: Option<&RoomId>, seq: Option<u64>) -> String {
    let sent_at = rfc3339_ms(entry.sent_at_ms);
    let null = RawValue::NULL;
    let room_name = room.map(RoomId::as_str);
    match entry.kind {
        EntryKind::Message => {
            let updated_at = entry.updated_at_ms.map(rfc3339_ms);
            ServerFrame::Message {
                id: &entry.event_id,
                room: room_name,
                seq,
                from: entry.from.as_ref(),
                data: if entry.deleted {
                    None
                } else {
                    Some(entry.data.as_deref().unwrap_or(null))
                },
                sent_at: &sent_at,
                updated_at: updated_at.as_deref(),
                deleted: entry.deleted,
            }
            .to_json()
        }
        EntryKind::Updated { of } => ServerFrame::MessageUpdated {
            id: &entry.event_id,
            room: room_name.unwrap_or_default(),
            seq: seq.unwrap_or(entry.seq),
            of,
            from: entry.from.as_ref(),
            data: entry.data.as_deref().unwrap_or(null),
            sent_at: &sent_at,
        }
        .to_json(),
        EntryKind::Deleted { of } => ServerFrame::MessageDeleted {
            id: &entry.event_id,
            room: room_name.unwrap_or_default(),
            seq: seq.unwrap_or(entry.seq),
            of,
            from: entry.from.as_ref(),
            sent_at: &sent_at,
        }
        .to_json(),
    }
}

/// Most bytes of event data one replay holds; past it (as past
/// `--replay-max-events`) the reply says `recovered: false` and the client
/// pages the rest with `history`. Bounds the message function's memory.
pub const REPLAY_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Entries read per query while replaying.
const REPLAY_READ_CHUNK: usize = 250;

/// The oldest `seq` still in reach is above this: entries at or below it
/// are past the per-room cap.
fn floor(head: u64, settings: &StreamSettings) -> u64 {
    head.saturating_sub(settings.stream_max_events)
}

/// One page of `history`.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// In `seq` order.
    pub entries: Vec<StreamEntry>,
    /// Whether the stream holds more in the direction asked (before the
    /// first entry for `before` and latest pages, after the last for
    /// `after`).
    pub more: bool,
    /// Paging forward (`after`): a reply cut to fit keeps the oldest.
    pub forward: bool,
}

/// Reads one `history` page (a read of the room's head, then one query):
/// at most `limit` entries, capped at `--history-max-page`.
pub async fn history(
    streams: &dyn RoomStreams,
    settings: &StreamSettings,
    tenant: &TenantId,
    room: &RoomId,
    range: HistoryRange,
    limit: Option<usize>,
) -> Result<HistoryPage, StoreError> {
    let limit = limit
        .unwrap_or(settings.history_max_page)
        .clamp(1, settings.history_max_page);
    let head = streams.head(tenant, room).await?;
    let floor = floor(head, settings);
    let (range, forward) = match range {
        HistoryRange::Latest => (StreamRange::Before(head.saturating_add(1)), false),
        HistoryRange::Before(seq) => (StreamRange::Before(seq.min(head.saturating_add(1))), false),
        HistoryRange::After(seq) => (StreamRange::After(seq.max(floor)), true),
    };
    let mut entries = streams.read(tenant, room, range, limit + 1).await?;
    entries.retain(|e| e.seq > floor);
    let more = entries.len() > limit;
    if more {
        if forward {
            entries.truncate(limit);
        } else {
            entries.drain(..entries.len() - limit);
        }
    }
    Ok(HistoryPage {
        entries,
        more,
        forward,
    })
}

/// What a `join` with `since` replays.
#[derive(Debug, Clone)]
pub struct Replay {
    /// In `seq` order, starting after `since`.
    pub entries: Vec<StreamEntry>,
    /// The room's last `seq` when the replay was read.
    pub head: u64,
    /// Everything after `since` up to `head` is in `entries`.
    pub recovered: bool,
    /// When not recovered: the oldest `seq` after `since` still stored
    /// (`None` when nothing is).
    pub oldest: Option<u64>,
}

/// Reads what a client that last saw `since` missed (a read of the head,
/// then a query per 250 entries): at most `--replay-max-events` entries
/// and [`REPLAY_MAX_BYTES`] of data. Call it after
/// storing the membership: an event the planner stores after this read
/// resolves the room's members after storing it, so it finds the new
/// membership and is delivered live; nothing falls between.
pub async fn replay(
    streams: &dyn RoomStreams,
    settings: &StreamSettings,
    tenant: &TenantId,
    room: &RoomId,
    since: u64,
) -> Result<Replay, StoreError> {
    let head = streams.head(tenant, room).await?;
    if since >= head {
        // Nothing missed, or a `since` from a stream this one is not
        // (one the client made up, or a table that was recreated).
        return Ok(Replay {
            entries: Vec::new(),
            head,
            recovered: since == head,
            oldest: None,
        });
    }
    let cap = settings.replay_max_events;
    let start = since.max(floor(head, settings));
    // Read in chunks, so a replay holds at most REPLAY_MAX_BYTES of
    // events in memory whatever their size.
    let mut entries: Vec<StreamEntry> = Vec::new();
    let mut bytes = 0;
    let mut cut_by_cap = false;
    let mut after = start;
    loop {
        let want = (cap + 1 - entries.len()).min(REPLAY_READ_CHUNK);
        let chunk = streams
            .read(tenant, room, StreamRange::After(after), want)
            .await?;
        let exhausted = chunk.len() < want;
        for entry in chunk {
            bytes += entry.data.as_ref().map_or(0, |d| d.get().len());
            if entries.len() == cap || bytes > REPLAY_MAX_BYTES {
                cut_by_cap = true;
                break;
            }
            after = entry.seq;
            entries.push(entry);
        }
        if cut_by_cap || exhausted {
            break;
        }
    }
    // Entries expire in order, so a first entry after `since + 1` means
    // the ones between are gone.
    let complete_start = entries.first().is_some_and(|e| e.seq == since + 1);
    let recovered = complete_start && !cut_by_cap;
    Ok(Replay {
        oldest: (!recovered)
            .then(|| entries.first().map(|e| e.seq))
            .flatten(),
        entries,
        head,
        recovered,
    })
}

/// Message frames as raw JSON, for the batch frames below.
fn raw_frames(entries: &[StreamEntry], room: &RoomId) -> Vec<Box<RawValue>> {
    entries
        .iter()
        .filter_map(|e| RawValue::from_string(frame(e, Some(room), Some(e.seq))).ok())
        .collect()
}

/// The `history` reply for a page, within one 128 KB post: when the
/// page's frames do not all fit, the ones nearest the start of the page
/// walk (the newest for `before`, the oldest for `after`) are kept and
/// `more` is set.
pub fn history_frame(request_id: Option<&str>, room: &RoomId, page: &HistoryPage) -> String {
    let forward = page.forward;
    let frames = raw_frames(&page.entries, room);
    let build = |messages: Vec<&RawValue>, more: bool| {
        ServerFrame::History {
            request_id,
            room: room.as_str(),
            messages,
            more,
        }
        .to_json()
    };
    let budget = MAX_MESSAGE_BYTES.saturating_sub(build(Vec::new(), true).len());
    let fits = fitting(&frames, budget, forward);
    let more = page.more || fits < frames.len();
    let kept: Vec<&RawValue> = if forward {
        frames[..fits].iter().map(|f| &**f).collect()
    } else {
        frames[frames.len() - fits..].iter().map(|f| &**f).collect()
    };
    build(kept, more)
}

/// How many frames fit `budget` bytes (with their commas), taken from the
/// front (`forward`) or the back; never fewer than one, so a page always
/// moves on.
fn fitting(frames: &[Box<RawValue>], budget: usize, forward: bool) -> usize {
    let mut used = 0;
    let mut count = 0;
    let mut take = |f: &RawValue| {
        used += f.get().len() + 1;
        if used > budget && count > 0 {
            return false;
        }
        count += 1;
        true
    };
    if forward {
        for f in frames {
            if !take(f.as_ref()) {
                break;
            }
        }
    } else {
        for f in frames.iter().rev() {
            if !take(f.as_ref()) {
                break;
            }
        }
    }
    count
}

/// The `replay` frames for `entries`, in order, each within one 128 KB
/// post.
pub fn replay_frames(room: &RoomId, entries: &[StreamEntry]) -> Vec<String> {
    let frames = raw_frames(entries, room);
    let build = |messages: Vec<&RawValue>| {
        ServerFrame::Replay {
            room: room.as_str(),
            messages,
        }
        .to_json()
    };
    let budget = MAX_MESSAGE_BYTES.saturating_sub(build(Vec::new()).len());
    let mut out = Vec::new();
    let mut rest = &frames[..];
    while !rest.is_empty() {
        let n = fitting(rest, budget, true);
        out.push(build(rest[..n].iter().map(|f| &**f).collect()));
        rest = &rest[n..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Sender;
    use crate::ids::{ConnectionId, UserId};
    use crate::limits::MAX_PAYLOAD_BYTES;
    use crate::protocol::ReceivedFrame;

    fn entry(seq: u64, data: &str) -> StreamEntry {
        StreamEntry {
            seq,
            kind: EntryKind::Message,
            event_id: format!("e{seq}"),
            dedupe_key: format!("acme#e{seq}"),
            from: Some(Sender::Client {
                user: UserId::new("u".repeat(64)).unwrap(),
                connection: ConnectionId::new("c".repeat(128)).unwrap(),
            }),
            data: Some(RawValue::from_string(data.to_string()).unwrap()),
            sent_at_ms: 1_795_000_000_000,
            updated_at_ms: Some(1_795_000_000_500),
            deleted: false,
            ttl: 0,
        }
    }

    #[test]
    fn the_largest_message_fits_a_history_and_a_replay_frame_alone() {
        let room = RoomId::new("r".repeat(64)).unwrap();
        let big = format!("\"{}\"", "x".repeat(MAX_PAYLOAD_BYTES - 2));
        let page = HistoryPage {
            entries: vec![entry(u64::MAX, &big), entry(u64::MAX, &big)],
            more: false,
            forward: false,
        };
        let rid = "r".repeat(crate::protocol::MAX_REQUEST_ID_LEN);
        let reply = history_frame(Some(&rid), &room, &page);
        assert!(reply.len() <= MAX_MESSAGE_BYTES, "{}", reply.len());
        let ReceivedFrame::History { messages, more, .. } = serde_json::from_str(&reply).unwrap()
        else {
            panic!("not a history frame");
        };
        assert_eq!((messages.len(), more), (1, true));
        let frames = replay_frames(&room, &page.entries);
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| f.len() <= MAX_MESSAGE_BYTES));
    }

    #[test]
    fn small_messages_share_frames_in_order() {
        let room = RoomId::new("lobby").unwrap();
        let entries: Vec<_> = (1..=2_000).map(|s| entry(s, r#"{"t":"hi"}"#)).collect();
        let frames = replay_frames(&room, &entries);
        assert!(frames.len() > 1 && frames.len() < 10, "{}", frames.len());
        let mut seqs = Vec::new();
        for f in &frames {
            assert!(f.len() <= MAX_MESSAGE_BYTES);
            let ReceivedFrame::Replay { messages, .. } = serde_json::from_str(f).unwrap() else {
                panic!("not a replay frame");
            };
            seqs.extend(messages.iter().map(|m| m.seq().unwrap()));
        }
        assert_eq!(seqs, (1..=2_000).collect::<Vec<_>>());
    }

    #[test]
    fn a_deleted_message_keeps_its_place_without_its_data() {
        let room = RoomId::new("lobby").unwrap();
        let mut e = entry(3, "1");
        e.deleted = true;
        let f: serde_json::Value = serde_json::from_str(&frame(&e, Some(&room), Some(3))).unwrap();
        assert_eq!(f["deleted"], true);
        assert_eq!(f["seq"], 3);
        assert!(f.get("data").is_none());
        let mut d = entry(4, "null");
        d.kind = EntryKind::Deleted { of: 3 };
        d.data = None;
        let f: serde_json::Value = serde_json::from_str(&frame(&d, Some(&room), Some(4))).unwrap();
        assert_eq!(f["type"], "message.deleted");
        assert_eq!(f["ref"], 3);
    }
}
