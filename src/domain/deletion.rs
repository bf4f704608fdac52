//! The one implementation of "delete these images", shared by every trigger.
//!
//! Order matters for "nothing lost": every record is read and authorized before
//! anything is deleted; objects go before records, so a record outlives its objects
//! (and stays the to-do list) whenever an object could not be deleted; an id is
//! reported deleted only when its record and all its objects are gone.
//!
//! With the trash on (`Deleter::with_trash`), the same three waves move images to the
//! trash instead: objects get delete markers (the bucket is versioned) and the last
//! wave writes each image's trash entry with its record's delete. Restore and erasure
//! are in `restore`.

use foldhash::{HashMap, HashSet, HashSetExt};
use std::sync::Arc;
use std::time::Duration;

use super::ImageRecord;
use super::claims::Abilities;
use super::ids::{ImageId, ImageIds, ObjectKey};
use super::trash::{Actor, RequestId, Stamp, TrashDays, TrashEntry, Trigger, UnixTime};
use crate::ports::{
    Catalog, ObjectStore, ObjectVersions, Partial, StoreError, StoreErrorKind, Trash,
};
use crate::retry::Deadline;

/// Time past the working deadline that the confirming re-read may take: half of the
/// answer margin (`Deadline::ANSWER_MARGIN`), spent only after a record delete failed.
const CONFIRM_GRACE: Duration = Duration::from_millis(250);

/// On whose behalf images are deleted.
#[derive(Debug, Clone, Copy)]
pub enum Authority<'a> {
    /// A trigger whose own IAM policy is the authorization (cleanup jobs).
    System(Trigger),
    /// A token holder: may delete an image when its album grants any of `required`.
    Token {
        user_id: &'a str,
        abilities: &'a Abilities,
        required: &'a [String],
    },
}

/// Some requested images exist but may not be deleted by this caller; nothing was
/// deleted. The ids are for the logs, never for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} requested image(s) may not be deleted by this caller", ids.len())]
pub struct Denied {
    pub ids: Vec<ImageId>,
}

/// What became of each requested id. Every requested id is in exactly one list.
#[derive(Debug, Default)]
pub struct DeleteOutcome {
    /// Record and every object gone, in request order.
    pub deleted: Vec<ImageId>,
    /// No record exists (already deleted, or never existed).
    pub missing: Vec<ImageId>,
    /// Work left undone: the record (if any) is still there to retry from.
    pub failed: Vec<ImageId>,
    /// Those of `failed` whose record delete may have been applied, but the re-read
    /// that would tell failed too: they may be gone without being reported.
    pub unconfirmed: Vec<ImageId>,
    /// Objects deleted for images now in `deleted`.
    pub objects_deleted: usize,
    /// Why `failed` is not empty; `Some` exactly when it is not.
    pub error: Option<StoreError>,
    /// Store calls repeated for unprocessed or transiently failed items.
    pub retries: u64,
    /// Objects the store refused one by one.
    pub object_errors: u64,
}

impl Authority<'_> {
    /// Who this is, for a trash entry.
    pub fn actor(&self) -> Actor {
        match self {
            Self::System(trigger) => Actor::System(*trigger),
            Self::Token { user_id, .. } => Actor::User((*user_id).to_owned()),
        }
    }
}

/// Deletes images through the catalog and object store ports, into the trash when one
/// is set.
#[derive(Clone)]
pub struct Deleter {
    pub(super) catalog: Arc<dyn Catalog>,
    pub(super) objects: Arc<dyn ObjectStore>,
    pub(super) bin: Option<Bin>,
    /// The time a trash entry is stamped with (a fixed one in tests).
    pub(super) clock: fn() -> UnixTime,
}

/// Where trashed images go, and for how long.
#[derive(Clone)]
pub(super) struct Bin {
    pub(super) trash: Arc<dyn Trash>,
    pub(super) versions: Arc<dyn ObjectVersions>,
    pub(super) days: TrashDays,
}

impl Deleter {
    pub fn new(catalog: Arc<dyn Catalog>, objects: Arc<dyn ObjectStore>) -> Self {
        Self {
            catalog,
            objects,
            bin: None,
            clock: UnixTime::now,
        }
    }

    /// Deletions move images to `trash` for `days`; the object store must be
    /// versioned, `versions` its versions' side.
    pub fn with_trash(
        mut self,
        trash: Arc<dyn Trash>,
        versions: Arc<dyn ObjectVersions>,
        days: TrashDays,
    ) -> Self {
        self.bin = Some(Bin {
            trash,
            versions,
            days,
        });
        self
    }

    /// Stamps trash entries with `clock`'s time.
    pub fn with_clock(mut self, clock: fn() -> UnixTime) -> Self {
        self.clock = clock;
        self
    }

    /// Whether deletions go to the trash.
    pub fn trashes(&self) -> bool {
        self.bin.is_some()
    }

    pub(crate) fn catalog(&self) -> &dyn Catalog {
        self.catalog.as_ref()
    }

    /// Readies both stores' clients before the first request (`Catalog::warm_up`),
    /// at once.
    pub async fn warm_up(&self, deadline: Deadline) {
        futures_util::future::join(
            self.catalog.warm_up(deadline),
            self.objects.warm_up(deadline),
        )
        .await;
    }

    /// Deletes objects whose records are already gone (records removed elsewhere).
    pub async fn purge_objects(
        &self,
        keys: &[ObjectKey],
        deadline: Deadline,
    ) -> Partial<ObjectKey> {
        if keys.is_empty() {
            return Partial::default();
        }
        self.objects.delete(keys, deadline).await
    }

    /// Deletes `ids` on behalf of `authority`, all or nothing as far as authorization
    /// goes: if any existing image may not be deleted, nothing is. A token holder's
    /// request also fails closed: if any requested record could not be read, it cannot
    /// be authorized, so nothing is deleted and every id is left `failed` (or
    /// `missing`) with the read's error. System authority deletes what it could read.
    ///
    /// `request_id` is the invocation's, recorded in trash entries.
    pub async fn delete(
        &self,
        ids: &ImageIds,
        authority: Authority<'_>,
        request_id: &RequestId,
        deadline: Deadline,
    ) -> Result<DeleteOutcome, Denied> {
        if ids.is_empty() {
            return Ok(DeleteOutcome::default());
        }
        let lookup = self.catalog.get(ids.as_slice(), deadline).await;
        authorize(&lookup.found, authority)?;

        let mut failed: HashSet<ImageId> = lookup.unread.iter().cloned().collect();
        let mut unconfirmed = Vec::new();
        let mut error = lookup.error;
        let mut retries = lookup.retries;
        let mut object_errors = 0;
        let found: HashMap<&ImageId, &ImageRecord> =
            lookup.found.iter().map(|r| (&r.id, r)).collect();

        let fail_closed = matches!(authority, Authority::Token { .. }) && !failed.is_empty();
        if fail_closed {
            failed.extend(found.keys().map(|id| (*id).clone()));
        } else {
            // Objects first: an image whose objects are not all gone keeps its record.
            // Each key once, in the order the records give them.
            let total = lookup.found.iter().map(|r| r.object_keys.len()).sum();
            let mut unique: HashSet<&ObjectKey> = HashSet::with_capacity(total);
            let keys: Vec<ObjectKey> = lookup
                .found
                .iter()
                .flat_map(|r| &r.object_keys)
                .filter(|key| unique.insert(*key))
                .cloned()
                .collect();
            // Not held through S3's wait: 2000 entries for a 1000-id request.
            drop(unique);
            if !keys.is_empty() {
                let result = self.objects.delete(&keys, deadline).await;
                let kept: HashSet<ObjectKey> = result.failed.into_iter().collect();
                if !kept.is_empty() {
                    failed.extend(
                        lookup
                            .found
                            .iter()
                            .filter(|r| r.object_keys.iter().any(|k| kept.contains(k)))
                            .map(|r| r.id.clone()),
                    );
                }
                error = StoreError::worst(error, result.error);
                retries += result.retries;
                object_errors += result.item_errors;
            }

            // Records last: only those of images whose objects are all gone.
            let to_unrecord: Vec<ImageId> = lookup
                .found
                .iter()
                .map(|r| r.id.clone())
                .filter(|id| !failed.contains(id))
                .collect();
            let result = if to_unrecord.is_empty() {
                None
            } else if let Some(bin) = &self.bin {
                let stamp = Stamp {
                    by: authority.actor(),
                    request_id: request_id.clone(),
                    at: (self.clock)(),
                };
                let entries: Vec<TrashEntry> = to_unrecord
                    .iter()
                    .map(|id| TrashEntry::new(found[id].clone(), &stamp, bin.days))
                    .collect();
                let result = bin.trash.move_in(&entries, deadline).await;
                // The entries of failed moves: the confirmation may have to write them.
                let failed: HashSet<ImageId> = result.failed.iter().cloned().collect();
                let unsure = entries
                    .into_iter()
                    .filter(|e| failed.contains(&e.record.id));
                Some((result, unsure.collect()))
            } else {
                Some((
                    self.catalog.delete(&to_unrecord, deadline).await,
                    Vec::new(),
                ))
            };
            if let Some((result, entries)) = result {
                retries += result.retries;
                if !result.failed.is_empty() {
                    let check = self
                        .confirm(result.failed, entries, result.error, deadline)
                        .await;
                    failed.extend(check.remaining);
                    unconfirmed = check.unconfirmed;
                    error = StoreError::worst(error, check.error);
                    retries += check.retries;
                }
            }
        }

        let mut outcome = DeleteOutcome {
            retries,
            object_errors,
            ..DeleteOutcome::default()
        };
        for id in ids.as_slice() {
            if failed.contains(id) {
                outcome.failed.push(id.clone());
            } else if let Some(record) = found.get(id) {
                outcome.objects_deleted += record.object_keys.len();
                outcome.deleted.push(id.clone());
            } else {
                outcome.missing.push(id.clone());
            }
        }
        outcome.unconfirmed = unconfirmed;
        if !outcome.failed.is_empty() && error.is_none() {
            // Adapters always say why; this keeps the invariant if one ever does not.
            error = Some(StoreError::new(StoreErrorKind::Failed, "delete images"));
        }
        outcome.error = error.filter(|_| !outcome.failed.is_empty());
        Ok(outcome)
    }

    /// After record deletes (or trash moves) failed, finds out which records are in
    /// fact gone: a failed call may have been applied with its answer lost (a reset, a
    /// timeout). One consistent read, given part of the answer margin, since it is
    /// what makes the answer exact. With the trash, a record gone also needs its entry:
    /// the re-read covers both, and an entry not written is written again (`adopt`).
    async fn confirm(
        &self,
        ids: Vec<ImageId>,
        entries: Vec<TrashEntry>,
        cause: Option<StoreError>,
        deadline: Deadline,
    ) -> Confirmation {
        let deadline = deadline.extended(CONFIRM_GRACE);
        let (check, trashed) = match &self.bin {
            Some(bin) => {
                let (check, trashed) = futures_util::future::join(
                    self.catalog.get(&ids, deadline),
                    bin.trash.get(&ids, deadline),
                )
                .await;
                (check, Some(trashed))
            }
            None => (self.catalog.get(&ids, deadline).await, None),
        };
        let mut still_there: HashSet<ImageId> = check
            .found
            .into_iter()
            .map(|r| r.id)
            .chain(check.unread.iter().cloned())
            .collect();
        let mut unconfirmed = check.unread;
        let mut error = check.error;
        let mut retries = check.retries;
        if let (Some(bin), Some(trashed)) = (&self.bin, trashed) {
            // Gone from the catalog: done only once the entry is there too.
            let have: HashSet<&ImageId> = trashed.found.iter().map(|e| &e.record.id).collect();
            let unknown: HashSet<&ImageId> = trashed.unread.iter().collect();
            let orphans: Vec<TrashEntry> = entries
                .into_iter()
                .filter(|e| !still_there.contains(&e.record.id) && !have.contains(&e.record.id))
                .collect();
            let adopted = if orphans.is_empty() {
                Partial::default()
            } else {
                bin.trash.adopt(&orphans, deadline).await
            };
            // Unknown: the entry's read failed; an entry the adoption may not have
            // written. Either way the record is gone and the image not reported.
            for id in unknown.into_iter().chain(&adopted.failed) {
                if still_there.insert(id.clone()) {
                    unconfirmed.push(id.clone());
                }
            }
            error = StoreError::worst(StoreError::worst(error, trashed.error), adopted.error);
            retries += trashed.retries + adopted.retries;
        }
        let remaining: Vec<ImageId> = ids
            .into_iter()
            .filter(|id| still_there.contains(id))
            .collect();
        Confirmation {
            error: if remaining.is_empty() {
                None
            } else {
                StoreError::worst(cause, error)
            },
            remaining,
            unconfirmed,
            retries,
        }
    }
}

/// What a confirming re-read found out about records whose deletion failed.
struct Confirmation {
    /// Still there, or unknown because the re-read failed too.
    remaining: Vec<ImageId>,
    /// The subset of `remaining` that the re-read could not read.
    unconfirmed: Vec<ImageId>,
    error: Option<StoreError>,
    retries: u64,
}

fn authorize(found: &[ImageRecord], authority: Authority<'_>) -> Result<(), Denied> {
    let Authority::Token {
        abilities,
        required,
        ..
    } = authority
    else {
        return Ok(());
    };
    let ids: Vec<ImageId> = found
        .iter()
        .filter(|r| !abilities.grants_any(&r.album_id, required))
        .map(|r| r.id.clone())
        .collect();
    if ids.is_empty() {
        Ok(())
    } else {
        Err(Denied { ids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlbumId, Claims};
    use crate::store::memory::{Fault, MemoryCatalog, MemoryObjectStore, Op};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const A1: &str = "7dca41d5-d76a-4ebb-9e00-dd13c13fc238";
    const A2: &str = "dcd964c3-f54e-413c-ab2e-41c8608f5d16";
    const B1: &str = "8c35c2bf-318b-4657-a06c-68c8a012f757";
    const NONE: &str = "295ec432-fcb7-4eae-b881-7ab2f5126a23";

    struct World {
        catalog: Arc<MemoryCatalog>,
        objects: Arc<MemoryObjectStore>,
        deleter: Deleter,
    }

    impl World {
        /// Deletes `raw` with system authority (a cleanup trigger).
        async fn delete_as_system(&self, raw: &[&str]) -> DeleteOutcome {
            self.deleter
                .delete(
                    &ids(raw),
                    Authority::System(Trigger::Cleanup),
                    &RequestId::new("test"),
                    deadline(),
                )
                .await
                .expect("system authority is never denied")
        }

        /// Deletes `raw` on behalf of a token that may delete in album "a".
        async fn delete_as_token_for_a(&self, raw: &[&str]) -> Result<DeleteOutcome, Denied> {
            let (claims, required) = (claims_for(&["a"]), required());
            let auth = Authority::Token {
                user_id: "u",
                abilities: &claims.abilities,
                required: &required,
            };
            self.deleter
                .delete(&ids(raw), auth, &RequestId::new("test"), deadline())
                .await
        }
    }

    /// Album "a" holds A1 (two objects) and A2 (one); album "b" holds B1 (one).
    fn world() -> World {
        let catalog = Arc::new(MemoryCatalog::default());
        let objects = Arc::new(MemoryObjectStore::default());
        for (id, album, n) in [(A1, "a", 2), (A2, "a", 1), (B1, "b", 1)] {
            let keys: Vec<String> = (0..n).map(|i| format!("{album}/{id}/{i}")).collect();
            objects.put_all(&keys);
            catalog.put(record(id, album, &keys));
        }
        let deleter = Deleter::new(catalog.clone(), objects.clone());
        World {
            catalog,
            objects,
            deleter,
        }
    }

    fn record(id: &str, album: &str, keys: &[String]) -> ImageRecord {
        ImageRecord {
            id: ImageId::parse(id).unwrap(),
            album_id: AlbumId::parse(album).unwrap(),
            object_keys: keys.iter().map(|k| ObjectKey::parse(k).unwrap()).collect(),
            rest: Default::default(),
        }
    }

    fn ids(raw: &[&str]) -> ImageIds {
        ImageIds::parse(raw.iter().copied(), 1000).unwrap()
    }

    fn strs(ids: &[ImageId]) -> Vec<&str> {
        ids.iter().map(ImageId::as_str).collect()
    }

    fn claims_for(albums: &[&str]) -> Claims {
        let abilities: serde_json::Map<String, serde_json::Value> = albums
            .iter()
            .map(|a| {
                (
                    a.to_string(),
                    serde_json::json!({"Access": {"image_delete": true}}),
                )
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "exp": 1, "user_id": "u", "abilities": abilities
        }))
        .unwrap()
    }

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    fn required() -> Vec<String> {
        vec!["image_delete".into()]
    }

    #[tokio::test]
    async fn deletes_records_and_objects_and_reports_them_in_request_order() {
        // GIVEN a token for album "a"
        let w = world();
        let claims = claims_for(&["a"]);
        let required = required();
        let auth = Authority::Token {
            user_id: "u",
            abilities: &claims.abilities,
            required: &required,
        };
        // WHEN A2, a nonexistent id and A1 are deleted
        let outcome = w
            .deleter
            .delete(
                &ids(&[A2, NONE, A1]),
                auth,
                &RequestId::new("test"),
                deadline(),
            )
            .await
            .unwrap();
        // THEN both images are gone, records and objects, and the missing id is missing
        assert_eq!(strs(&outcome.deleted), [A2, A1]);
        assert_eq!(strs(&outcome.missing), [NONE]);
        assert!(outcome.failed.is_empty() && outcome.error.is_none());
        assert_eq!(outcome.objects_deleted, 3);
        assert_eq!(w.catalog.ids(), vec![B1.to_string()]);
        assert_eq!(w.objects.keys(), vec![format!("b/{B1}/0")]);
    }

    /// An object store that writes down the keys of each delete it is asked for.
    #[derive(Default)]
    struct KeysAsked(std::sync::Mutex<Vec<Vec<String>>>);

    #[async_trait::async_trait]
    impl ObjectStore for KeysAsked {
        async fn delete(&self, keys: &[ObjectKey], _deadline: Deadline) -> Partial<ObjectKey> {
            let asked = keys.iter().map(|k| k.as_str().to_owned()).collect();
            self.0.lock().unwrap().push(asked);
            Partial::default()
        }
    }

    #[tokio::test]
    async fn a_key_shared_by_images_is_deleted_once_in_the_order_the_records_give() {
        // GIVEN two images of album "a" whose records both name object "a/shared"
        let catalog = Arc::new(MemoryCatalog::default());
        let shared = "a/shared".to_string();
        catalog.put(record(A1, "a", &["a/1".into(), shared.clone()]));
        catalog.put(record(A2, "a", &[shared.clone(), "a/2".into()]));
        let objects = Arc::new(KeysAsked::default());
        let deleter = Deleter::new(catalog.clone(), objects.clone());
        // WHEN both are deleted
        let outcome = deleter
            .delete(
                &ids(&[A1, A2]),
                Authority::System(Trigger::Cleanup),
                &RequestId::new("test"),
                deadline(),
            )
            .await
            .unwrap();
        // THEN one delete names each key once, first sighting first, and both are gone
        let asked = objects.0.lock().unwrap().clone();
        assert_eq!(asked, vec![vec!["a/1", "a/shared", "a/2"]]);
        assert_eq!(strs(&outcome.deleted), [A1, A2]);
        assert!(catalog.ids().is_empty());
    }

    #[tokio::test]
    async fn one_forbidden_image_denies_the_whole_request_and_deletes_nothing() {
        // GIVEN a token for album "a" only
        let w = world();
        let claims = claims_for(&["a"]);
        let required = required();
        let auth = Authority::Token {
            user_id: "u",
            abilities: &claims.abilities,
            required: &required,
        };
        // WHEN it asks for A1 and B1 (album "b")
        let denied = w
            .deleter
            .delete(&ids(&[A1, B1]), auth, &RequestId::new("test"), deadline())
            .await
            .unwrap_err();
        // THEN it is denied for B1 and nothing at all is deleted
        assert_eq!(strs(&denied.ids), [B1]);
        assert_eq!(w.catalog.ids().len(), 3);
        assert_eq!(w.objects.keys().len(), 4);
    }

    #[tokio::test]
    async fn a_token_without_the_required_ability_is_denied() {
        let w = world();
        // GIVEN a token granting image_delete, where image_list is required
        let claims = claims_for(&["a"]);
        let required = vec!["image_list".to_string()];
        let auth = Authority::Token {
            user_id: "u",
            abilities: &claims.abilities,
            required: &required,
        };
        assert!(
            w.deleter
                .delete(&ids(&[A1]), auth, &RequestId::new("test"), deadline())
                .await
                .is_err()
        );
        assert_eq!(w.catalog.ids().len(), 3);
    }

    #[tokio::test]
    async fn an_image_whose_object_cannot_be_deleted_keeps_its_record_and_is_not_reported() {
        // GIVEN one of A1's objects cannot be deleted
        let w = world();
        w.objects.fail_key(&format!("a/{A1}/1"));
        // WHEN A1 and A2 are deleted with system authority
        let outcome = w.delete_as_system(&[A1, A2]).await;
        // THEN A2 is deleted, A1 failed with a reason, and A1's record remains
        assert_eq!(strs(&outcome.deleted), [A2]);
        assert_eq!(strs(&outcome.failed), [A1]);
        assert_eq!(outcome.error.unwrap().kind(), StoreErrorKind::Failed);
        let mut left = w.catalog.ids();
        left.sort();
        assert_eq!(left, [A1.to_string(), B1.to_string()]);
        assert!(w.objects.keys().contains(&format!("a/{A1}/1")));
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_deleted_is_not_reported() {
        let w = world();
        w.catalog.fail_delete(A2);
        let outcome = w.delete_as_system(&[A1, A2]).await;
        assert_eq!(strs(&outcome.deleted), [A1]);
        assert_eq!(strs(&outcome.failed), [A2]);
        assert!(w.catalog.ids().contains(&A2.to_string()));
    }

    #[tokio::test]
    async fn unread_records_are_neither_deleted_nor_reported() {
        let w = world();
        w.catalog.fail_get(A1);
        let outcome = w.delete_as_system(&[A1, A2]).await;
        assert_eq!(strs(&outcome.deleted), [A2]);
        assert_eq!(strs(&outcome.failed), [A1]);
        assert_eq!(w.objects.keys().len(), 3);
    }

    #[tokio::test]
    async fn a_token_request_with_an_unreadable_forbidden_record_deletes_nothing() {
        // GIVEN a token for album "a", and B1 (album "b") cannot be read
        let w = world();
        w.catalog.fail_get(B1);
        // WHEN it asks for A1 (allowed) and B1
        let outcome = w.delete_as_token_for_a(&[A1, B1, NONE]).await.unwrap();
        // THEN nothing is deleted: B1 cannot be authorized, so the request fails closed
        assert!(outcome.deleted.is_empty());
        assert_eq!(strs(&outcome.failed), [A1, B1]);
        assert_eq!(strs(&outcome.missing), [NONE]);
        assert_eq!(outcome.error.unwrap().kind(), StoreErrorKind::Unavailable);
        assert_eq!(w.catalog.ids().len(), 3);
        assert_eq!(w.objects.keys().len(), 4);
        assert_eq!(w.objects.calls(), 0);
    }

    #[tokio::test]
    async fn a_token_request_with_an_unreadable_allowed_record_deletes_nothing() {
        // GIVEN a token for album "a", and A2 (album "a") cannot be read
        let w = world();
        w.catalog.fail_get(A2);
        // WHEN it asks for A1 and A2
        let outcome = w.delete_as_token_for_a(&[A1, A2]).await.unwrap();
        // THEN nothing is deleted, not even the readable A1
        assert!(outcome.deleted.is_empty());
        assert_eq!(strs(&outcome.failed), [A1, A2]);
        assert!(outcome.error.is_some());
        assert_eq!(w.catalog.ids().len(), 3);
        assert_eq!(w.objects.keys().len(), 4);
    }

    #[tokio::test]
    async fn system_authority_deletes_what_it_read_past_an_unreadable_record() {
        // GIVEN B1 cannot be read
        let w = world();
        w.catalog.fail_get(B1);
        // WHEN a cleanup job deletes A1 and B1
        let outcome = w.delete_as_system(&[A1, B1]).await;
        // THEN A1 is deleted and B1 is left for the retry, whole
        assert_eq!(strs(&outcome.deleted), [A1]);
        assert_eq!(strs(&outcome.failed), [B1]);
        assert!(w.catalog.contains(&ImageId::parse(B1).unwrap()));
        assert!(w.objects.contains(&format!("b/{B1}/0")));
    }

    #[tokio::test]
    async fn a_forbidden_image_that_was_read_still_denies_when_another_is_unread() {
        // GIVEN A2 cannot be read, B1 (forbidden) can
        let w = world();
        w.catalog.fail_get(A2);
        // WHEN it asks for A2 and B1 THEN it is denied, as without the fault
        let denied = w.delete_as_token_for_a(&[A2, B1]).await.unwrap_err();
        assert_eq!(strs(&denied.ids), [B1]);
        assert_eq!(w.catalog.ids().len(), 3);
    }

    #[tokio::test]
    async fn a_record_delete_applied_with_its_answer_lost_is_reported_deleted() {
        // GIVEN deleting A2's record works but its answer is lost
        let w = world();
        w.catalog.set_faults(Box::new(|op, item| {
            (op == Op::DeleteRecord && item == A2)
                .then_some(Fault::Ambiguous(StoreErrorKind::Unavailable))
        }));
        // WHEN A1 and A2 are deleted
        let outcome = w.delete_as_system(&[A1, A2]).await;
        // THEN the re-read finds A2 gone: both are reported, nothing failed
        assert_eq!(strs(&outcome.deleted), [A1, A2]);
        assert!(outcome.failed.is_empty() && outcome.error.is_none());
        assert_eq!(w.catalog.ids(), [B1.to_string()]);
    }

    #[tokio::test]
    async fn a_lost_answer_that_cannot_be_confirmed_is_failed_and_unconfirmed() {
        // GIVEN A2's record delete is applied with its answer lost, and every read of
        // A2 after the first fails
        let w = world();
        let reads = AtomicUsize::new(0);
        w.catalog
            .set_faults(Box::new(move |op, item| match (op, item) {
                (Op::DeleteRecord, A2) => Some(Fault::Ambiguous(StoreErrorKind::Unavailable)),
                (Op::ReadRecord, A2) if reads.fetch_add(1, Ordering::SeqCst) > 0 => {
                    Some(Fault::Fail(StoreErrorKind::Throttled))
                }
                _ => None,
            }));
        // WHEN A1 and A2 are deleted
        let outcome = w.delete_as_system(&[A1, A2]).await;
        // THEN A2 is failed (not reported), marked unconfirmed, with the worst cause
        assert_eq!(strs(&outcome.deleted), [A1]);
        assert_eq!(strs(&outcome.failed), [A2]);
        assert_eq!(strs(&outcome.unconfirmed), [A2]);
        assert_eq!(outcome.error.unwrap().kind(), StoreErrorKind::Throttled);
    }

    #[tokio::test]
    async fn a_record_delete_that_really_failed_is_failed_after_the_re_read() {
        // GIVEN deleting A2's record fails without effect
        let w = world();
        w.catalog.set_faults(Box::new(|op, item| {
            (op == Op::DeleteRecord && item == A2).then_some(Fault::Fail(StoreErrorKind::Failed))
        }));
        let outcome = w.delete_as_system(&[A1, A2]).await;
        // THEN A2 is failed, confirmed still there (not unconfirmed)
        assert_eq!(strs(&outcome.failed), [A2]);
        assert!(outcome.unconfirmed.is_empty());
        assert!(w.catalog.contains(&ImageId::parse(A2).unwrap()));
    }

    #[tokio::test]
    async fn replaying_a_request_is_harmless() {
        let w = world();
        let first = w.delete_as_system(&[A1]).await;
        let again = w.delete_as_system(&[A1]).await;
        assert_eq!(strs(&first.deleted), [A1]);
        assert!(again.deleted.is_empty() && again.failed.is_empty());
        assert_eq!(strs(&again.missing), [A1]);
    }

    #[tokio::test]
    async fn no_ids_means_no_store_calls() {
        let w = world();
        let outcome = w
            .deleter
            .delete(
                &ImageIds::default(),
                Authority::System(Trigger::Cleanup),
                &RequestId::new("test"),
                deadline(),
            )
            .await
            .unwrap();
        assert!(outcome.deleted.is_empty());
        assert_eq!(w.catalog.calls(), 0);
        assert_eq!(w.objects.calls(), 0);
    }

    /// The memory object store, slow to answer; it notes how many records were left
    /// when it was done.
    struct Slow {
        inner: Arc<MemoryObjectStore>,
        catalog: Arc<MemoryCatalog>,
        records_when_done: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl ObjectStore for Slow {
        async fn delete(&self, keys: &[ObjectKey], deadline: Deadline) -> Partial<ObjectKey> {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            let result = self.inner.delete(keys, deadline).await;
            self.records_when_done
                .store(self.catalog.ids().len(), Ordering::SeqCst);
            result
        }
    }

    #[tokio::test]
    async fn no_record_is_deleted_before_every_object_is_gone() {
        // GIVEN an object store slow enough for anything sent alongside it to land
        let w = world();
        let slow = Arc::new(Slow {
            inner: w.objects.clone(),
            catalog: w.catalog.clone(),
            records_when_done: AtomicUsize::new(0),
        });
        let w = World {
            deleter: Deleter::new(w.catalog.clone(), slow.clone()),
            ..w
        };
        // WHEN A1 and A2 are deleted
        let outcome = w.delete_as_system(&[A1, A2]).await;
        // THEN all three records were there when the objects were gone, and then
        // A1's and A2's went
        assert_eq!(strs(&outcome.deleted), [A1, A2]);
        assert_eq!(slow.records_when_done.load(Ordering::SeqCst), 3);
        assert_eq!(w.catalog.ids(), [B1.to_string()]);
    }
}
