//! In-memory fakes of the ports, with fault injection, for fast tests of the core and
//! the HTTP layer. Production never uses them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::domain::{AlbumId, ImageId, ImageRecord, ObjectKey};
use crate::ports::{
    AlbumPage, Catalog, HandOff, Lookup, ObjectStore, Partial, StoreError, StoreErrorKind,
};
use crate::retry::Deadline;

/// A catalog in a map. Ids named by `fail_get` / `fail_delete` fail as a store would.
#[derive(Default)]
pub struct MemoryCatalog {
    records: Mutex<BTreeMap<ImageId, ImageRecord>>,
    failing_gets: Mutex<HashSet<String>>,
    failing_deletes: Mutex<HashSet<String>>,
    calls: AtomicUsize,
}

impl MemoryCatalog {
    pub fn put(&self, record: ImageRecord) {
        self.records
            .lock()
            .unwrap()
            .insert(record.id.clone(), record);
    }

    /// Ids of the records left, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.records
            .lock()
            .unwrap()
            .keys()
            .map(|id| id.to_string())
            .collect()
    }

    pub fn fail_get(&self, id: &str) {
        self.failing_gets.lock().unwrap().insert(id.to_owned());
    }

    pub fn fail_delete(&self, id: &str) {
        self.failing_deletes.lock().unwrap().insert(id.to_owned());
    }

    /// How many port calls were made.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Catalog for MemoryCatalog {
    async fn album_page(
        &self,
        album: &AlbumId,
        after: Option<&ImageId>,
        limit: usize,
        _deadline: Deadline,
    ) -> Result<AlbumPage, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let records = self.records.lock().unwrap();
        let mut ids = records
            .values()
            .filter(|r| &r.album_id == album && after.is_none_or(|a| &r.id > a))
            .map(|r| r.id.clone());
        let page: Vec<ImageId> = ids.by_ref().take(limit).collect();
        let next = if ids.next().is_some() {
            page.last().cloned()
        } else {
            None
        };
        Ok(AlbumPage { ids: page, next })
    }

    async fn get(&self, ids: &[ImageId], _deadline: Deadline) -> Lookup {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let records = self.records.lock().unwrap();
        let failing = self.failing_gets.lock().unwrap();
        let mut lookup = Lookup::default();
        for id in ids {
            if failing.contains(id.as_str()) {
                lookup.unread.push(id.clone());
                lookup.error = Some(StoreError::new(StoreErrorKind::Unavailable, "memory get"));
            } else if let Some(record) = records.get(id) {
                lookup.found.push(record.clone());
            }
        }
        lookup
    }

    async fn delete(&self, ids: &[ImageId], _deadline: Deadline) -> Partial<ImageId> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut records = self.records.lock().unwrap();
        let failing = self.failing_deletes.lock().unwrap();
        let mut result = Partial::default();
        for id in ids {
            if failing.contains(id.as_str()) {
                result.failed.push(id.clone());
                result.error = Some(StoreError::new(StoreErrorKind::Failed, "memory delete"));
            } else {
                records.remove(id);
            }
        }
        result
    }
}

/// An object store in a set. Keys named by `fail_key` cannot be deleted.
#[derive(Default)]
pub struct MemoryObjectStore {
    keys: Mutex<BTreeSet<String>>,
    failing: Mutex<HashSet<String>>,
    calls: AtomicUsize,
}

impl MemoryObjectStore {
    pub fn put_all(&self, keys: &[String]) {
        self.keys.lock().unwrap().extend(keys.iter().cloned());
    }

    /// Keys of the objects left, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().iter().cloned().collect()
    }

    pub fn fail_key(&self, key: &str) {
        self.failing.lock().unwrap().insert(key.to_owned());
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    async fn delete(&self, keys: &[ObjectKey], _deadline: Deadline) -> Partial<ObjectKey> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut stored = self.keys.lock().unwrap();
        let failing = self.failing.lock().unwrap();
        let mut result = Partial::default();
        for key in keys {
            if failing.contains(key.as_str()) {
                result.failed.push(key.clone());
                result.error = Some(StoreError::new(
                    StoreErrorKind::Failed,
                    "memory delete objects",
                ));
            } else {
                stored.remove(key.as_str());
            }
        }
        result
    }
}

/// A hand-off that records what it was asked to continue.
#[derive(Default)]
pub struct MemoryHandOff {
    albums: Mutex<Vec<AlbumId>>,
}

impl MemoryHandOff {
    pub fn albums(&self) -> Vec<AlbumId> {
        self.albums.lock().unwrap().clone()
    }
}

#[async_trait]
impl HandOff for MemoryHandOff {
    async fn continue_album(&self, album: &AlbumId) -> Result<(), StoreError> {
        self.albums.lock().unwrap().push(album.clone());
        Ok(())
    }
}
