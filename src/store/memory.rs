//! In-memory fakes of the ports, with fault injection, for fast tests of the core and
//! the HTTP layer. They are also the reference model of the property tests: a fault
//! plan decides, item by item, whether a call fails before doing the work or after
//! doing it (the answer lost: the ambiguous case). Production never uses them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::domain::audit::AuditEvent;
use crate::domain::trash::{ListedAt, ObjectVersion, Tombstone, TrashEntry, VersionId};
use crate::domain::{AlbumId, ImageId, ImageRecord, ObjectKey};
use crate::ports::{
    AlbumPage, AuditLog, Catalog, HandOff, Lookup, ObjectStore, ObjectVersions, Partial,
    StoreError, StoreErrorKind, Trash, TrashPage,
};
use crate::retry::Deadline;

/// Which port operation an injected fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ReadRecord,
    DeleteRecord,
    DeleteObject,
    ListVersions,
    DeleteVersion,
    ReadEntry,
    PutEntry,
    RemoveEntry,
    PutRecord,
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
    /// The trash table: the catalog's fake is the trash's too, since moves write both.
    trash: Mutex<BTreeMap<ImageId, TrashEntry>>,
    /// Entries restored or erased: who closed them (a tombstone replaces an entry).
    tombstones: Mutex<BTreeMap<ImageId, Tombstone>>,
    /// Every record removed, in order: what the images table's stream would carry.
    removed: Mutex<Vec<ImageRecord>>,
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

    /// The record of `id`, as stored.
    pub fn record(&self, id: &ImageId) -> Option<ImageRecord> {
        self.records.lock().unwrap().get(id).cloned()
    }

    /// The trash entry of `id`, as stored.
    pub fn entry(&self, id: &ImageId) -> Option<TrashEntry> {
        self.trash.lock().unwrap().get(id).cloned()
    }

    /// The tombstone of `id`, if its entry was restored or erased (and not trashed again).
    pub fn tombstone(&self, id: &ImageId) -> Option<Tombstone> {
        self.tombstones.lock().unwrap().get(id).cloned()
    }

    /// Takes the records removed since the last call (the stream's batch).
    pub fn take_removed(&self) -> Vec<ImageRecord> {
        std::mem::take(&mut *self.removed.lock().unwrap())
    }

    fn fault(&self, op: Op, item: &str) -> Option<Fault> {
        let kind = StoreErrorKind::Failed;
        match op {
            Op::ReadRecord => fault_for(
                &self.failing_gets,
                StoreErrorKind::Unavailable,
                &self.plan,
                op,
                item,
            ),
            Op::DeleteRecord => fault_for(&self.failing_deletes, kind, &self.plan, op, item),
            _ => fault_for(&Mutex::default(), kind, &self.plan, op, item),
        }
    }

    fn remove_record(&self, id: &ImageId) {
        if let Some(record) = self.records.lock().unwrap().remove(id) {
            self.removed.lock().unwrap().push(record);
        }
    }

    /// Writes the items of each image (one per op), each under its own fault, as
    /// `BatchWriteItem` would: an image fails if any of its items does.
    fn write_items(
        &self,
        ids: impl Iterator<Item = ImageId>,
        ops: &[Op],
        mut apply: impl FnMut(&ImageId, Op),
        operation: &'static str,
    ) -> Partial<ImageId> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut result = Partial::default();
        for id in ids {
            let mut failed = false;
            for &op in ops {
                let fault = self.fault(op, id.as_str());
                if !matches!(fault, Some(Fault::Fail(_))) {
                    apply(&id, op);
                }
                if let Some(fault) = fault {
                    failed = true;
                    result.error =
                        StoreError::worst(result.error, Some(fault_error(fault, operation)));
                }
            }
            if failed {
                result.failed.push(id);
            }
        }
        result
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
            if let Some(fault) = self.fault(Op::ReadRecord, id.as_str()) {
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
            let fault = self.fault(Op::DeleteRecord, id.as_str());
            if !matches!(fault, Some(Fault::Fail(_))) {
                self.remove_record(id);
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

#[async_trait]
impl Trash for MemoryCatalog {
    async fn get(&self, ids: &[ImageId], _deadline: Deadline) -> Lookup<TrashEntry> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut lookup = Lookup::default();
        for id in ids {
            if let Some(fault) = self.fault(Op::ReadEntry, id.as_str()) {
                lookup.unread.push(id.clone());
                let err = fault_error(fault, "memory get trash entries");
                lookup.error = StoreError::worst(lookup.error, Some(err));
            } else if let Some(entry) = self.trash.lock().unwrap().get(id) {
                lookup.found.push(entry.clone());
            }
        }
        lookup
    }

    async fn move_in(&self, entries: &[TrashEntry], _deadline: Deadline) -> Partial<ImageId> {
        let by_id: BTreeMap<&ImageId, &TrashEntry> =
            entries.iter().map(|e| (&e.record.id, e)).collect();
        let apply = |id: &ImageId, op: Op| match op {
            Op::PutEntry => {
                self.tombstones.lock().unwrap().remove(id);
                self.trash
                    .lock()
                    .unwrap()
                    .insert(id.clone(), by_id[id].clone());
            }
            _ => self.remove_record(id),
        };
        let ids = entries.iter().map(|e| e.record.id.clone());
        self.write_items(
            ids,
            &[Op::PutEntry, Op::DeleteRecord],
            apply,
            "memory move to trash",
        )
    }

    async fn adopt(&self, entries: &[TrashEntry], _deadline: Deadline) -> Partial<ImageId> {
        let by_id: BTreeMap<&ImageId, &TrashEntry> =
            entries.iter().map(|e| (&e.record.id, e)).collect();
        let apply = |id: &ImageId, _op: Op| {
            let mut trash = self.trash.lock().unwrap();
            if !trash.contains_key(id) {
                self.tombstones.lock().unwrap().remove(id);
                trash.insert(id.clone(), by_id[id].clone());
            }
        };
        let ids = entries.iter().map(|e| e.record.id.clone());
        self.write_items(ids, &[Op::PutEntry], apply, "memory put trash entries")
    }

    async fn put_back(&self, entries: &[TrashEntry], _deadline: Deadline) -> Partial<ImageId> {
        let by_id: BTreeMap<&ImageId, &TrashEntry> =
            entries.iter().map(|e| (&e.record.id, e)).collect();
        let apply = |id: &ImageId, _op: Op| self.put(by_id[id].record.clone());
        let ids = entries.iter().map(|e| e.record.id.clone());
        self.write_items(ids, &[Op::PutRecord], apply, "memory put records back")
    }

    async fn close(&self, tombstones: &[Tombstone], _deadline: Deadline) -> Partial<ImageId> {
        let by_id: BTreeMap<&ImageId, &Tombstone> = tombstones.iter().map(|t| (&t.id, t)).collect();
        let apply = |id: &ImageId, _op: Op| {
            self.trash.lock().unwrap().remove(id);
            let tombstone = by_id[id].clone();
            self.tombstones
                .lock()
                .unwrap()
                .insert(id.clone(), tombstone);
        };
        let ids = tombstones.iter().map(|t| t.id.clone());
        self.write_items(ids, &[Op::RemoveEntry], apply, "memory close entries")
    }

    async fn page(
        &self,
        album: &AlbumId,
        after: Option<&ListedAt>,
        limit: usize,
        _deadline: Deadline,
    ) -> Result<TrashPage, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let trash = self.trash.lock().unwrap();
        // Newest first: the order of the index (album, listed_at).
        let mut entries: Vec<&TrashEntry> =
            trash.values().filter(|e| e.album_id() == album).collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.listed_at()));
        let mut rest = entries
            .into_iter()
            .filter(|e| after.is_none_or(|after| e.listed_at() < *after));
        let page: Vec<&TrashEntry> = rest.by_ref().take(limit).collect();
        let next = rest.next().and(page.last()).map(|e| e.listed_at());
        let page = page.into_iter().map(TrashEntry::summary).collect();
        Ok(TrashPage {
            entries: page,
            next,
        })
    }
}

/// An object store: per key a stack of versions, newest last, each bytes or a delete
/// marker, as in S3. Unversioned (the default), a delete removes the key's stack;
/// `versioned()`, it pushes a delete marker (even onto one, as S3 does) and the key
/// reads as absent while a marker is on top. Keys named by `fail_key` cannot be
/// deleted; a `FaultPlan` injects anything else.
#[derive(Default)]
pub struct MemoryObjectStore {
    stacks: Mutex<BTreeMap<String, Vec<Version>>>,
    versioned: bool,
    next_version: AtomicUsize,
    failing: Mutex<HashSet<String>>,
    plan: Mutex<Option<FaultPlan>>,
    calls: AtomicUsize,
}

/// One version in a key's stack: `bytes` is `None` for a delete marker.
#[derive(Debug, Clone)]
struct Version {
    id: String,
    bytes: Option<String>,
}

impl MemoryObjectStore {
    /// A store with versioning on, as the bucket is when the trash is.
    pub fn versioned() -> Self {
        Self {
            versioned: true,
            ..Self::default()
        }
    }

    /// Puts each key's object (a new version of it in a versioned store); its bytes
    /// name the key and the version, so that a restore can be checked byte for byte.
    pub fn put_all(&self, keys: &[String]) {
        let mut stacks = self.stacks.lock().unwrap();
        for key in keys {
            let id = self.new_version_id();
            let version = Version {
                bytes: Some(format!("{key}@{id}")),
                id,
            };
            let stack = stacks.entry(key.clone()).or_default();
            if !self.versioned {
                stack.clear();
            }
            stack.push(version);
        }
    }

    fn new_version_id(&self) -> String {
        format!("v{}", self.next_version.fetch_add(1, Ordering::SeqCst))
    }

    /// Keys that a `GetObject` would read, sorted.
    pub fn keys(&self) -> Vec<String> {
        let stacks = self.stacks.lock().unwrap();
        stacks
            .iter()
            .filter(|(_, stack)| readable(stack).is_some())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Whether a `GetObject` of `key` would read bytes.
    pub fn contains(&self, key: &str) -> bool {
        self.read(key).is_some()
    }

    /// The bytes a `GetObject` of `key` would read.
    pub fn read(&self, key: &str) -> Option<String> {
        let stacks = self.stacks.lock().unwrap();
        stacks.get(key).and_then(|stack| readable(stack))
    }

    /// Whether any version of `key` (bytes or marker) is stored.
    pub fn has_versions(&self, key: &str) -> bool {
        self.stacks
            .lock()
            .unwrap()
            .get(key)
            .is_some_and(|stack| !stack.is_empty())
    }

    /// How many versions (bytes and markers) of `key` are stored.
    pub fn versions_of(&self, key: &str) -> usize {
        self.stacks.lock().unwrap().get(key).map_or(0, Vec::len)
    }

    /// Whether `key` holds bytes that removing the markers above them would show.
    pub fn restorable(&self, key: &str) -> bool {
        self.stacks
            .lock()
            .unwrap()
            .get(key)
            .is_some_and(|stack| stack.iter().any(|v| v.bytes.is_some()))
    }

    /// The newest bytes of `key`, current or hidden.
    pub fn newest_bytes(&self, key: &str) -> Option<String> {
        let stacks = self.stacks.lock().unwrap();
        stacks
            .get(key)
            .and_then(|stack| stack.iter().rev().find_map(|v| v.bytes.clone()))
    }

    /// Ends the trash window of `key`: every version below the current one is purged,
    /// and a marker left with nothing below it too (the bucket's lifecycle rule).
    pub fn purge_noncurrent(&self, key: &str) {
        let mut stacks = self.stacks.lock().unwrap();
        if let Some(stack) = stacks.get_mut(key) {
            let current = stack.pop();
            stack.clear();
            stack.extend(current.filter(|v| v.bytes.is_some()));
        }
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

    fn fault(&self, op: Op, item: &str) -> Option<Fault> {
        fault_for(&self.failing, StoreErrorKind::Failed, &self.plan, op, item)
    }
}

/// The bytes on top of a stack, if its top is not a delete marker.
fn readable(stack: &[Version]) -> Option<String> {
    stack.last().and_then(|v| v.bytes.clone())
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    async fn delete(&self, keys: &[ObjectKey], _deadline: Deadline) -> Partial<ObjectKey> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut result = Partial::default();
        for key in keys {
            let fault = self.fault(Op::DeleteObject, key.as_str());
            if !matches!(fault, Some(Fault::Fail(_))) {
                let marker = self.versioned.then(|| Version {
                    id: self.new_version_id(),
                    bytes: None,
                });
                let mut stacks = self.stacks.lock().unwrap();
                match marker {
                    Some(marker) => stacks
                        .entry(key.as_str().to_owned())
                        .or_default()
                        .push(marker),
                    None => drop(stacks.remove(key.as_str())),
                }
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

#[async_trait]
impl ObjectVersions for MemoryObjectStore {
    async fn versions(
        &self,
        keys: &[ObjectKey],
        _deadline: Deadline,
    ) -> Lookup<ObjectVersion, ObjectKey> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut lookup = Lookup::default();
        for key in keys {
            if let Some(fault) = self.fault(Op::ListVersions, key.as_str()) {
                lookup.unread.push(key.clone());
                let err = fault_error(fault, "memory list object versions");
                lookup.error = StoreError::worst(lookup.error, Some(err));
                continue;
            }
            let stacks = self.stacks.lock().unwrap();
            let stack = stacks.get(key.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            lookup
                .found
                .extend(stack.iter().rev().map(|v| ObjectVersion {
                    key: key.clone(),
                    version: VersionId::parse(&v.id).expect("the fake's version ids are valid"),
                    marker: v.bytes.is_none(),
                }));
        }
        lookup
    }

    async fn delete_versions(
        &self,
        versions: &[ObjectVersion],
        _deadline: Deadline,
    ) -> Partial<ObjectVersion> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut result = Partial::default();
        for version in versions {
            let fault = self.fault(Op::DeleteVersion, version.key.as_str());
            if !matches!(fault, Some(Fault::Fail(_))) {
                let mut stacks = self.stacks.lock().unwrap();
                if let Some(stack) = stacks.get_mut(version.key.as_str()) {
                    stack.retain(|v| v.id != version.version.as_str());
                    if stack.is_empty() {
                        stacks.remove(version.key.as_str());
                    }
                }
            }
            if let Some(fault) = fault {
                result.failed.push(version.clone());
                let err = fault_error(fault, "memory delete object versions");
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

/// An audit log that keeps what it publishes; events of an album named
/// by `fail_album` are refused, as a bus refuses an entry.
#[derive(Default)]
pub struct MemoryAuditLog {
    published: Mutex<Vec<AuditEvent>>,
    failing_albums: Mutex<HashSet<String>>,
}

impl MemoryAuditLog {
    pub fn published(&self) -> Vec<AuditEvent> {
        self.published.lock().unwrap().clone()
    }

    pub fn fail_album(&self, album: &str) {
        self.failing_albums.lock().unwrap().insert(album.to_owned());
    }

    pub fn heal(&self) {
        self.failing_albums.lock().unwrap().clear();
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn publish(&self, events: &[AuditEvent], _deadline: Deadline) -> Partial<usize> {
        let failing = self.failing_albums.lock().unwrap();
        let mut result = Partial::default();
        for (position, event) in events.iter().enumerate() {
            if failing.contains(event.album_id.as_str()) {
                result.failed.push(position);
                let err = StoreError::new(StoreErrorKind::Unavailable, "memory publish")
                    .with_source("injected fault");
                result.error = StoreError::worst(result.error, Some(err));
            } else {
                self.published.lock().unwrap().push(event.clone());
            }
        }
        result
    }
}
