//! A TTL-aware in-memory connection store with the same shape as the
//! DynamoDB table: connection items, sharded member sets (rooms and the
//! tenant-wide set), reverse memberships and a user index.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::Clock;
use crate::ids::{ConnectionId, RoomId, TenantId, UserId};
use crate::ports::{
    ConnectionRecord, ConnectionStore, MemberSet, Page, RemovedConnection, StoreError, shard_of,
};

/// Items per page, like DynamoDB's 1 MB pages of small items.
pub const DEFAULT_PAGE_SIZE: usize = 1_000;

type Members = BTreeMap<ConnectionId, i64>;

#[derive(Default)]
struct Tables {
    connections: HashMap<ConnectionId, ConnectionRecord>,
    /// Reverse memberships: connection → room → ttl.
    rooms_of: HashMap<ConnectionId, BTreeMap<RoomId, i64>>,
    /// Member sets by (set, shard): connection → ttl.
    members: HashMap<(MemberSet, u32), Members>,
    /// User index: (tenant, user) → connection → ttl.
    users: HashMap<(TenantId, UserId), Members>,
}

pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    shards: u32,
    page_size: usize,
    // A std Mutex: every critical section is a few map operations with no
    // await inside, so it is never held across a suspension point.
    tables: Mutex<Tables>,
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
            tables: Mutex::new(Tables::default()),
        }
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
            .filter(|c| c.ttl > now)
            .count()
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
            .filter(|c| c.ttl > now)
            .cloned())
    }

    async fn touch_connection(&self, id: &ConnectionId, now_ms: i64) -> Result<bool, StoreError> {
        let now = self.clock.now_secs();
        match self.tables().connections.get_mut(id) {
            Some(c) if c.ttl > now => {
                c.last_seen_ms = now_ms;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_connection(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<RemovedConnection>, StoreError> {
        let shard = shard_of(id, self.shards);
        let mut t = self.tables();
        let rooms = t.rooms_of.remove(id).unwrap_or_default();
        let Some(record) = t.connections.remove(id) else {
            // Memberships can outlive a connection item only if the item was
            // never written; their sets still need cleaning.
            return Ok(None);
        };
        for room in rooms.keys() {
            if let Some(m) = t.members.get_mut(&(room_set(&record.tenant, room), shard)) {
                m.remove(id);
            }
        }
        if let Some(m) = t
            .members
            .get_mut(&(MemberSet::Tenant(record.tenant.clone()), shard))
        {
            m.remove(id);
        }
        if let Some(m) = t
            .users
            .get_mut(&(record.tenant.clone(), record.user.clone()))
        {
            m.remove(id);
        }
        Ok(Some(RemovedConnection {
            record,
            rooms: rooms.into_keys().collect(),
        }))
    }

    async fn join_room(&self, record: &ConnectionRecord, room: &RoomId) -> Result<(), StoreError> {
        let shard = shard_of(&record.id, self.shards);
        let mut t = self.tables();
        t.members
            .entry((room_set(&record.tenant, room), shard))
            .or_default()
            .insert(record.id.clone(), record.ttl);
        t.rooms_of
            .entry(record.id.clone())
            .or_default()
            .insert(room.clone(), record.ttl);
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

    async fn is_member(
        &self,
        id: &ConnectionId,
        tenant: &TenantId,
        room: &RoomId,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_secs();
        let shard = shard_of(id, self.shards);
        Ok(self
            .tables()
            .members
            .get(&(room_set(tenant, room), shard))
            .and_then(|m| m.get(id))
            .is_some_and(|ttl| *ttl > now))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn record(id: &str, user: &str, ttl: i64) -> ConnectionRecord {
        ConnectionRecord {
            id: ConnectionId::new(id).unwrap(),
            tenant: TenantId::new("acme").unwrap(),
            user: UserId::new(user).unwrap(),
            connected_at_ms: 0,
            last_seen_ms: 0,
            ttl,
        }
    }

    async fn all(store: &MemoryStore, set: &MemberSet) -> Vec<String> {
        let mut out = Vec::new();
        for shard in 0..store.shards() {
            let mut cursor = None;
            loop {
                let page = store
                    .members_page(set, shard, cursor.as_deref())
                    .await
                    .unwrap();
                out.extend(page.items.iter().map(|c| c.to_string()));
                match page.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn pages_through_every_shard_and_filters_expired() {
        let clock = ManualClock::at_ms(0);
        let store = MemoryStore::with_page_size(clock.clone(), 3, 7);
        let room = RoomId::new("lobby").unwrap();
        for i in 0..50 {
            let ttl = if i % 10 == 0 { 500 } else { 5_000 };
            let r = record(&format!("c{i:02}"), "u", ttl);
            store.put_connection(&r).await.unwrap();
            store.join_room(&r, &room).await.unwrap();
        }
        let set = room_set(&TenantId::new("acme").unwrap(), &room);
        let members = all(&store, &set).await;
        assert_eq!(members.len(), 50);
        clock.advance_ms(1_000_000);
        let members = all(&store, &set).await;
        assert_eq!(members.len(), 45);
        assert!(!members.contains(&"c10".to_string()));
        assert_eq!(store.connection_count(), 45);
    }

    #[tokio::test]
    async fn delete_removes_memberships_and_indexes() {
        let clock = ManualClock::at_ms(0);
        let store = MemoryStore::new(clock, 4);
        let tenant = TenantId::new("acme").unwrap();
        let (a, b) = (RoomId::new("a").unwrap(), RoomId::new("b").unwrap());
        let r = record("c1", "alice", 100);
        store.put_connection(&r).await.unwrap();
        store.join_room(&r, &a).await.unwrap();
        store.join_room(&r, &b).await.unwrap();
        assert!(store.is_member(&r.id, &tenant, &a).await.unwrap());
        let removed = store.delete_connection(&r.id).await.unwrap().unwrap();
        assert_eq!(removed.rooms, vec![a.clone(), b.clone()]);
        assert!(!store.is_member(&r.id, &tenant, &a).await.unwrap());
        assert!(
            all(&store, &MemberSet::Tenant(tenant.clone()))
                .await
                .is_empty()
        );
        let user = UserId::new("alice").unwrap();
        assert!(
            store
                .user_connections_page(&tenant, &user, None)
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert_eq!(store.delete_connection(&r.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn leave_and_touch() {
        let clock = ManualClock::at_ms(0);
        let store = MemoryStore::new(clock, 2);
        let tenant = TenantId::new("acme").unwrap();
        let room = RoomId::new("a").unwrap();
        let r = record("c1", "alice", 100);
        store.put_connection(&r).await.unwrap();
        store.join_room(&r, &room).await.unwrap();
        assert!(store.leave_room(&r.id, &tenant, &room).await.unwrap());
        assert!(!store.leave_room(&r.id, &tenant, &room).await.unwrap());
        assert!(store.touch_connection(&r.id, 42).await.unwrap());
        assert_eq!(
            store
                .get_connection(&r.id)
                .await
                .unwrap()
                .unwrap()
                .last_seen_ms,
            42
        );
        let unknown = ConnectionId::new("nope").unwrap();
        assert!(!store.touch_connection(&unknown, 42).await.unwrap());
        assert!(matches!(
            store
                .members_page(&MemberSet::Tenant(tenant), 0, Some("a#b"))
                .await,
            Err(StoreError::BadCursor)
        ));
    }
}
