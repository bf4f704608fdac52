//! Property tests of the deletion core against its reference model: the in-memory
//! adapters, with random worlds, requests and fault schedules (a seeded RNG decides,
//! item by item, whether a store call fails outright or is applied with its answer
//! lost). For both authorities, every outcome must keep the promises of "nothing
//! lost"; proptest keeps failing cases in `proptest-regressions/` and replays them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::ImageRecord;
use super::claims::Claims;
use super::deletion::{Authority, DeleteOutcome, Deleter, Denied};
use super::ids::{AlbumId, ImageId, ImageIds, ObjectKey};
use super::trash::{RequestId, Trigger};
use crate::ports::StoreErrorKind;
use crate::retry::Deadline;
use crate::store::memory::{Fault, MemoryCatalog, MemoryObjectStore, Op};

/// The token's album; images elsewhere are forbidden to it.
const ALLOWED: &str = "allowed";
const FORBIDDEN: &str = "other";

#[derive(Debug, Clone)]
struct Spec {
    forbidden: bool,
    objects: usize,
    stored: bool,
    requested: bool,
}

#[derive(Debug, Clone)]
struct Image {
    id: ImageId,
    keys: Vec<String>,
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
    let objects = Arc::new(MemoryObjectStore::default());
    let images: Vec<Image> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let id = ImageId::parse(&format!("00000000-0000-4000-8000-{i:012}")).unwrap();
            let album = if spec.forbidden { FORBIDDEN } else { ALLOWED };
            let keys: Vec<String> = (0..spec.objects)
                .map(|k| format!("{album}/{id}/{k}"))
                .collect();
            if spec.stored {
                objects.put_all(&keys);
                catalog.put(ImageRecord {
                    id: id.clone(),
                    album_id: AlbumId::parse(album).unwrap(),
                    object_keys: keys.iter().map(|k| ObjectKey::parse(k).unwrap()).collect(),
                    rest: Default::default(),
                });
            }
            Image {
                id,
                keys,
                forbidden: spec.forbidden,
                requested: spec.requested,
            }
        })
        .collect();
    let deleter = Deleter::new(catalog.clone(), objects.clone());
    World {
        images,
        catalog,
        objects,
        deleter,
    }
}

/// Which records and objects existed before a call.
struct Snapshot {
    records: HashSet<ImageId>,
    objects: HashSet<String>,
}

impl Snapshot {
    fn had_record(&self, image: &Image) -> bool {
        self.records.contains(&image.id)
    }

    /// Record and every object exactly as before.
    fn unchanged(&self, w: &World, image: &Image) -> bool {
        w.record(image) == self.had_record(image)
            && image
                .keys
                .iter()
                .all(|k| w.objects.contains(k) == self.objects.contains(k))
    }
}

impl World {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            records: self
                .images
                .iter()
                .filter(|i| self.record(i))
                .map(|i| i.id.clone())
                .collect(),
            objects: self.objects.keys().into_iter().collect(),
        }
    }

    fn record(&self, image: &Image) -> bool {
        self.catalog.contains(&image.id)
    }

    fn objects_left(&self, image: &Image) -> usize {
        image
            .keys
            .iter()
            .filter(|k| self.objects.contains(k))
            .count()
    }

    fn gone(&self, image: &Image) -> bool {
        !self.record(image) && self.objects_left(image) == 0
    }

    fn requested(&self) -> ImageIds {
        ImageIds::from_ids(
            self.images
                .iter()
                .filter(|i| i.requested)
                .map(|i| i.id.clone()),
        )
    }
}

/// Faults on a share `rate` of all items, the kind and whether the work was applied
/// drawn from `seed`.
fn faults(seed: u64, rate: f64) -> impl FnMut(Op, &str) -> Option<Fault> + Send {
    let mut rng = fastrand::Rng::with_seed(seed);
    move |_op, _item| {
        if rng.f64() >= rate {
            return None;
        }
        let kind = [
            StoreErrorKind::Throttled,
            StoreErrorKind::Unavailable,
            StoreErrorKind::Failed,
        ][rng.usize(..3)];
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
        "abilities": {ALLOWED: {"Access": {"image_delete": true}}}
    }))
    .unwrap()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

fn delete(w: &World, system: bool) -> Result<DeleteOutcome, Denied> {
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
    block_on(w.deleter.delete(
        &w.requested(),
        authority,
        &RequestId::new("test"),
        Deadline::after(Duration::from_secs(5)),
    ))
}

/// Checks one outcome against the stores.
fn check(
    w: &World,
    system: bool,
    result: &Result<DeleteOutcome, Denied>,
    before: &Snapshot,
) -> Result<(), TestCaseError> {
    let requested: Vec<&Image> = w.images.iter().filter(|i| i.requested).collect();
    let holds_forbidden = requested
        .iter()
        .any(|i| i.forbidden && before.had_record(i));
    for image in &w.images {
        // No record is gone while one of its objects remains; unrequested is untouched.
        prop_assert!(
            w.record(image) || w.objects_left(image) == 0,
            "{}: record gone, objects remain",
            image.id
        );
        if !image.requested {
            prop_assert!(
                before.unchanged(w, image),
                "{}: not requested but changed",
                image.id
            );
        }
    }
    let outcome = match result {
        Err(denied) => {
            prop_assert!(!system, "system authority denied");
            let forbidden: HashSet<&ImageId> = requested
                .iter()
                .filter(|i| i.forbidden && before.had_record(i))
                .map(|i| &i.id)
                .collect();
            prop_assert!(denied.ids.iter().all(|id| forbidden.contains(id)));
            for image in &requested {
                prop_assert!(before.unchanged(w, image), "{}: changed, denied", image.id);
            }
            return Ok(());
        }
        Ok(outcome) => outcome,
    };
    if !system && holds_forbidden {
        // Not denied: the forbidden record was unread, so the request failed closed.
        prop_assert!(outcome.deleted.is_empty() && outcome.error.is_some());
        for image in &requested {
            prop_assert!(
                before.unchanged(w, image),
                "{}: changed, forbidden id held",
                image.id
            );
        }
    }
    // Every requested id in exactly one list; the error says why exactly when failed.
    let mut all: Vec<&ImageId> = outcome
        .deleted
        .iter()
        .chain(&outcome.missing)
        .chain(&outcome.failed)
        .collect();
    all.sort();
    let mut want: Vec<&ImageId> = requested.iter().map(|i| &i.id).collect();
    want.sort();
    prop_assert_eq!(all, want);
    prop_assert_eq!(outcome.error.is_some(), !outcome.failed.is_empty());
    let failed: HashSet<&ImageId> = outcome.failed.iter().collect();
    prop_assert!(outcome.unconfirmed.iter().all(|id| failed.contains(id)));
    let deleted: HashSet<&ImageId> = outcome.deleted.iter().collect();
    let unconfirmed: HashSet<&ImageId> = outcome.unconfirmed.iter().collect();
    for image in &requested {
        if deleted.contains(&image.id) {
            prop_assert!(
                before.had_record(image) && w.gone(image),
                "{}: reported, not gone",
                image.id
            );
            prop_assert!(system || !image.forbidden);
        } else if before.had_record(image) && !w.record(image) {
            // Gone without being reported: only when the re-read could not tell.
            prop_assert!(
                unconfirmed.contains(&image.id),
                "{}: gone, unreported",
                image.id
            );
        }
    }
    // Ids reported missing have no record.
    let missing: HashSet<&ImageId> = outcome.missing.iter().collect();
    for image in requested.iter().filter(|i| missing.contains(&i.id)) {
        prop_assert!(!w.record(image), "{}: missing, yet has a record", image.id);
    }
    Ok(())
}

fn specs() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(
        (
            prop::bool::weighted(0.15),
            0usize..=3,
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.8),
        )
            .prop_map(|(forbidden, objects, stored, requested)| Spec {
                forbidden,
                objects,
                stored,
                requested,
            }),
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn faults_never_break_a_promise_and_a_replay_finishes_the_work(
        specs in specs(),
        system in any::<bool>(),
        seed in any::<u64>(),
        rate in 0.0f64..0.6,
    ) {
        // GIVEN a random world whose stores fail (or lose answers) on random items
        let w = world(&specs);
        w.catalog.set_faults(Box::new(faults(seed, rate)));
        w.objects.set_faults(Box::new(faults(seed.wrapping_add(1), rate)));
        // WHEN the requested ids are deleted
        let before = w.snapshot();
        let result = delete(&w, system);
        // THEN every promise holds
        check(&w, system, &result, &before)?;

        // AND WHEN the faults stop and the request is replayed
        w.catalog.set_faults(Box::new(|_, _| None));
        w.objects.set_faults(Box::new(|_, _| None));
        let before_replay = w.snapshot();
        let replay = delete(&w, system);
        check(&w, system, &replay, &before_replay)?;
        // THEN every requested image that may be deleted is gone, the rest whole
        let holds_forbidden = w
            .images
            .iter()
            .any(|i| i.requested && i.forbidden && before.had_record(i));
        for image in w.images.iter().filter(|i| i.requested) {
            if system || !holds_forbidden {
                prop_assert!(w.gone(image), "{}: stuck after the replay", image.id);
            } else {
                prop_assert!(before.unchanged(&w, image), "{}: changed, forbidden id held", image.id);
            }
        }
    }
}
