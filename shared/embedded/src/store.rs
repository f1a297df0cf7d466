//! A TTL-aware in-memory connection store with the same shape as the
//! DynamoDB table: connection items, sharded member sets (rooms and the
//! tenant-wide set), reverse memberships, a user index, dedupe markers and
//! room streams.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::dynamodb::EventRecord;

use fanout_core::auth::{Capabilities, Rights};
use fanout_core::changes::removal_record;
use fanout_core::clock::Clock;
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId, shard_of};
use fanout_core::ports::{
    CLAIM_KEPT_AFTER_LEASE_SECS, ChangeFeed, ConnectionRecord, ConnectionStore, Edit, EditOutcome,
    EntryKind, EventClaim, EventDedupe, FrameAdmission, MemberSet, Page, PresenceChange,
    PresenceMember, PresenceOutcome, PresenceStore, PriorAttempt, RoomStreams, StoreError,
    StreamEntry, StreamRange, first_presence_version,
};
use fanout_core::rate::{Rate, StoredGcra};
use serde_json::value::RawValue;

/// Items per page, like DynamoDB's 1 MB pages of small items.
pub const DEFAULT_PAGE_SIZE: usize = 1_000;

type Members = BTreeMap<ConnectionId, i64>;

#[derive(Default)]
struct Tables {
    connections: HashMap<ConnectionId, ConnectionRecord>,
    /// Reverse memberships: connection → room → (ttl, granted rights).
    rooms_of: HashMap<ConnectionId, BTreeMap<RoomId, (i64, Rights)>>,
    /// Member sets by (set, shard): connection → ttl.
    members: HashMap<(MemberSet, u32), Members>,
    /// User index: (tenant, user) → connection → ttl.
    users: HashMap<(TenantId, UserId), Members>,
    /// Dedupe markers by key.
    markers: HashMap<String, Marker>,
    /// Frame-rate TAT (ms) by connection; kept with the connection item on
    /// DynamoDB.
    frame_tats: HashMap<ConnectionId, i64>,
    /// Publish-rate TAT (ms) by tenant.
    publish_tats: HashMap<TenantId, i64>,
    /// Signal-rate TAT (ms) by connection.
    signal_tats: HashMap<ConnectionId, i64>,
    /// Room streams by (tenant, room).
    streams: HashMap<(TenantId, RoomId), Stream>,
    /// Presence by (tenant, room).
    presence: HashMap<(TenantId, RoomId), RoomPresence>,
    /// Claims since expired markers were last dropped.
    claims_since_sweep: usize,
    /// Removed connection items, as the table's stream records them.
    changes: ChangeLog,
}

/// Change records not yet acknowledged by their one reader (the sweeper's
/// mapping), oldest first.
#[derive(Default)]
struct ChangeLog {
    records: VecDeque<EventRecord>,
    next_sequence: u64,
}

/// Most unread change records kept; past it the oldest are dropped (as a
/// DynamoDB stream drops records after 24 hours), so memory stays bounded
/// if the sweeper stops. Each is under 1 KB.
const CHANGE_LOG_CAP: usize = 100_000;

/// Claims between two sweeps of expired dedupe markers: keeps the map
/// bounded by the markers of the last dedupe window, at a cost amortized
/// over this many claims.
const MARKER_SWEEP_EVERY: usize = 4_096;

struct Marker {
    owner: String,
    /// `Some(lease end, ms)` while being planned, `Some(0)` once released
    /// by a failed attempt; `None` once done.
    lease_until_ms: Option<i64>,
    /// Seconds since the epoch.
    ttl: i64,
    /// The stream number the event got.
    seq: Option<u64>,
}

/// A room's present users and when its last `presence.count` went out.
#[derive(Default)]
struct RoomPresence {
    members: BTreeMap<UserId, Present>,
    last_count_ms: Option<i64>,
}

struct Present {
    connections: std::collections::BTreeSet<ConnectionId>,
    state: Option<Box<RawValue>>,
    version: u64,
    ttl: i64,
}

impl RoomPresence {
    /// Present users, as DynamoDB's count item has them: a member whose
    /// TTL passed is counted until it enters again or leaves. O(1), under
    /// the store's lock.
    fn count(&self) -> u64 {
        self.members.len() as u64
    }

    fn member(user: &UserId, p: &Present) -> PresenceMember {
        PresenceMember {
            user: user.clone(),
            connections: p.connections.len(),
            state: p.state.clone(),
            version: p.version,
        }
    }
}

/// One room's counter and its live entries, oldest first.
#[derive(Default)]
struct Stream {
    head: u64,
    entries: BTreeMap<u64, StreamEntry>,
}

impl Tables {
    /// Removes a connection item (and its user-index entry, as DynamoDB
    /// drops it from the index) and records the removal. False when it was
    /// not there.
    fn remove_connection(&mut self, id: &ConnectionId, by_ttl: bool, now_ms: i64) -> bool {
        let Some(record) = self.connections.remove(id) else {
            return false;
        };
        self.frame_tats.remove(id);
        if let Some(m) = self
            .users
            .get_mut(&(record.tenant.clone(), record.user.clone()))
        {
            m.remove(id);
        }
        let log = &mut self.changes;
        log.next_sequence += 1;
        log.records
            .push_back(removal_record(&record, log.next_sequence, by_ttl, now_ms));
        if log.records.len() > CHANGE_LOG_CAP {
            log.records.pop_front();
            tracing::warn!(
                cap = CHANGE_LOG_CAP,
                "change log full: the oldest unswept removal was dropped (its memberships now end with their TTL)"
            );
        }
        true
    }
}

pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    shards: u32,
    page_size: usize,
    /// Most entries kept per room stream (older ones are dropped).
    stream_cap: u64,
    // A std Mutex: every critical section is a few map operations with no
    // await inside, so it is never held across a suspension point.
    tables: Mutex<Tables>,
    /// Wakes the change feed's reader.
    changed: tokio::sync::Notify,
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock>, shards: u32) -> Self {
        Self::with_page_size(clock, shards, DEFAULT_PAGE_SIZE)
    }

    pub fn with_page_size(clock: Arc<dyn Clock>, shards: u32, page_size: usize) -> Self {
        Self {
            clock,
            shards: shards.max(1),
            page_size: page_size.max(1),
            stream_cap: u64::MAX,
            tables: Mutex::new(Tables::default()),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Keeps at most `cap` entries per room stream (`--stream-max-events`),
    /// so memory stays bounded whatever is published.
    pub fn with_stream_cap(mut self, cap: u64) -> Self {
        self.stream_cap = cap.max(1);
        self
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way later reads rely on, so recover the guard.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of live connections (for tests and the local stack's stats).
    pub fn connection_count(&self) -> usize {
        let now = self.clock.now_secs();
        self.tables()
            .connections
            .values()
            .filter(|c| c.is_live(now))
            .count()
    }

    /// DynamoDB's TTL process for connection items: deletes those whose
    /// heartbeat deadline (their TTL attribute) has passed on the store's
    /// clock, recording each removal as TTL's. Returns how many. The local
    /// stack runs it periodically; tests call it after moving the clock.
    pub fn expire_connections(&self) -> usize {
        let now_ms = self.clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let mut t = self.tables();
        let due: Vec<ConnectionId> = t
            .connections
            .values()
            .filter(|c| c.idle_until <= now)
            .map(|c| c.id.clone())
            .collect();
        for id in &due {
            t.remove_connection(id, true, now_ms);
        }
        drop(t);
        if !due.is_empty() {
            self.changed.notify_one();
        }
        due.len()
    }

    fn delete_items(&self, ids: &[ConnectionId]) -> usize {
        let now_ms = self.clock.now_ms();
        let mut t = self.tables();
        let removed = ids
            .iter()
            .filter(|id| t.remove_connection(id, false, now_ms))
            .count();
        drop(t);
        if removed > 0 {
            self.changed.notify_one();
        }
        removed
    }

    fn page(
        &self,
        members: Option<&Members>,
        cursor: Option<&str>,
    ) -> Result<Page<ConnectionId>, StoreError> {
        let now = self.clock.now_secs();
        let start = match cursor {
            None => Bound::Unbounded,
            Some(c) => Bound::Excluded(ConnectionId::new(c).map_err(|_| StoreError::BadCursor)?),
        };
        let Some(members) = members else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        let mut items = Vec::new();
        let mut last = None;
        // Like DynamoDB, a page is a fixed number of scanned items; expired
        // ones are filtered out after the scan, so pages can be short.
        for (scanned, (id, ttl)) in members.range((start, Bound::Unbounded)).enumerate() {
            if scanned == self.page_size {
                return Ok(Page {
                    items,
                    next: last.map(|l: &ConnectionId| l.to_string()),
                });
            }
            last = Some(id);
            if *ttl > now {
                items.push(id.clone());
            }
        }
        Ok(Page { items, next: None })
    }
}

/// One GCRA admission on the TAT kept for `key`: `Some(ms)` to wait.
fn admit<K: Clone + Eq + std::hash::Hash>(
    tats: &mut HashMap<K, i64>,
    key: &K,
    now_ms: i64,
    rate: Rate,
) -> Option<i64> {
    match StoredGcra::new(rate).admit(tats.get(key).copied(), now_ms) {
        Ok(next) => {
            tats.insert(key.clone(), next);
            None
        }
        Err(wait) => Some(wait),
    }
}

fn room_set(tenant: &TenantId, room: &RoomId) -> MemberSet {
    MemberSet::Room {
        tenant: tenant.clone(),
        room: room.clone(),
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    fn shards(&self) -> u32 {
        self.shards
    }

    async fn put_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        let shard = shard_of(&record.id, self.shards);
        let mut t = self.tables();
        t.connections.insert(record.id.clone(), record.clone());
        t.users
            .entry((record.tenant.clone(), record.user.clone()))
            .or_default()
            .insert(record.id.clone(), record.ttl);
        t.members
            .entry((MemberSet::Tenant(record.tenant.clone()), shard))
            .or_default()
            .insert(record.id.clone(), record.ttl);
        Ok(())
    }

    async fn get_connection(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let now = self.clock.now_secs();
        Ok(self
            .tables()
            .connections
            .get(id)
            .filter(|c| c.is_live(now))
            .cloned())
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<bool, StoreError> {
        Ok(self.delete_items(std::slice::from_ref(id)) == 1)
    }

    async fn delete_connections(&self, ids: &[ConnectionId]) -> Result<(), StoreError> {
        self.delete_items(ids);
        Ok(())
    }

    async fn connection_rooms(&self, id: &ConnectionId) -> Result<Vec<RoomId>, StoreError> {
        Ok(self
            .tables()
            .rooms_of
            .get(id)
            .map(|rooms| rooms.keys().cloned().collect())
            .unwrap_or_default())
    }

    async fn purge_connection(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        rooms: &[RoomId],
    ) -> Result<(), StoreError> {
        let shard = shard_of(id, self.shards);
        let mut t = self.tables();
        if let Some(joined) = t.rooms_of.get_mut(id) {
            for room in rooms {
                joined.remove(room);
            }
            if joined.is_empty() {
                t.rooms_of.remove(id);
            }
        }
        let mut sets: Vec<MemberSet> = rooms.iter().map(|r| room_set(tenant, r)).collect();
        sets.push(MemberSet::Tenant(tenant.clone()));
        for set in sets {
            let key = (set, shard);
            if let Some(m) = t.members.get_mut(&key) {
                m.remove(id);
                if m.is_empty() {
                    t.members.remove(&key);
                }
            }
        }
        t.signal_tats.remove(id);
        Ok(())
    }

    async fn join_room(
        &self,
        record: &ConnectionRecord,
        room: &RoomId,
        granted: Rights,
    ) -> Result<(), StoreError> {
        let shard = shard_of(&record.id, self.shards);
        let mut t = self.tables();
        t.members
            .entry((room_set(&record.tenant, room), shard))
            .or_default()
            .insert(record.id.clone(), record.ttl);
        t.rooms_of
            .entry(record.id.clone())
            .or_default()
            .insert(room.clone(), (record.ttl, granted));
        Ok(())
    }

    async fn leave_room(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        room: &RoomId,
    ) -> Result<bool, StoreError> {
        let shard = shard_of(id, self.shards);
        let mut t = self.tables();
        let was_member = t
            .members
            .get_mut(&(room_set(tenant, room), shard))
            .is_some_and(|m| m.remove(id).is_some());
        if let Some(rooms) = t.rooms_of.get_mut(id) {
            rooms.remove(room);
        }
        Ok(was_member)
    }

    async fn room_count(&self, id: &ConnectionId) -> Result<usize, StoreError> {
        let now = self.clock.now_secs();
        Ok(self.tables().rooms_of.get(id).map_or(0, |rooms| {
            rooms.values().filter(|(ttl, _)| *ttl > now).count()
        }))
    }

    async fn membership(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        room: &RoomId,
    ) -> Result<Option<Rights>, StoreError> {
        let now = self.clock.now_secs();
        let shard = shard_of(id, self.shards);
        let t = self.tables();
        let live = t
            .members
            .get(&(room_set(tenant, room), shard))
            .and_then(|m| m.get(id))
            .is_some_and(|ttl| *ttl > now);
        let granted = t
            .rooms_of
            .get(id)
            .and_then(|rooms| rooms.get(room))
            .map_or(Rights::NONE, |(_, granted)| *granted);
        Ok(live.then_some(granted))
    }

    async fn admit_frame(
        &self,
        id: &ConnectionId,
        now_ms: i64,
        rate: Option<Rate>,
        idle_until: i64,
    ) -> Result<Option<FrameAdmission>, StoreError> {
        let mut t = self.tables();
        if !t.connections.contains_key(id) {
            return Ok(None);
        }
        let retry_after_ms = match rate {
            None => None,
            Some(rate) => {
                let tat = t.frame_tats.get(id).copied();
                match StoredGcra::new(rate).admit(tat, now_ms) {
                    Ok(next) => {
                        t.frame_tats.insert(id.clone(), next);
                        None
                    }
                    Err(wait) => Some(wait),
                }
            }
        };
        let Some(record) = t.connections.get_mut(id) else {
            return Ok(None);
        };
        // An admitted frame is the connection's heartbeat: it moves the
        // heartbeat deadline on (its life, `ttl`, stays: an expired
        // connection stays expired).
        if retry_after_ms.is_none() {
            record.last_seen_ms = now_ms;
            record.idle_until = idle_until;
        }
        Ok(Some(FrameAdmission {
            record: record.clone(),
            retry_after_ms,
        }))
    }

    async fn admit_publish(
        &self,
        tenant: &TenantId,
        now_ms: i64,
        rate: Rate,
    ) -> Result<Option<i64>, StoreError> {
        Ok(admit(&mut self.tables().publish_tats, tenant, now_ms, rate))
    }

    async fn admit_signal(
        &self,
        id: &ConnectionId,
        now_ms: i64,
        rate: Rate,
    ) -> Result<Option<i64>, StoreError> {
        Ok(admit(&mut self.tables().signal_tats, id, now_ms, rate))
    }

    async fn refresh_connection(
        &self,
        id: &ConnectionId,
        token_expires_at: i64,
        capabilities: Option<&Capabilities>,
        ttl: i64,
    ) -> Result<bool, StoreError> {
        let shard = shard_of(id, self.shards);
        let mut t = self.tables();
        let Some(record) = t.connections.get_mut(id) else {
            return Ok(false);
        };
        record.token_expires_at = token_expires_at;
        record.capabilities = capabilities.cloned();
        record.ttl = ttl;
        let (tenant, user) = (record.tenant.clone(), record.user.clone());
        let rooms: Vec<RoomId> = match t.rooms_of.get_mut(id) {
            Some(rooms) => rooms
                .iter_mut()
                .map(|(room, entry)| {
                    entry.0 = ttl;
                    room.clone()
                })
                .collect(),
            None => Vec::new(),
        };
        let mut sets: Vec<MemberSet> = rooms.iter().map(|r| room_set(&tenant, r)).collect();
        sets.push(MemberSet::Tenant(tenant.clone()));
        for set in sets {
            if let Some(entry) = t.members.get_mut(&(set, shard)).and_then(|m| m.get_mut(id)) {
                *entry = ttl;
            }
        }
        if let Some(entry) = t.users.get_mut(&(tenant, user)).and_then(|m| m.get_mut(id)) {
            *entry = ttl;
        }
        Ok(true)
    }

    async fn members_page(
        &self,
        set: &MemberSet,
        shard: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ConnectionId>, StoreError> {
        let t = self.tables();
        self.page(t.members.get(&(set.clone(), shard)), cursor)
    }

    async fn user_connections_page(
        &self,
        tenant: &TenantId,
        user: &UserId,
        cursor: Option<&str>,
    ) -> Result<Page<ConnectionId>, StoreError> {
        let t = self.tables();
        self.page(t.users.get(&(tenant.clone(), user.clone())), cursor)
    }
}

#[async_trait]
impl ChangeFeed for MemoryStore {
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<EventRecord>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a removal in between still
            // wakes this reader.
            let changed = self.changed.notified();
            {
                let t = self.tables();
                if !t.changes.records.is_empty() {
                    return Ok(t.changes.records.iter().take(max).cloned().collect());
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn acknowledge(&self, count: usize) {
        let mut t = self.tables();
        let count = count.min(t.changes.records.len());
        t.changes.records.drain(..count);
    }
}

#[async_trait]
impl EventDedupe for MemoryStore {
    async fn claim_event(
        &self,
        key: &str,
        owner: &str,
        now_ms: i64,
        lease: Duration,
    ) -> Result<EventClaim, StoreError> {
        let now_secs = now_ms.div_euclid(1000);
        let mut t = self.tables();
        t.claims_since_sweep += 1;
        if t.claims_since_sweep >= MARKER_SWEEP_EVERY {
            t.claims_since_sweep = 0;
            t.markers.retain(|_, m| m.ttl > now_secs);
        }
        let prior = match t.markers.get(key).filter(|m| m.ttl > now_secs) {
            None => PriorAttempt::None,
            Some(m) => match m.lease_until_ms {
                None => {
                    return Ok(EventClaim::AlreadyDone {
                        owner: m.owner.clone(),
                    });
                }
                Some(until) if until > now_ms => {
                    return Ok(EventClaim::InProgress {
                        owner: m.owner.clone(),
                    });
                }
                Some(0) => m.seq.map_or(PriorAttempt::None, PriorAttempt::Numbered),
                // The lease has passed: its planner died; take over.
                Some(_) => PriorAttempt::Crashed,
            },
        };
        let lease_until_ms = now_ms + lease.as_millis() as i64;
        t.markers.insert(
            key.to_string(),
            Marker {
                owner: owner.to_string(),
                lease_until_ms: Some(lease_until_ms),
                ttl: lease_until_ms.div_euclid(1000) + 1 + CLAIM_KEPT_AFTER_LEASE_SECS,
                seq: None,
            },
        );
        Ok(EventClaim::Claimed { prior })
    }

    async fn complete_event(
        &self,
        key: &str,
        owner: &str,
        expires_at_secs: i64,
        seq: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut t = self.tables();
        t.markers.insert(
            key.to_string(),
            Marker {
                owner: owner.to_string(),
                lease_until_ms: None,
                ttl: expires_at_secs,
                seq,
            },
        );
        Ok(())
    }

    async fn release_event(
        &self,
        key: &str,
        owner: &str,
        seq: Option<u64>,
        expires_at_secs: i64,
    ) -> Result<(), StoreError> {
        let mut t = self.tables();
        let Some(m) = t
            .markers
            .get_mut(key)
            .filter(|m| m.owner == owner && m.lease_until_ms.is_some_and(|until| until > 0))
        else {
            return Ok(());
        };
        match seq {
            Some(seq) => {
                m.lease_until_ms = Some(0);
                m.ttl = expires_at_secs;
                m.seq = Some(seq);
            }
            None => {
                t.markers.remove(key);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl RoomStreams for MemoryStore {
    async fn next_seq(&self, tenant: &TenantId, room: &RoomId) -> Result<u64, StoreError> {
        let mut t = self.tables();
        let stream = t.streams.entry((tenant.clone(), room.clone())).or_default();
        stream.head += 1;
        Ok(stream.head)
    }

    async fn head(&self, tenant: &TenantId, room: &RoomId) -> Result<u64, StoreError> {
        Ok(self
            .tables()
            .streams
            .get(&(tenant.clone(), room.clone()))
            .map_or(0, |s| s.head))
    }

    async fn put_entry(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        entry: &StreamEntry,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_secs();
        let mut t = self.tables();
        let stream = t.streams.entry((tenant.clone(), room.clone())).or_default();
        stream.head = stream.head.max(entry.seq);
        stream
            .entries
            .entry(entry.seq)
            .or_insert_with(|| entry.clone());
        // Entries expire in order; the cap drops the oldest.
        let mut len = stream.entries.len() as u64;
        while let Some(first) = stream.entries.first_entry() {
            if first.get().ttl > now && len <= self.stream_cap {
                break;
            }
            first.remove();
            len -= 1;
        }
        Ok(())
    }

    async fn get_entry(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        seq: u64,
    ) -> Result<Option<StreamEntry>, StoreError> {
        let now = self.clock.now_secs();
        Ok(self
            .tables()
            .streams
            .get(&(tenant.clone(), room.clone()))
            .and_then(|s| s.entries.get(&seq))
            .filter(|e| e.ttl > now)
            .cloned())
    }

    async fn read(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        range: StreamRange,
        limit: usize,
    ) -> Result<Vec<StreamEntry>, StoreError> {
        let now = self.clock.now_secs();
        let t = self.tables();
        let Some(stream) = t.streams.get(&(tenant.clone(), room.clone())) else {
            return Ok(Vec::new());
        };
        let live = |e: &&StreamEntry| e.ttl > now;
        Ok(match range {
            StreamRange::After(seq) => stream
                .entries
                .range((Excluded(seq), Unbounded))
                .map(|(_, e)| e)
                .filter(live)
                .take(limit)
                .cloned()
                .collect(),
            StreamRange::Before(seq) => {
                let mut page: Vec<StreamEntry> = stream
                    .entries
                    .range(..seq)
                    .rev()
                    .map(|(_, e)| e)
                    .filter(live)
                    .take(limit)
                    .cloned()
                    .collect();
                page.reverse();
                page
            }
        })
    }

    async fn edit_entry(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        seq: u64,
        edit: &Edit,
        updated_at_ms: i64,
    ) -> Result<EditOutcome, StoreError> {
        let now = self.clock.now_secs();
        let mut t = self.tables();
        let Some(message) = t
            .streams
            .get_mut(&(tenant.clone(), room.clone()))
            .and_then(|s| s.entries.get_mut(&seq))
            .filter(|e| e.ttl > now && e.kind == EntryKind::Message)
        else {
            return Ok(EditOutcome::Missing);
        };
        if message.deleted {
            return Ok(EditOutcome::Deleted);
        }
        match edit {
            Edit::Update(data) => message.data = Some(data.clone()),
            Edit::Delete => {
                message.data = None;
                message.deleted = true;
            }
        }
        message.updated_at_ms = Some(updated_at_ms);
        Ok(EditOutcome::Applied)
    }

    async fn find_by_key(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        dedupe_key: &str,
        scan: usize,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self
            .tables()
            .streams
            .get(&(tenant.clone(), room.clone()))
            .and_then(|s| {
                s.entries
                    .values()
                    .rev()
                    .take(scan)
                    .find(|e| e.dedupe_key == dedupe_key)
                    .map(|e| e.seq)
            }))
    }
}

#[async_trait]
impl PresenceStore for MemoryStore {
    async fn enter(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        user: &UserId,
        connection: &ConnectionId,
        state: Option<&RawValue>,
        ttl: i64,
    ) -> Result<PresenceOutcome, StoreError> {
        let now = self.clock.now_secs();
        let mut t = self.tables();
        let presence = t
            .presence
            .entry((tenant.clone(), room.clone()))
            .or_default();
        let first = first_presence_version(self.clock.now_ms());
        let present = presence.members.entry(user.clone()).or_insert(Present {
            connections: Default::default(),
            state: None,
            version: first,
            ttl,
        });
        if present.ttl <= now {
            // Expired (its connections vanished): it enters anew.
            present.connections.clear();
            present.state = None;
        }
        let joined = present.connections.is_empty();
        present.connections.insert(connection.clone());
        present.ttl = present.ttl.max(ttl);
        present.version += 1;
        if let Some(state) = state {
            present.state = Some(state.to_owned());
        }
        let member = RoomPresence::member(user, present);
        let change = if joined {
            PresenceChange::Joined(member)
        } else if state.is_some() {
            PresenceChange::Updated(member)
        } else {
            PresenceChange::Unchanged
        };
        Ok(PresenceOutcome {
            change,
            members: presence.count(),
        })
    }

    async fn exit(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        user: &UserId,
        connection: &ConnectionId,
    ) -> Result<PresenceOutcome, StoreError> {
        let mut t = self.tables();
        let Some(presence) = t.presence.get_mut(&(tenant.clone(), room.clone())) else {
            return Ok(PresenceOutcome::unchanged(0));
        };
        let change = match presence.members.get_mut(user) {
            Some(present) if present.connections.contains(connection) => {
                present.connections.remove(connection);
                present.version += 1;
                if present.connections.is_empty() {
                    let version = present.version;
                    presence.members.remove(user);
                    PresenceChange::Left {
                        user: user.clone(),
                        version,
                    }
                } else {
                    PresenceChange::Unchanged
                }
            }
            _ => PresenceChange::Unchanged,
        };
        let members = presence.count();
        if presence.members.is_empty() {
            t.presence.remove(&(tenant.clone(), room.clone()));
        }
        Ok(PresenceOutcome { change, members })
    }

    async fn set_state(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        user: &UserId,
        connection: &ConnectionId,
        state: &RawValue,
    ) -> Result<PresenceOutcome, StoreError> {
        let now = self.clock.now_secs();
        let mut t = self.tables();
        let Some(presence) = t.presence.get_mut(&(tenant.clone(), room.clone())) else {
            return Ok(PresenceOutcome::unchanged(0));
        };
        let change = match presence.members.get_mut(user) {
            Some(present) if present.ttl > now && present.connections.contains(connection) => {
                present.state = Some(state.to_owned());
                present.version += 1;
                PresenceChange::Updated(RoomPresence::member(user, present))
            }
            _ => PresenceChange::Unchanged,
        };
        Ok(PresenceOutcome {
            change,
            members: presence.count(),
        })
    }

    async fn presence_count(&self, tenant: &TenantId, room: &RoomId) -> Result<u64, StoreError> {
        Ok(self
            .tables()
            .presence
            .get(&(tenant.clone(), room.clone()))
            .map_or(0, RoomPresence::count))
    }

    async fn presence_page(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<PresenceMember>, StoreError> {
        let now = self.clock.now_secs();
        let start = match cursor {
            None => Unbounded,
            Some(c) => Excluded(UserId::new(c).map_err(|_| StoreError::BadCursor)?),
        };
        let t = self.tables();
        let Some(presence) = t.presence.get(&(tenant.clone(), room.clone())) else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        let mut items: Vec<PresenceMember> = presence
            .members
            .range((start, Unbounded))
            .filter(|(_, p)| p.ttl > now)
            .take(limit + 1)
            .map(|(user, p)| RoomPresence::member(user, p))
            .collect();
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|m| m.user.to_string()).unwrap_or_default()
        });
        Ok(Page { items, next })
    }

    async fn claim_count_notice(
        &self,
        tenant: &TenantId,
        room: &RoomId,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut t = self.tables();
        let presence = t
            .presence
            .entry((tenant.clone(), room.clone()))
            .or_default();
        if presence
            .last_count_ms
            .is_some_and(|last| last + interval_ms > now_ms)
        {
            return Ok(false);
        }
        presence.last_count_ms = Some(now_ms);
        Ok(true)
    }
}

// Tested by the store and dedupe contract suites in
// `shared/aws/tests/contract/store.rs`, side by side with the DynamoDB store.
