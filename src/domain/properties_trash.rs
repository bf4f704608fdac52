//! Property tests of the trash against its reference model: the in-memory catalog
//! (records and trash entries) and a versioned in-memory object store, with random
//! worlds and fault schedules as in `properties`. A delete into the trash, the
//! images-table stream's adoption, a restore and an erasure each run under faults,
//! then again without; every outcome must keep the trash's promises:
//! - reported deleted => no record, an entry holding the record as it was, every
//!   object unreadable and restorable;
//! - reported restored => the record back as it was, no entry, every object readable
//!   with the bytes it had;
//! - reported erased => no entry, no version of any object left;
//! - at every step, an image is live (its record) or trashed (its entry) once the
//!   stream has been read, and nothing unrequested changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::claims::Claims;
use super::deletion::{Authority, Deleter};
use super::ids::{AlbumId, ImageId, ImageIds, ObjectKey};
use super::restore::{Caller, TrashError, TrashOutcome};
use super::trash::{RequestId, TrashDays, Trigger, UnixTime};
use super::{ImageRecord, Opaque};
use crate::ports::StoreErrorKind;
use crate::retry::Deadline;
use crate::store::memory::{Fault, MemoryCatalog, MemoryObjectStore, Op};

/// A restore or erasure by user "u", request "req".
const ALLOWED: &str = "allowed";
const FORBIDDEN: &str = "other";
const NOW: i64 = 1_800_000_000;

#[derive(Debug, Clone)]
struct Spec {
    forbidden: bool,
    objects: usize,
    requested: bool,
}

struct Image {
    id: ImageId,
    record: ImageRecord,
    keys: Vec<String>,
    /// Each key's bytes when the world was made.
    bytes: HashMap<String, String>,
    forbidden: bool,
    requested: bool,
}

struct World {
    images: Vec<Image>,
    catalog: Arc<MemoryCatalog>,
    objects: Arc<MemoryObjectStore>,
    deleter: Deleter,
}

fn world(specs: &[Spec]) -> World {
    let catalog = Arc::new(MemoryCatalog::default());
    let objects = Arc::new(MemoryObjectStore::versioned());
    let images = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let id = ImageId::parse(&format!("00000000-0000-4000-8000-{i:012}")).unwrap();
            let album = if spec.forbidden { FORBIDDEN } else { ALLOWED };
            let keys: Vec<String> = (0..spec.objects)
                .map(|k| format!("{album}/{id}/{k}"))
                .collect();
            objects.put_all(&keys);
            let record = ImageRecord {
                id: id.clone(),
                album_id: AlbumId::parse(album).unwrap(),
                object_keys: keys.iter().map(|k| ObjectKey::parse(k).unwrap()).collect(),
                rest: Opaque::new(format!("the rest of {id}")),
            };
            catalog.put(record.clone());
            let bytes = keys
                .iter()
                .map(|k| (k.clone(), objects.read(k).unwrap()))
                .collect();
            Image {
                id,
                record,
                keys,
                bytes,
                forbidden: spec.forbidden,
                requested: spec.requested,
            }
        })
        .collect();
    let days = TrashDays::parse("30").unwrap().unwrap();
    let deleter = Deleter::new(catalog.clone(), objects.clone())
        .with_trash(catalog.clone(), objects.clone(), days)
        .with_clock(|| UnixTime(NOW));
    World {
        images,
        catalog,
        objects,
        deleter,
    }
}

/// Where an image stands.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    record: bool,
    entry: bool,
    /// Keys readable, in order.
    readable: Vec<bool>,
    /// Keys with any version left, in order.
    stored: Vec<bool>,
}

impl World {
    fn state(&self, image: &Image) -> State {
        State {
            record: self.catalog.contains(&image.id),
            entry: self.catalog.entry(&image.id).is_some(),
            readable: image
                .keys
                .iter()
                .map(|k| self.objects.contains(k))
                .collect(),
            stored: image
                .keys
                .iter()
                .map(|k| self.objects.has_versions(k))
                .collect(),
        }
    }

    fn states(&self) -> Vec<State> {
        self.images.iter().map(|i| self.state(i)).collect()
    }

    /// Live: the record as it was and every object readable with its bytes.
    fn live(&self, image: &Image) -> bool {
        self.catalog.record(&image.id).as_ref() == Some(&image.record)
            && self.catalog.entry(&image.id).is_none()
            && image
                .keys
                .iter()
                .all(|k| self.objects.read(k).as_ref() == Some(&image.bytes[k]))
    }

    /// Trashed: no record, the entry holding the record as it was, every object
    /// unreadable and its bytes restorable.
    fn trashed(&self, image: &Image) -> bool {
        !self.catalog.contains(&image.id)
            && self
                .catalog
                .entry(&image.id)
                .is_some_and(|e| e.record == image.record)
            && image
                .keys
                .iter()
                .all(|k| !self.objects.contains(k) && self.restorable(image, k))
    }

    /// The key's own bytes are below its markers.
    fn restorable(&self, image: &Image, key: &str) -> bool {
        self.objects.newest_bytes(key).as_ref() == Some(&image.bytes[key])
    }

    /// Every object restorable or readable, and the image's record or entry there:
    /// nothing lost, nothing untracked.
    fn tracked(&self, image: &Image) -> bool {
        let state = self.state(image);
        (state.record || state.entry) && image.keys.iter().all(|k| self.restorable(image, k))
    }

    fn requested(&self) -> ImageIds {
        ImageIds::from_ids(
            self.images
                .iter()
                .filter(|i| i.requested)
                .map(|i| i.id.clone()),
        )
    }

    fn faults(&self, seed: u64, rate: f64) {
        self.catalog.set_faults(Box::new(faults(seed, rate)));
        self.objects
            .set_faults(Box::new(faults(seed.wrapping_add(1), rate)));
    }

    fn calm(&self) {
        self.catalog.set_faults(Box::new(|_, _| None));
        self.objects.set_faults(Box::new(|_, _| None));
    }

    /// The images table's stream, read without faults: its records adopted.
    fn stream(&self) {
        let removed = self.catalog.take_removed();
        let adopted = block_on(
            self.deleter
                .adopt(removed, &RequestId::new("s"), deadline()),
        );
        assert!(adopted.unwrap().failed.is_empty());
    }
}

fn faults(seed: u64, rate: f64) -> impl FnMut(Op, &str) -> Option<Fault> + Send {
    let mut rng = fastrand::Rng::with_seed(seed);
    move |_op, _item| {
        if rng.f64() >= rate {
            return None;
        }
        let kind = [StoreErrorKind::Throttled, StoreErrorKind::Unavailable][rng.usize(..2)];
        Some(if rng.bool() {
            Fault::Fail(kind)
        } else {
            Fault::Ambiguous(kind)
        })
    }
}

fn token() -> Claims {
    serde_json::from_value(serde_json::json!({
        "exp": 1, "user_id": "u",
        "abilities": {ALLOWED: {"Access": {"image_delete": true, "trash": true}}}
    }))
    .unwrap()
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

/// Deletes the requested ids into the trash; `None` when denied.
fn delete(w: &World, system: bool) -> Option<super::DeleteOutcome> {
    let claims = token();
    let required = vec!["image_delete".to_owned()];
    let authority = if system {
        Authority::System(Trigger::Cleanup)
    } else {
        Authority::Token {
            user_id: "u",
            abilities: &claims.abilities,
            required: &required,
        }
    };
    let request = RequestId::new("r");
    block_on(
        w.deleter
            .delete(&w.requested(), authority, &request, deadline()),
    )
    .ok()
}

fn restore(w: &World) -> Result<TrashOutcome, TrashError> {
    block_on(w.deleter.restore(
        &w.requested(),
        Caller::for_tests(&token().abilities),
        deadline(),
    ))
}

fn erase(w: &World) -> Result<TrashOutcome, TrashError> {
    block_on(w.deleter.erase(
        &w.requested(),
        Caller::for_tests(&token().abilities),
        deadline(),
    ))
}

/// Unrequested images unchanged; requested ones tracked once the stream is read.
fn check_world(w: &World, before: &[State]) -> Result<(), TestCaseError> {
    w.stream();
    for (image, was) in w.images.iter().zip(before) {
        if !image.requested {
            prop_assert_eq!(&w.state(image), was, "{}: unrequested, changed", image.id);
        }
        prop_assert!(
            w.tracked(image),
            "{}: untracked: {:?}",
            image.id,
            w.state(image)
        );
    }
    Ok(())
}

/// Every id in exactly one list; the error exactly when some failed.
fn check_lists(w: &World, lists: [&[ImageId]; 3], error: bool) -> Result<(), TestCaseError> {
    let mut all: Vec<&ImageId> = lists.iter().flat_map(|l| l.iter()).collect();
    all.sort();
    let mut want: Vec<&ImageId> = w
        .images
        .iter()
        .filter(|i| i.requested)
        .map(|i| &i.id)
        .collect();
    want.sort();
    prop_assert_eq!(all, want);
    prop_assert_eq!(error, !lists[2].is_empty());
    Ok(())
}

fn specs() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(
        (
            prop::bool::weighted(0.1),
            0usize..=3,
            prop::bool::weighted(0.8),
        )
            .prop_map(|(forbidden, objects, requested)| Spec {
                forbidden,
                objects,
                requested,
            }),
        1..10,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn deleted_is_trashed_restored_is_live_and_a_replay_finishes_each(
        specs in specs(),
        system in any::<bool>(),
        seed in any::<u64>(),
        rate in 0.0f64..0.5,
    ) {
        // GIVEN a random world whose stores fail (or lose answers) on random items
        let w = world(&specs);
        let forbidden_asked = w.images.iter().any(|i| i.requested && i.forbidden);

        // WHEN the requested ids are deleted into the trash
        w.faults(seed, rate);
        let before = w.states();
        let outcome = delete(&w, system);
        w.calm();
        // THEN whatever is reported deleted is trashed, and nothing is lost
        check_world(&w, &before)?;
        match &outcome {
            None => {
                prop_assert!(!system && forbidden_asked);
                for (image, was) in w.images.iter().zip(&before) {
                    prop_assert_eq!(&w.state(image), was, "{}: changed, denied", image.id);
                }
                return Ok(());
            }
            Some(outcome) => {
                check_lists(&w, [&outcome.deleted, &outcome.missing, &outcome.failed], outcome.error.is_some())?;
                for image in w.images.iter().filter(|i| outcome.deleted.contains(&i.id)) {
                    prop_assert!(w.trashed(image), "{}: reported deleted, not trashed", image.id);
                    let entry = w.catalog.entry(&image.id).unwrap();
                    prop_assert_eq!(entry.deleted_by.to_string(), if system { "system:cleanup" } else { "u" });
                }
            }
        }
        // AND WHEN it is replayed without faults, every requested image is trashed
        if delete(&w, system).is_none() {
            prop_assert!(!system && forbidden_asked);
            return Ok(());
        }
        w.stream();
        for image in w.images.iter().filter(|i| i.requested) {
            prop_assert!(w.trashed(image), "{}: not trashed after the replay", image.id);
        }

        // WHEN they are restored under faults
        w.faults(seed.wrapping_add(7), rate);
        let before = w.states();
        let restored = restore(&w);
        w.calm();
        check_world(&w, &before)?;
        let restored = match restored {
            // A forbidden entry denies the whole request, or fails it closed when its
            // read failed: either way nothing changes.
            Err(TrashError::Denied(_)) | Ok(_) if forbidden_asked => {
                for (image, was) in w.images.iter().zip(&before) {
                    prop_assert_eq!(&w.state(image), was, "{}: changed, denied", image.id);
                }
                prop_assert!(matches!(restore(&w), Err(TrashError::Denied(_))));
                return Ok(());
            }
            Ok(restored) => restored,
            Err(err) => return Err(TestCaseError::fail(err.to_string())),
        };
        check_lists(&w, [&restored.done, &restored.missing, &restored.failed], restored.error.is_some())?;
        // THEN what is reported restored is live, byte for byte; nothing is missing
        for image in w.images.iter().filter(|i| restored.done.contains(&i.id)) {
            prop_assert!(w.live(image), "{}: reported restored, not live", image.id);
        }
        // AND a replay without faults restores every one that was not reported
        let replay = restore(&w).unwrap();
        prop_assert!(replay.failed.is_empty());
        for image in w.images.iter().filter(|i| i.requested) {
            prop_assert!(w.live(image), "{}: not live after the replay", image.id);
        }
    }

    #[test]
    fn erased_leaves_no_version_and_a_replay_finishes_it(
        specs in specs(),
        seed in any::<u64>(),
        rate in 0.0f64..0.5,
    ) {
        // GIVEN the requested images in the trash
        let w = world(&specs);
        prop_assume!(delete(&w, true).is_some());
        w.stream();
        // WHEN they are erased under faults
        w.faults(seed, rate);
        let before = w.states();
        let erased = erase(&w);
        w.calm();
        // THEN what is reported erased has no entry and no version left, the rest
        // stays trashed or tracked, and a replay erases the rest
        for (image, was) in w.images.iter().zip(&before) {
            if !image.requested {
                prop_assert_eq!(&w.state(image), was);
            }
        }
        let forbidden_asked = w.images.iter().any(|i| i.requested && i.forbidden);
        let erased = match erased {
            Err(TrashError::Denied(_)) | Ok(_) if forbidden_asked => {
                for (image, was) in w.images.iter().zip(&before) {
                    prop_assert_eq!(&w.state(image), was, "{}: changed, denied", image.id);
                }
                prop_assert!(matches!(erase(&w), Err(TrashError::Denied(_))));
                return Ok(());
            }
            Ok(erased) => erased,
            Err(err) => return Err(TestCaseError::fail(err.to_string())),
        };
        check_lists(&w, [&erased.done, &erased.missing, &erased.failed], erased.error.is_some())?;
        for image in w.images.iter().filter(|i| erased.done.contains(&i.id)) {
            let state = w.state(image);
            prop_assert!(!state.record && !state.entry && state.stored.iter().all(|s| !s));
        }
        for image in w.images.iter().filter(|i| erased.failed.contains(&i.id)) {
            prop_assert!(!w.state(image).record, "{}: failed, yet a record", image.id);
        }
        let replay = erase(&w).unwrap();
        prop_assert!(replay.failed.is_empty());
        for image in w.images.iter().filter(|i| i.requested) {
            let state = w.state(image);
            prop_assert!(!state.record && !state.entry && state.stored.iter().all(|s| !s));
        }
    }
}
