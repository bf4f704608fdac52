//! Out of the trash: restore (an image again, every object readable) and erasure (gone
//! for good before the window ends), and the adoption of records that left the
//! catalog without an entry. Each is ordered so that an interrupted call leaves every
//! id live or trashed, or in a state the next identical call finishes:
//! - restore removes the delete markers first, then puts the record back, then
//!   turns the entry into a tombstone; objects readable without a record are still
//!   the entry's;
//! - erasure deletes every object version first, then tombstones the entry; an entry
//!   without objects is only a row until its TTL.
//!
//! A tombstone (`Tombstone`) is read as no entry; it exists so that the trash table's
//! stream says who restored or erased what (the audit trail, `crate::audit`).
//!
//! Markers are found by listing each key's versions, not taken from the delete's
//! answer: a delete whose answer was lost, or one repeated over a partly hidden image,
//! stacks markers nobody recorded, and a restore must remove them all.

use foldhash::{HashMap, HashSet};

use super::claims::Abilities;
use super::deletion::{Bin, Deleter, Denied};
use super::ids::{AlbumId, ImageId, ImageIds, ObjectKey};
use super::trash::{
    Actor, Closing, ListedAt, ObjectVersion, RequestId, Stamp, Tombstone, TrashEntry, Trigger,
};
use super::{ImageRecord, trash};
use crate::ports::{Lookup, Partial, StoreError, StoreErrorKind, TrashPage};
use crate::retry::Deadline;

/// The album ability that guards the trash: listing, restore and erasure.
pub const TRASH_ABILITY: &str = "trash";

/// Who asks to restore or erase: what authorizes it, and what its tombstones record.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub abilities: &'a Abilities,
    pub user_id: &'a str,
    pub request_id: &'a RequestId,
}

#[cfg(test)]
impl<'a> Caller<'a> {
    /// The caller of the unit and property tests: user `u`, request `req`.
    pub(crate) fn for_tests(abilities: &'a Abilities) -> Self {
        static REQUEST: std::sync::LazyLock<RequestId> =
            std::sync::LazyLock::new(|| RequestId::new("req"));
        Caller {
            abilities,
            user_id: "u",
            request_id: &REQUEST,
        }
    }
}

/// What became of each id asked for. Every id is in exactly one list.
#[derive(Debug, Default)]
pub struct TrashOutcome {
    /// Restored (an image again, every object as it was), or erased, in request order.
    pub done: Vec<ImageId>,
    /// Not in the trash (never there, restored or erased already, purged, or live).
    pub missing: Vec<ImageId>,
    /// Work left undone; the next identical request goes on from where this stopped.
    pub failed: Vec<ImageId>,
    /// Why `failed` is not empty; `Some` exactly when it is not.
    pub error: Option<StoreError>,
    pub retries: u64,
}

/// Why the trash cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum TrashError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Deletions are final here (`TRASH_DAYS` = 0).
    #[error("the trash is off")]
    Off,
    #[error("trash listing failed")]
    Store(#[source] StoreError),
}

/// What to do with an entry whose image has a record again: a restore that stopped
/// between putting the record back and removing the entry, or a delete that stopped
/// between hiding the objects and moving the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Live {
    /// Restore it again: markers removed, the record put again, the entry removed.
    Restore,
    /// Leave it alone: erasure never touches a live image's objects.
    Skip,
}

/// What the next step of a restore or erasure does per image, and how it went.
struct Progress {
    failed: HashSet<ImageId>,
    error: Option<StoreError>,
    retries: u64,
}

impl Progress {
    fn fail<K>(&mut self, ids: impl IntoIterator<Item = ImageId>, part: Partial<K>) {
        self.failed.extend(ids);
        self.error = StoreError::worst(self.error.take(), part.error);
        self.retries += part.retries;
    }
}

impl Deleter {
    fn bin(&self) -> Result<&Bin, TrashError> {
        self.bin.as_ref().ok_or(TrashError::Off)
    }

    /// Restores `ids` from the trash, all or nothing as far as authorization goes
    /// (`trash` on every entry's album; an unreadable entry fails the whole request
    /// closed, as a delete does).
    pub async fn restore(
        &self,
        ids: &ImageIds,
        caller: Caller<'_>,
        deadline: Deadline,
    ) -> Result<TrashOutcome, TrashError> {
        let bin = self.bin()?;
        let abilities = caller.abilities;
        let (entries, mut progress) = self
            .entries(bin, ids, abilities, Live::Restore, deadline)
            .await?;
        // Objects first: every delete marker of each key, found by listing.
        let markers = self
            .versioned(bin, &entries, &mut progress, deadline, trash::markers)
            .await;
        self.delete_versions(bin, &entries, markers, &mut progress, deadline)
            .await;
        // Then the record back, for the images whose objects are readable; then, for
        // those whose record is, the entry gone. Two waves, not one: a batch write may
        // apply the entry's removal and not the record's put, and the image would be
        // in neither place.
        let ready: Vec<TrashEntry> = entries
            .iter()
            .filter(|e| !progress.failed.contains(&e.record.id))
            .cloned()
            .collect();
        if !ready.is_empty() {
            let put = bin.trash.put_back(&ready, deadline).await;
            let failed = put.failed.clone();
            progress.fail(failed, put);
        }
        let stamp = self.stamp(&caller);
        self.close_entries(
            bin,
            &entries,
            Closing::Restored,
            &stamp,
            &mut progress,
            deadline,
        )
        .await;
        Ok(finish(ids, &entries, progress))
    }

    /// Erases `ids` from the trash for good: every version of every object, then the
    /// entry. Authorized as `restore`. An image that is live again (its record back)
    /// is not in the trash, whatever entry is left: its objects are never touched.
    pub async fn erase(
        &self,
        ids: &ImageIds,
        caller: Caller<'_>,
        deadline: Deadline,
    ) -> Result<TrashOutcome, TrashError> {
        let bin = self.bin()?;
        let abilities = caller.abilities;
        let (entries, mut progress) = self
            .entries(bin, ids, abilities, Live::Skip, deadline)
            .await?;
        let all = self
            .versioned(
                bin,
                &entries,
                &mut progress,
                deadline,
                <[ObjectVersion]>::to_vec,
            )
            .await;
        self.delete_versions(bin, &entries, all, &mut progress, deadline)
            .await;
        let stamp = self.stamp(&caller);
        self.close_entries(
            bin,
            &entries,
            Closing::Erased,
            &stamp,
            &mut progress,
            deadline,
        )
        .await;
        Ok(finish(ids, &entries, progress))
    }

    fn stamp(&self, caller: &Caller<'_>) -> Stamp {
        Stamp {
            by: Actor::User(caller.user_id.to_owned()),
            request_id: caller.request_id.clone(),
            at: (self.clock)(),
        }
    }

    /// Puts a trash entry, by `Trigger::Stream`, for each removed record that has
    /// neither a record again nor an entry, then hides its objects (delete markers):
    /// the images table's stream calls this, so that a record deleted by anyone (or by
    /// a move that half failed) leaves its objects unreadable and restorable. Records
    /// the trash already holds (our own moves) cost one read. Returns the ids not
    /// settled (to be retried).
    pub async fn adopt(
        &self,
        removed: Vec<ImageRecord>,
        request_id: &RequestId,
        deadline: Deadline,
    ) -> Result<Partial<ImageId>, TrashError> {
        let bin = self.bin()?;
        if removed.is_empty() {
            return Ok(Partial::default());
        }
        let ids: Vec<ImageId> = removed.iter().map(|r| r.id.clone()).collect();
        let (live, trashed) = futures_util::future::join(
            self.catalog.get(&ids, deadline),
            bin.trash.get(&ids, deadline),
        )
        .await;
        let settled: HashSet<&ImageId> = live
            .found
            .iter()
            .map(|r| &r.id)
            .chain(trashed.found.iter().map(|e| &e.record.id))
            .collect();
        let unknown: HashSet<&ImageId> = live.unread.iter().chain(&trashed.unread).collect();
        let stamp = Stamp {
            by: Actor::System(Trigger::Stream),
            request_id: request_id.clone(),
            at: (self.clock)(),
        };
        let orphans: Vec<TrashEntry> = removed
            .into_iter()
            .filter(|r| !settled.contains(&r.id) && !unknown.contains(&r.id))
            .map(|r| TrashEntry::new(r, &stamp, bin.days))
            .collect();
        let mut result = if orphans.is_empty() {
            Partial::default()
        } else {
            bin.trash.adopt(&orphans, deadline).await
        };
        // Entry first, then the markers: the bytes are tracked before they are hidden.
        let failed: HashSet<ImageId> = result.failed.iter().cloned().collect();
        let adopted: Vec<&TrashEntry> = orphans
            .iter()
            .filter(|e| !failed.contains(&e.record.id))
            .collect();
        let keys: Vec<ObjectKey> = adopted
            .iter()
            .flat_map(|e| e.record.object_keys.iter().cloned())
            .collect();
        if !keys.is_empty() {
            let hidden = self.objects.delete(&keys, deadline).await;
            let kept: HashSet<ObjectKey> = hidden.failed.iter().cloned().collect();
            let unhidden = adopted
                .iter()
                .filter(|e| e.record.object_keys.iter().any(|k| kept.contains(k)))
                .map(|e| e.record.id.clone());
            result.failed.extend(unhidden);
            result.error = StoreError::worst(result.error, hidden.error);
            result.retries += hidden.retries;
        }
        let unknown: Vec<ImageId> = unknown.into_iter().cloned().collect();
        result.failed.extend(unknown);
        let read_error = StoreError::worst(live.error, trashed.error);
        result.error = StoreError::worst(result.error, read_error);
        Ok(result)
    }

    /// Hides the objects of images whose trash window ended (their entry removed by
    /// the TTL; `expired` are the entries' records) unless the image is live again.
    /// The bytes of a restore that stopped after unhiding them, or of an adoption whose
    /// markers failed, would otherwise stay readable with nothing tracking them; once
    /// hidden they are noncurrent versions the lifecycle rule purges. Objects hidden
    /// already get one more marker, purged the same way. Returns the ids not settled
    /// (to be retried): a record that could not be read, or an object left readable.
    pub async fn hide_expired(
        &self,
        expired: Vec<ImageRecord>,
        deadline: Deadline,
    ) -> Partial<ImageId> {
        if expired.is_empty() {
            return Partial::default();
        }
        let ids: Vec<ImageId> = expired.iter().map(|r| r.id.clone()).collect();
        let live = self.catalog.get(&ids, deadline).await;
        let back: HashSet<&ImageId> = live.found.iter().map(|r| &r.id).collect();
        let unread: HashSet<&ImageId> = live.unread.iter().collect();
        let gone: Vec<&ImageRecord> = expired
            .iter()
            .filter(|r| !back.contains(&r.id) && !unread.contains(&r.id))
            .collect();
        let keys: Vec<ObjectKey> = gone
            .iter()
            .flat_map(|r| r.object_keys.iter().cloned())
            .collect();
        let mut result = Partial {
            failed: live.unread.clone(),
            error: live.error,
            retries: live.retries,
            ..Partial::default()
        };
        if !keys.is_empty() {
            let hidden = self.objects.delete(&keys, deadline).await;
            let kept: HashSet<&ObjectKey> = hidden.failed.iter().collect();
            result.failed.extend(
                gone.iter()
                    .filter(|r| r.object_keys.iter().any(|k| kept.contains(k)))
                    .map(|r| r.id.clone()),
            );
            result.error = StoreError::worst(result.error, hidden.error);
            result.retries += hidden.retries;
            result.item_errors += hidden.item_errors;
        }
        if result.failed.is_empty() {
            result.error = None;
        }
        result
    }

    /// One page of `album`'s trash, newest first, without entries past `purge_at`
    /// (the TTL removes them within days, not at once). Authorization is the
    /// caller's: it knows which albums the token may list.
    pub async fn trash_page(
        &self,
        album: &AlbumId,
        after: Option<&ListedAt>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<TrashPage, TrashError> {
        let bin = self.bin()?;
        let mut page = bin
            .trash
            .page(album, after, limit, deadline)
            .await
            .map_err(TrashError::Store)?;
        let now = (self.clock)();
        page.entries.retain(|e| !e.expired(now));
        Ok(page)
    }

    /// Reads and authorizes the entries of `ids`: those not past `purge_at` (and,
    /// as `live` says, with or without a record back) and the progress so far. When
    /// some entry or record could not be read, the request fails closed: no entries,
    /// every id failed.
    async fn entries(
        &self,
        bin: &Bin,
        ids: &ImageIds,
        abilities: &Abilities,
        live_records: Live,
        deadline: Deadline,
    ) -> Result<(Vec<TrashEntry>, Progress), TrashError> {
        // Only erasure asks whether a record is back: restore finishes such an entry.
        let live = async {
            match live_records {
                Live::Skip => self.catalog.get(ids.as_slice(), deadline).await,
                Live::Restore => Lookup::default(),
            }
        };
        let (trashed, live) =
            futures_util::future::join(bin.trash.get(ids.as_slice(), deadline), live).await;
        let denied: Vec<ImageId> = trashed
            .found
            .iter()
            .filter(|e| !abilities.grants(e.album_id(), TRASH_ABILITY))
            .map(|e| e.record.id.clone())
            .collect();
        if !denied.is_empty() {
            return Err(Denied { ids: denied }.into());
        }
        let mut progress = Progress {
            failed: HashSet::default(),
            error: StoreError::worst(trashed.error, live.error),
            retries: trashed.retries + live.retries,
        };
        if !trashed.unread.is_empty() || !live.unread.is_empty() {
            progress.failed.extend(ids.as_slice().iter().cloned());
            return Ok((Vec::new(), progress));
        }
        let now = (self.clock)();
        let back: HashSet<&ImageId> = live.found.iter().map(|r| &r.id).collect();
        let entries = trashed
            .found
            .into_iter()
            .filter(|e| !e.expired(now))
            .filter(|e| !back.contains(&e.record.id))
            .collect();
        Ok((entries, progress))
    }

    /// Lists the versions of every key of `entries` and keeps, per key, what `pick`
    /// chooses; an image with a key whose versions could not be listed fails. The
    /// listing (a call per key) stops with a third of the budget left for the waves
    /// after it: a call too large to list in time finishes the images it listed and
    /// fails the rest, so each repeat makes progress instead of timing out every time.
    async fn versioned(
        &self,
        bin: &Bin,
        entries: &[TrashEntry],
        progress: &mut Progress,
        deadline: Deadline,
        pick: fn(&[ObjectVersion]) -> Vec<ObjectVersion>,
    ) -> Vec<ObjectVersion> {
        let keys: Vec<ObjectKey> = unique_keys(entries);
        if keys.is_empty() {
            return Vec::new();
        }
        let Lookup {
            found,
            unread,
            error,
            retries,
        } = bin
            .versions
            .versions(&keys, deadline.shortened(deadline.remaining() / 3))
            .await;
        let unread: HashSet<ObjectKey> = unread.into_iter().collect();
        if !unread.is_empty() {
            progress.failed.extend(owners(entries, &unread));
        }
        progress.error = StoreError::worst(progress.error.take(), error);
        progress.retries += retries;
        let mut by_key: HashMap<&ObjectKey, Vec<ObjectVersion>> = HashMap::default();
        for version in &found {
            by_key
                .entry(&version.key)
                .or_default()
                .push(version.clone());
        }
        keys.iter()
            .filter_map(|key| by_key.get(key))
            .flat_map(|versions| pick(versions))
            .collect()
    }

    /// Tombstones the entries of the images not failed so far.
    async fn close_entries(
        &self,
        bin: &Bin,
        entries: &[TrashEntry],
        outcome: Closing,
        stamp: &Stamp,
        progress: &mut Progress,
        deadline: Deadline,
    ) {
        let ready: Vec<Tombstone> = entries
            .iter()
            .filter(|e| !progress.failed.contains(&e.record.id))
            .map(|e| Tombstone::of(e, outcome, stamp))
            .collect();
        if !ready.is_empty() {
            let removed = bin.trash.close(&ready, deadline).await;
            let failed = removed.failed.clone();
            progress.fail(failed, removed);
        }
    }

    /// Deletes `versions` for good; the images owning a key with a version left fail.
    async fn delete_versions(
        &self,
        bin: &Bin,
        entries: &[TrashEntry],
        versions: Vec<ObjectVersion>,
        progress: &mut Progress,
        deadline: Deadline,
    ) {
        // Only the versions of images still going: a failed image is left as it is.
        let failed_keys: HashSet<ObjectKey> = entries
            .iter()
            .filter(|e| progress.failed.contains(&e.record.id))
            .flat_map(|e| e.record.object_keys.iter().cloned())
            .collect();
        let versions: Vec<ObjectVersion> = versions
            .into_iter()
            .filter(|v| !failed_keys.contains(&v.key))
            .collect();
        if versions.is_empty() {
            return;
        }
        let deleted = bin.versions.delete_versions(&versions, deadline).await;
        let kept: HashSet<ObjectKey> = deleted.failed.iter().map(|v| v.key.clone()).collect();
        let failed = owners(entries, &kept);
        progress.fail(failed, deleted);
    }
}

/// Each key of `entries` once, in order.
fn unique_keys(entries: &[TrashEntry]) -> Vec<ObjectKey> {
    let mut seen = HashSet::default();
    entries
        .iter()
        .flat_map(|e| &e.record.object_keys)
        .filter(|k| seen.insert(*k))
        .cloned()
        .collect()
}

/// The ids of the entries that own any of `keys`.
fn owners(entries: &[TrashEntry], keys: &HashSet<ObjectKey>) -> Vec<ImageId> {
    entries
        .iter()
        .filter(|e| e.record.object_keys.iter().any(|k| keys.contains(k)))
        .map(|e| e.record.id.clone())
        .collect()
}

/// Sorts every id into one list, in request order.
fn finish(ids: &ImageIds, entries: &[TrashEntry], progress: Progress) -> TrashOutcome {
    let present: HashSet<&ImageId> = entries.iter().map(|e| &e.record.id).collect();
    let mut outcome = TrashOutcome {
        retries: progress.retries,
        ..TrashOutcome::default()
    };
    for id in ids.as_slice() {
        if progress.failed.contains(id) {
            outcome.failed.push(id.clone());
        } else if present.contains(id) {
            outcome.done.push(id.clone());
        } else {
            outcome.missing.push(id.clone());
        }
    }
    if !outcome.failed.is_empty() {
        outcome.error = progress
            .error
            .or_else(|| Some(StoreError::new(StoreErrorKind::Failed, "trash")));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Opaque;
    use crate::domain::deletion::Authority;
    use crate::domain::trash::{TrashDays, UnixTime};
    use crate::store::memory::{Fault, MemoryCatalog, MemoryObjectStore, Op};
    use std::sync::Arc;
    use std::time::Duration;

    /// A restore or erasure by user "u", request "req".
    const A1: &str = "7dca41d5-d76a-4ebb-9e00-dd13c13fc238";
    const A2: &str = "dcd964c3-f54e-413c-ab2e-41c8608f5d16";
    const B1: &str = "8c35c2bf-318b-4657-a06c-68c8a012f757";
    const NONE: &str = "295ec432-fcb7-4eae-b881-7ab2f5126a23";
    const NOW: i64 = 1_800_000_000;

    struct World {
        catalog: Arc<MemoryCatalog>,
        objects: Arc<MemoryObjectStore>,
        deleter: Deleter,
    }

    /// Album "a" holds A1 (two objects) and A2 (one), album "b" B1 (one); a 30-day
    /// trash, at `NOW`.
    fn world() -> World {
        let catalog = Arc::new(MemoryCatalog::default());
        let objects = Arc::new(MemoryObjectStore::versioned());
        for (id, album, n) in [(A1, "a", 2), (A2, "a", 1), (B1, "b", 1)] {
            let keys: Vec<String> = (0..n).map(|i| format!("{album}/{id}/{i}")).collect();
            objects.put_all(&keys);
            catalog.put(ImageRecord {
                id: id_of(id),
                album_id: AlbumId::parse(album).unwrap(),
                object_keys: keys.iter().map(|k| ObjectKey::parse(k).unwrap()).collect(),
                rest: Opaque::new(format!("rest of {id}")),
            });
        }
        let days = TrashDays::parse("30").unwrap().unwrap();
        let deleter = Deleter::new(catalog.clone(), objects.clone())
            .with_trash(catalog.clone(), objects.clone(), days)
            .with_clock(|| UnixTime(NOW));
        World {
            catalog,
            objects,
            deleter,
        }
    }

    fn id_of(raw: &str) -> ImageId {
        ImageId::parse(raw).unwrap()
    }

    fn ids(raw: &[&str]) -> ImageIds {
        ImageIds::parse(raw.iter().copied(), 1000).unwrap()
    }

    fn strs(ids: &[ImageId]) -> Vec<&str> {
        ids.iter().map(ImageId::as_str).collect()
    }

    fn abilities(grants: serde_json::Value) -> Abilities {
        serde_json::from_value(grants).unwrap()
    }

    fn trash_on(album: &str) -> Abilities {
        abilities(serde_json::json!({album: {"Access": {"trash": true}}}))
    }

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    impl World {
        async fn trash(&self, raw: &[&str]) {
            let grants = abilities(serde_json::json!({
                "a": {"Access": {"image_delete": true}},
                "b": {"Access": {"image_delete": true}},
            }));
            let required = vec!["image_delete".to_owned()];
            let authority = Authority::Token {
                user_id: "42",
                abilities: &grants,
                required: &required,
            };
            let request = RequestId::new("req-1");
            let outcome = self
                .deleter
                .delete(&ids(raw), authority, &request, deadline())
                .await
                .unwrap();
            assert_eq!(outcome.deleted.len(), raw.len());
        }

        fn readable(&self) -> Vec<String> {
            self.objects.keys()
        }
    }

    #[tokio::test]
    async fn a_deleted_image_is_in_the_trash_with_who_when_and_why() {
        // GIVEN A1 deleted by user 42
        let w = world();
        let record = w.catalog.record(&id_of(A1)).unwrap();
        w.trash(&[A1]).await;
        // THEN its record left the catalog for an entry holding it as it was
        assert!(!w.catalog.contains(&id_of(A1)));
        let entry = w.catalog.entry(&id_of(A1)).unwrap();
        assert_eq!(entry.record, record);
        assert_eq!(entry.deleted_by.to_string(), "42");
        assert_eq!(entry.request_id.as_str(), "req-1");
        assert_eq!(entry.deleted_at, UnixTime(NOW));
        assert_eq!(entry.purge_at, UnixTime(NOW + 30 * 86_400));
        // AND its objects read as gone but keep their bytes below a marker
        assert_eq!(w.readable(), [format!("a/{A2}/0"), format!("b/{B1}/0")]);
        assert!(w.objects.restorable(&format!("a/{A1}/0")));
    }

    #[tokio::test]
    async fn restore_puts_back_the_record_and_every_object_byte_for_byte() {
        // GIVEN A1 and A2 in the trash
        let w = world();
        let before = (w.catalog.record(&id_of(A1)), w.readable());
        let bytes = w.objects.read(&format!("a/{A1}/1"));
        w.trash(&[A1, A2]).await;
        // WHEN a token with trash on album "a" restores them and an unknown id
        let outcome = w
            .deleter
            .restore(
                &ids(&[A2, NONE, A1]),
                Caller::for_tests(&trash_on("a")),
                deadline(),
            )
            .await
            .unwrap();
        // THEN both are images again exactly as they were; the unknown id is missing
        assert_eq!(strs(&outcome.done), [A2, A1]);
        assert_eq!(strs(&outcome.missing), [NONE]);
        assert!(outcome.failed.is_empty() && outcome.error.is_none());
        assert_eq!((w.catalog.record(&id_of(A1)), w.readable()), before);
        assert_eq!(w.objects.read(&format!("a/{A1}/1")), bytes);
        assert!(w.catalog.entry(&id_of(A1)).is_none());
        // AND each entry is a tombstone saying who restored it, for which request
        let tombstone = w.catalog.tombstone(&id_of(A1)).unwrap();
        assert_eq!(tombstone.outcome, Closing::Restored);
        assert_eq!(tombstone.stamp.by, Actor::User("u".into()));
        assert_eq!(tombstone.stamp.request_id.as_str(), "req");
        assert_eq!(tombstone.album_id.as_str(), "a");
        assert_eq!(tombstone.purge_at, UnixTime(NOW + 86_400));
        // AND restoring again finds nothing in the trash
        let again = w
            .deleter
            .restore(&ids(&[A1]), Caller::for_tests(&trash_on("a")), deadline())
            .await
            .unwrap();
        assert_eq!(strs(&again.missing), [A1]);
    }

    #[tokio::test]
    async fn restore_without_trash_on_every_album_is_denied_and_changes_nothing() {
        // GIVEN A1 and B1 in the trash
        let w = world();
        w.trash(&[A1, B1]).await;
        let readable = w.readable();
        for grants in [
            trash_on("a"),
            abilities(serde_json::json!({"a": {"Access": {"trash": true}},
                                         "b": {"Access": {"image_delete": true}}})),
            abilities(serde_json::json!({"a": {"Access": {"trash": true}},
                                         "b": {"Access": {"trash": "yes"}}})),
        ] {
            // WHEN a token lacking trash on album "b" restores both
            let result = w
                .deleter
                .restore(&ids(&[A1, B1]), Caller::for_tests(&grants), deadline())
                .await;
            // THEN it is denied for B1 and both stay in the trash
            let Err(TrashError::Denied(denied)) = result else {
                panic!("not denied: {result:?}");
            };
            assert_eq!(strs(&denied.ids), [B1]);
            assert!(w.catalog.entry(&id_of(A1)).is_some());
            assert_eq!(w.readable(), readable);
        }
    }

    #[tokio::test]
    async fn stacked_markers_from_a_repeated_delete_are_all_removed() {
        // GIVEN A1's objects hidden by a delete whose record move failed once, then the
        // delete repeated: each object has two markers, which no answer listed
        let w = world();
        let mut once = true;
        w.catalog.set_faults(Box::new(move |op, _| {
            let fail = op == Op::DeleteRecord && std::mem::take(&mut once);
            fail.then_some(Fault::Fail(StoreErrorKind::Unavailable))
        }));
        let grants = abilities(serde_json::json!({"a": {"Access": {"image_delete": true}}}));
        let required = vec!["image_delete".to_owned()];
        let authority = Authority::Token {
            user_id: "42",
            abilities: &grants,
            required: &required,
        };
        let mut outcomes = Vec::new();
        for request in ["r1", "r2"] {
            let request = RequestId::new(request);
            let outcome = w
                .deleter
                .delete(&ids(&[A1]), authority, &request, deadline())
                .await
                .unwrap();
            outcomes.push((strs(&outcome.deleted).len(), strs(&outcome.failed).len()));
        }
        assert_eq!(outcomes, [(0, 1), (1, 0)]);
        // WHEN it is restored
        let outcome = w
            .deleter
            .restore(&ids(&[A1]), Caller::for_tests(&trash_on("a")), deadline())
            .await
            .unwrap();
        // THEN both objects read again
        assert_eq!(strs(&outcome.done), [A1]);
        assert!(w.objects.contains(&format!("a/{A1}/0")));
        assert!(w.objects.contains(&format!("a/{A1}/1")));
    }

    #[tokio::test]
    async fn erase_removes_every_version_and_the_entry() {
        // GIVEN A1 and A2 in the trash
        let w = world();
        w.trash(&[A1, A2]).await;
        // WHEN A1 is erased
        let outcome = w
            .deleter
            .erase(&ids(&[A1]), Caller::for_tests(&trash_on("a")), deadline())
            .await
            .unwrap();
        // THEN nothing of it is left; A2 is still restorable
        assert_eq!(strs(&outcome.done), [A1]);
        assert!(w.catalog.entry(&id_of(A1)).is_none());
        assert!(!w.objects.has_versions(&format!("a/{A1}/0")));
        assert!(!w.objects.has_versions(&format!("a/{A1}/1")));
        assert!(w.objects.restorable(&format!("a/{A2}/0")));
        let tombstone = w.catalog.tombstone(&id_of(A1)).unwrap();
        assert_eq!(tombstone.outcome, Closing::Erased);
        assert!(w.catalog.tombstone(&id_of(A2)).is_none());
        // AND restoring it finds nothing
        let restored = w
            .deleter
            .restore(&ids(&[A1]), Caller::for_tests(&trash_on("a")), deadline())
            .await
            .unwrap();
        assert_eq!(strs(&restored.missing), [A1]);
    }

    #[tokio::test]
    async fn an_expired_entry_whose_restore_stopped_half_way_leaves_no_readable_bytes() {
        // GIVEN A1 whose restore unhid its objects but never put its record back, and
        // A2 whose restore put the record back but never tombstoned its entry
        let w = world();
        w.trash(&[A1, A2]).await;
        w.catalog.set_faults(Box::new(|op, item| {
            let stop = (op == Op::PutRecord && item == A1) || (op == Op::RemoveEntry && item == A2);
            stop.then_some(Fault::Fail(StoreErrorKind::Unavailable))
        }));
        let outcome = w
            .deleter
            .restore(
                &ids(&[A1, A2]),
                Caller::for_tests(&trash_on("a")),
                deadline(),
            )
            .await
            .unwrap();
        assert_eq!(strs(&outcome.failed), [A1, A2]);
        w.catalog.set_faults(Box::new(|_, _| None));
        assert!(w.objects.contains(&format!("a/{A1}/0")));
        // WHEN both entries expire (the TTL removes them) and the expiry is handled
        let expired = [A1, A2].map(|id| w.catalog.entry(&id_of(id)).unwrap().record);
        let result = w.deleter.hide_expired(expired.to_vec(), deadline()).await;
        // THEN A1's objects are hidden again, their bytes left to the lifecycle rule,
        // and live A2 is untouched
        assert!(result.failed.is_empty() && result.error.is_none());
        for key in [format!("a/{A1}/0"), format!("a/{A1}/1")] {
            assert!(
                !w.objects.contains(&key) && w.objects.restorable(&key),
                "{key}"
            );
        }
        assert!(w.catalog.contains(&id_of(A2)));
        assert!(w.objects.contains(&format!("a/{A2}/0")));
    }

    #[tokio::test]
    async fn an_expiry_whose_record_cannot_be_read_is_retried_and_touches_nothing() {
        let w = world();
        w.trash(&[A1]).await;
        let record = w.catalog.entry(&id_of(A1)).unwrap().record;
        w.catalog.fail_get(A1);
        let before = w.objects.versions_of(&format!("a/{A1}/0"));
        let result = w.deleter.hide_expired(vec![record], deadline()).await;
        assert_eq!(strs(&result.failed), [A1]);
        assert!(result.error.is_some());
        assert_eq!(w.objects.versions_of(&format!("a/{A1}/0")), before);
    }

    #[tokio::test]
    async fn a_live_image_is_never_erased() {
        // GIVEN A1 live (its delete failed after the entry was written: both exist)
        let w = world();
        w.trash(&[A1]).await;
        let entry = w.catalog.entry(&id_of(A1)).unwrap();
        w.catalog.put(entry.record.clone());
        // WHEN it is erased
        let outcome = w
            .deleter
            .erase(&ids(&[A1]), Caller::for_tests(&trash_on("a")), deadline())
            .await
            .unwrap();
        // THEN it is not in the trash as far as erasure goes: no version touched
        assert_eq!(strs(&outcome.missing), [A1]);
        assert!(w.objects.restorable(&format!("a/{A1}/0")));
    }

    #[tokio::test]
    async fn entries_past_their_purge_time_are_gone() {
        // GIVEN A1 trashed 31 days ago (its entry not yet removed by the TTL)
        let w = world();
        w.trash(&[A1]).await;
        let later = w.deleter.clone().with_clock(|| UnixTime(NOW + 31 * 86_400));
        // WHEN it is restored or listed
        let outcome = later
            .restore(&ids(&[A1]), Caller::for_tests(&trash_on("a")), deadline())
            .await
            .unwrap();
        let album = AlbumId::parse("a").unwrap();
        let page = later
            .trash_page(&album, None, 10, deadline())
            .await
            .unwrap();
        // THEN it is missing and not listed
        assert_eq!(strs(&outcome.missing), [A1]);
        assert!(page.entries.is_empty());
    }

    #[tokio::test]
    async fn the_listing_is_newest_first_in_pages() {
        // GIVEN A1 trashed before A2
        let w = world();
        w.trash(&[A1]).await;
        let deleter = w.deleter.clone().with_clock(|| UnixTime(NOW + 60));
        let w = World { deleter, ..w };
        w.trash(&[A2]).await;
        // WHEN album "a" is listed one entry a page
        let album = AlbumId::parse("a").unwrap();
        let first = w
            .deleter
            .trash_page(&album, None, 1, deadline())
            .await
            .unwrap();
        let next = first.next.clone().expect("a second page");
        let second = w
            .deleter
            .trash_page(&album, Some(&next), 1, deadline())
            .await
            .unwrap();
        // THEN A2 comes first, then A1, and the second page is the last
        assert_eq!(first.entries[0].id.as_str(), A2);
        assert_eq!(second.entries[0].id.as_str(), A1);
        assert!(second.next.is_none());
    }

    #[tokio::test]
    async fn without_a_trash_there_is_nothing_to_restore() {
        let catalog = Arc::new(MemoryCatalog::default());
        let deleter = Deleter::new(catalog, Arc::new(MemoryObjectStore::default()));
        let result = deleter
            .restore(&ids(&[A1]), Caller::for_tests(&trash_on("a")), deadline())
            .await;
        assert!(matches!(result, Err(TrashError::Off)));
    }

    /// Versions listed one key at a time, `per_key` each, and deleted in one call of
    /// `per_key`, as a slow store would: what the deadline leaves no time for fails.
    struct SlowVersions {
        inner: Arc<MemoryObjectStore>,
        per_key: Duration,
    }

    #[async_trait::async_trait]
    impl crate::ports::ObjectVersions for SlowVersions {
        async fn versions(
            &self,
            keys: &[ObjectKey],
            deadline: Deadline,
        ) -> Lookup<ObjectVersion, ObjectKey> {
            let mut lookup = Lookup::default();
            for key in keys {
                if deadline.remaining() < self.per_key {
                    lookup.unread.push(key.clone());
                    lookup.error = Some(StoreError::new(StoreErrorKind::Unavailable, "slow list"));
                    continue;
                }
                tokio::time::sleep(self.per_key).await;
                let found = self
                    .inner
                    .versions(std::slice::from_ref(key), deadline)
                    .await;
                lookup.found.extend(found.found);
            }
            lookup
        }

        async fn delete_versions(
            &self,
            versions: &[ObjectVersion],
            deadline: Deadline,
        ) -> Partial<ObjectVersion> {
            if deadline.remaining() < self.per_key {
                return Partial {
                    failed: versions.to_vec(),
                    error: Some(StoreError::new(StoreErrorKind::Unavailable, "slow delete")),
                    ..Partial::default()
                };
            }
            tokio::time::sleep(self.per_key).await;
            self.inner.delete_versions(versions, deadline).await
        }
    }

    #[tokio::test]
    async fn a_restore_too_big_to_list_in_one_call_makes_progress_each_call() {
        // GIVEN 12 trashed images of one object each, on a store that lists 50 ms a
        // key: 600 ms of listing against a 400 ms budget per call
        let catalog = Arc::new(MemoryCatalog::default());
        let objects = Arc::new(MemoryObjectStore::versioned());
        let raw: Vec<String> = (0..12)
            .map(|i| format!("7dca41d5-d76a-4ebb-9e00-dd13c13fc2{i:02}"))
            .collect();
        for id in &raw {
            let key = format!("a/{id}/0");
            objects.put_all(std::slice::from_ref(&key));
            catalog.put(ImageRecord {
                id: id_of(id),
                album_id: AlbumId::parse("a").unwrap(),
                object_keys: vec![ObjectKey::parse(&key).unwrap()],
                rest: Opaque::new(format!("rest of {id}")),
            });
        }
        let slow = Arc::new(SlowVersions {
            inner: objects.clone(),
            per_key: Duration::from_millis(50),
        });
        let days = TrashDays::parse("30").unwrap().unwrap();
        let deleter = Deleter::new(catalog.clone(), objects.clone())
            .with_trash(catalog.clone(), slow, days)
            .with_clock(|| UnixTime(NOW));
        let w = World {
            catalog,
            objects,
            deleter,
        };
        let all: Vec<&str> = raw.iter().map(String::as_str).collect();
        w.trash(&all).await;
        // WHEN the same restore is sent until nothing is left in the trash
        let mut restored_per_call = Vec::new();
        while restored_per_call.len() < 6 {
            let outcome = w
                .deleter
                .restore(
                    &ids(&all),
                    Caller::for_tests(&trash_on("a")),
                    Deadline::after(Duration::from_millis(400)),
                )
                .await
                .unwrap();
            restored_per_call.push(outcome.done.len());
            if outcome.failed.is_empty() {
                break;
            }
        }
        // THEN every call restored some images, and a few calls restored them all
        assert!(
            restored_per_call.iter().all(|&n| n > 0),
            "{restored_per_call:?}"
        );
        assert_eq!(
            restored_per_call.iter().sum::<usize>(),
            12,
            "{restored_per_call:?}"
        );
        assert_eq!(w.readable().len(), 12);
    }
}
