//! In-memory fakes of the ports, with fault injection, for fast tests of the core and
//! the HTTP layer. They are also the reference model of the property tests: a fault
//! plan decides, item by item, whether a call fails before doing the work or after
//! doing it (the answer lost: the ambiguous case). Production never uses them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::domain::{AlbumId, ImageId, ImageRecord, ObjectKey};
use crate::ports::{
    AlbumPage, Catalog, HandOff, Lookup, ObjectStore, Partial, StoreError, StoreErrorKind,
};
use crate::retry::Deadline;

/// Which port operation an injected fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ReadRecord,
    DeleteRecord,
    DeleteObject,
}

/// What an injected fault does to one item of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The item fails and nothing was done to it.
    Fail(StoreErrorKind),
    /// The work was done but the answer was lost: the caller is told it failed. For a
    /// read this is the same as `Fail`.
    Ambiguous(StoreErrorKind),
}

/// Decides the fault (if any) for one item of one call: `(operation, item)`.
pub type FaultPlan = Box<dyn FnMut(Op, &str) -> Option<Fault> + Send>;

/// Asks `plan` about `item`, after the fixed `failing` set (which fails plainly, as
/// `kind`).
fn fault_for(
    failing: &Mutex<HashSet<String>>,
    kind: StoreErrorKind,
    plan: &Mutex<Option<FaultPlan>>,
    op: Op,
    item: &str,
) -> Option<Fault> {
    if failing.lock().unwrap().contains(item) {
        return Some(Fault::Fail(kind));
    }
    plan.lock()
        .unwrap()
        .as_mut()
        .and_then(|plan| plan(op, item))
}

fn fault_error(fault: Fault, operation: &'static str) -> StoreError {
    let (Fault::Fail(kind) | Fault::Ambiguous(kind)) = fault;
    StoreError::new(kind, operation).with_source("injected fault")
}

/// A catalog in a map. Ids named by `fail_get` / `fail_delete` fail as a store would;
/// a `FaultPlan` injects anything else.
#[derive(Default)]
pub struct MemoryCatalog {
    records: Mutex<BTreeMap<ImageId, ImageRecord>>,
    failing_gets: Mutex<HashSet<String>>,
    failing_deletes: Mutex<HashSet<String>>,
    plan: Mutex<Option<FaultPlan>>,
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

    pub fn contains(&self, id: &ImageId) -> bool {
        self.records.lock().unwrap().contains_key(id)
    }

    pub fn fail_get(&self, id: &str) {
        self.failing_gets.lock().unwrap().insert(id.to_owned());
    }

    pub fn fail_delete(&self, id: &str) {
        self.failing_deletes.lock().unwrap().insert(id.to_owned());
    }

    /// Injects faults from now on, as `plan` decides (replacing any earlier plan).
    pub fn set_faults(&self, plan: FaultPlan) {
        *self.plan.lock().unwrap() = Some(plan);
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
        let mut lookup = Lookup::default();
        for id in ids {
            let fault = fault_for(
                &self.failing_gets,
                StoreErrorKind::Unavailable,
                &self.plan,
                Op::ReadRecord,
                id.as_str(),
            );
            if let Some(fault) = fault {
                lookup.unread.push(id.clone());
                let err = fault_error(fault, "memory get");
                lookup.error = StoreError::worst(lookup.error, Some(err));
            } else if let Some(record) = self.records.lock().unwrap().get(id) {
                lookup.found.push(record.clone());
            }
        }
        lookup
    }

    async fn delete(&self, ids: &[ImageId], _deadline: Deadline) -> Partial<ImageId> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut result = Partial::default();
        for id in ids {
            let fault = fault_for(
                &self.failing_deletes,
                StoreErrorKind::Failed,
                &self.plan,
                Op::DeleteRecord,
                id.as_str(),
            );
            if !matches!(fault, Some(Fault::Fail(_))) {
                self.records.lock().unwrap().remove(id);
            }
            if let Some(fault) = fault {
                result.failed.push(id.clone());
                let err = fault_error(fault, "memory delete");
                result.error = StoreError::worst(result.error, Some(err));
            }
        }
        result
    }
}

/// An object store in a set. Keys named by `fail_key` cannot be deleted; a
/// `FaultPlan` injects anything else.
#[derive(Default)]
pub struct MemoryObjectStore {
    keys: Mutex<BTreeSet<String>>,
    failing: Mutex<HashSet<String>>,
    plan: Mutex<Option<FaultPlan>>,
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

    pub fn contains(&self, key: &str) -> bool {
        self.keys.lock().unwrap().contains(key)
    }

    pub fn fail_key(&self, key: &str) {
        self.failing.lock().unwrap().insert(key.to_owned());
    }

    /// Injects faults from now on, as `plan` decides (replacing any earlier plan).
    pub fn set_faults(&self, plan: FaultPlan) {
        *self.plan.lock().unwrap() = Some(plan);
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    async fn delete(&self, keys: &[ObjectKey], _deadline: Deadline) -> Partial<ObjectKey> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut result = Partial::default();
        for key in keys {
            let fault = fault_for(
                &self.failing,
                StoreErrorKind::Failed,
                &self.plan,
                Op::DeleteObject,
                key.as_str(),
            );
            if !matches!(fault, Some(Fault::Fail(_))) {
                self.keys.lock().unwrap().remove(key.as_str());
            }
            if let Some(fault) = fault {
                result.failed.push(key.clone());
                let err = fault_error(fault, "memory delete objects");
                result.error = StoreError::worst(result.error, Some(err));
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
