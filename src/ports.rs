//! What the deletion core needs from the outside world, spoken in domain types: the
//! catalog of records and the object store, and for the trash (`docs/trash.md`) the
//! trash itself and the objects' versions. Each has an in-memory fake in `store`, and
//! an AWS adapter there (the trash's adapters are to come: issue 26).

use std::error::Error as StdError;
use std::fmt;

use async_trait::async_trait;

use crate::domain::audit::AuditEvent;
use crate::domain::trash::{ListedAt, ObjectVersion, Tombstone, TrashEntry, Trashed};
use crate::domain::{AlbumId, ImageId, ImageRecord, ObjectKey};
use crate::retry::Deadline;

/// The catalog of image records (DynamoDB in production).
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Reads the records of `ids` with strongly consistent reads. Ids without a record
    /// are simply absent from `found`.
    async fn get(&self, ids: &[ImageId], deadline: Deadline) -> Lookup;

    /// Deletes the records of `ids`. Deleting an absent record succeeds.
    async fn delete(&self, ids: &[ImageId], deadline: Deadline) -> Partial<ImageId>;

    /// One page of the ids of `album`'s images (through the album index), starting
    /// after `after` when given.
    async fn album_page(
        &self,
        album: &AlbumId,
        after: Option<&ImageId>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<AlbumPage, StoreError>;

    /// Opens what the first request would otherwise open (a connection, its TLS
    /// session, the client's lazily built state) with a read that changes nothing.
    /// Best effort: a failure only leaves the work to the first request.
    async fn warm_up(&self, _deadline: Deadline) {}
}

/// A page of an album's image ids; `next` is where the following page starts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlbumPage {
    pub ids: Vec<ImageId>,
    pub next: Option<ImageId>,
}

/// Passes unfinished work on to a later invocation (the cleanup queue in production).
#[async_trait]
pub trait HandOff: Send + Sync {
    /// Asks for the rest of `album` to be deleted later.
    async fn continue_album(&self, album: &AlbumId) -> Result<(), StoreError>;
}

/// The store of image objects (S3 in production).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Deletes the objects under `keys`. Deleting an absent object succeeds.
    async fn delete(&self, keys: &[ObjectKey], deadline: Deadline) -> Partial<ObjectKey>;

    /// As `Catalog::warm_up`, for the object store.
    async fn warm_up(&self, _deadline: Deadline) {}
}
/// The trash: entries of trashed images (DynamoDB's trash table in production). The
/// moves in and out write an image's record and its entry together.
#[async_trait]
pub trait Trash: Send + Sync {
    /// Reads the entries of `ids`, strongly consistent. Ids without one are absent.
    async fn get(&self, ids: &[ImageId], deadline: Deadline) -> Lookup<TrashEntry>;

    /// Puts each entry and deletes its image's record: an image is done (not
    /// `failed`) when both are written.
    async fn move_in(&self, entries: &[TrashEntry], deadline: Deadline) -> Partial<ImageId>;

    /// Puts each entry unless its image has one already: for records that left the
    /// catalog without their entry (a half-applied move, or a delete by someone else).
    async fn adopt(&self, entries: &[TrashEntry], deadline: Deadline) -> Partial<ImageId>;

    /// Puts each entry's record back in the catalog exactly as it was; the entry
    /// stays (restore removes it after: an image is never in neither place).
    async fn put_back(&self, entries: &[TrashEntry], deadline: Deadline) -> Partial<ImageId>;

    /// Replaces each entry with its tombstone (restored or erased: read as no entry
    /// from then on, and the trash's change stream says who closed it).
    async fn close(&self, tombstones: &[Tombstone], deadline: Deadline) -> Partial<ImageId>;

    /// One page of `album`'s trash, newest first, starting after `after` (older).
    async fn page(
        &self,
        album: &AlbumId,
        after: Option<&ListedAt>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<TrashPage, StoreError>;
}

/// Where audit events go (the project's EventBridge bus).
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Publishes `events`; `failed` holds the positions of those not published.
    async fn publish(&self, events: &[AuditEvent], deadline: Deadline) -> Partial<usize>;
}

/// A page of an album's trash, newest first; `next` is where the following one starts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrashPage {
    pub entries: Vec<Trashed>,
    pub next: Option<ListedAt>,
}

/// The versions of objects in a versioned store (S3 with versioning on): what restore
/// and erasure need beyond `ObjectStore::delete`, which there adds a delete marker.
#[async_trait]
pub trait ObjectVersions: Send + Sync {
    /// Every version of each key, delete markers included, in no particular order; a
    /// key with no version at all is absent.
    async fn versions(
        &self,
        keys: &[ObjectKey],
        deadline: Deadline,
    ) -> Lookup<ObjectVersion, ObjectKey>;

    /// Deletes these versions for good (a delete marker so deleted stops hiding).
    async fn delete_versions(
        &self,
        versions: &[ObjectVersion],
        deadline: Deadline,
    ) -> Partial<ObjectVersion>;
}

/// What a read found; `T` is what is read (records by default), `K` what it is read by.
#[derive(Debug)]
pub struct Lookup<T = ImageRecord, K = ImageId> {
    pub found: Vec<T>,
    /// Ids (or keys) whose item could not be read or understood: their fate is unknown.
    pub unread: Vec<K>,
    /// Why some ids are unread; `Some` whenever `unread` is not empty.
    pub error: Option<StoreError>,
    /// Calls repeated for unprocessed keys.
    pub retries: u64,
}

/// The result of a batch operation: everything not in `failed` was done.
#[derive(Debug)]
pub struct Partial<K> {
    pub failed: Vec<K>,
    /// Why some items failed; `Some` whenever `failed` is not empty.
    pub error: Option<StoreError>,
    /// Calls repeated for unprocessed or transiently failed items.
    pub retries: u64,
    /// Items the service refused one by one (S3's per-key errors), retried or not.
    pub item_errors: u64,
}

impl<K> Default for Partial<K> {
    fn default() -> Self {
        Self {
            failed: Vec::new(),
            error: None,
            retries: 0,
            item_errors: 0,
        }
    }
}

/// Chunk results fold into one.
impl<K> FromIterator<Partial<K>> for Partial<K> {
    fn from_iter<I: IntoIterator<Item = Partial<K>>>(parts: I) -> Self {
        parts.into_iter().fold(Self::default(), |mut all, part| {
            all.failed.extend(part.failed);
            all.error = StoreError::worst(all.error, part.error);
            all.retries += part.retries;
            all.item_errors += part.item_errors;
            all
        })
    }
}

impl<T, K> Default for Lookup<T, K> {
    fn default() -> Self {
        Self {
            found: Vec::new(),
            unread: Vec::new(),
            error: None,
            retries: 0,
        }
    }
}

impl<T, K> FromIterator<Lookup<T, K>> for Lookup<T, K> {
    fn from_iter<I: IntoIterator<Item = Lookup<T, K>>>(parts: I) -> Self {
        parts.into_iter().fold(Self::default(), |mut all, part| {
            all.found.extend(part.found);
            all.unread.extend(part.unread);
            all.error = StoreError::worst(all.error, part.error);
            all.retries += part.retries;
            all
        })
    }
}

/// How a store operation failed, as far as a caller needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The service asked us to slow down: the caller should retry later.
    Throttled,
    /// The service could not be reached or did not answer in time, or the invocation's
    /// deadline came before the work was done.
    Unavailable,
    /// The service refused the request or an item in it, or returned data we cannot use.
    Failed,
}

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A failed store operation. Its `Display` names the operation only; the underlying
/// cause (SDK error and its chain) is kept as the `source` for the logs.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    operation: &'static str,
    source: Option<BoxError>,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, operation: &'static str) -> Self {
        Self {
            kind,
            operation,
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// This error and its causes, `: `-separated, for one log line.
    pub fn chain(&self) -> String {
        let mut chain = self.to_string();
        let mut source = StdError::source(self);
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        chain
    }

    /// Keeps the error that matters most to the caller: throttling (so it backs off),
    /// then unavailability, then the first one seen.
    pub fn worst(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        fn rank(e: &StoreError) -> u8 {
            match e.kind {
                StoreErrorKind::Throttled => 2,
                StoreErrorKind::Unavailable => 1,
                StoreErrorKind::Failed => 0,
            }
        }
        match (a, b) {
            (Some(a), Some(b)) => Some(if rank(&b) > rank(&a) { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Throttled => "throttled",
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Failed => "failed",
        };
        write!(f, "{} {what}", self.operation)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
