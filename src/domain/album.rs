//! Deleting a whole album: page through its images and delete each page through the
//! same core as every other deletion, stopping in time to hand the rest on.

use std::time::Duration;

use super::deletion::{Authority, Deleter};
use super::ids::{AlbumId, ImageId, ImageIds};
use super::trash::{RequestId, Trigger};
use crate::ports::StoreError;
use crate::retry::Deadline;

/// Whether the album was gone through to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlbumProgress {
    /// Every page was processed (some images may still have failed).
    Done,
    /// Time ran short: the rest must be handed on.
    OutOfTime,
    /// The album index could not be read: retry later.
    Stopped,
}

#[derive(Debug)]
pub struct AlbumOutcome {
    pub progress: AlbumProgress,
    pub deleted: usize,
    pub objects_deleted: usize,
    /// Images whose deletion failed; their records remain.
    pub failed: Vec<ImageId>,
    pub error: Option<StoreError>,
    pub retries: u64,
    pub object_errors: u64,
}

impl Deleter {
    /// Deletes `album`'s images page by page (`page_size` ids each) with system
    /// authority; stops before a page once less than `margin` is left. With
    /// `prefetch`, the next page of the album index is read while the current one
    /// is deleted, so reading the index costs no round trip of its own after the first.
    pub async fn delete_album(
        &self,
        album: &AlbumId,
        page_size: usize,
        prefetch: bool,
        request_id: &RequestId,
        deadline: Deadline,
        margin: Duration,
    ) -> AlbumOutcome {
        let mut outcome = AlbumOutcome {
            progress: AlbumProgress::Done,
            deleted: 0,
            objects_deleted: 0,
            failed: Vec::new(),
            error: None,
            retries: 0,
            object_errors: 0,
        };
        let read = |after: Option<ImageId>| async move {
            self.catalog()
                .album_page(album, after.as_ref(), page_size, deadline)
                .await
        };
        if deadline.remaining() < margin {
            outcome.progress = AlbumProgress::OutOfTime;
            return outcome;
        }
        let mut page = read(None).await;
        loop {
            let current = match page {
                Ok(current) => current,
                Err(err) => {
                    outcome.progress = AlbumProgress::Stopped;
                    outcome.error = StoreError::worst(outcome.error, Some(err));
                    return outcome;
                }
            };
            let ids = ImageIds::from_ids(current.ids);
            let delete = async {
                self.delete(
                    &ids,
                    Authority::System(Trigger::Album),
                    request_id,
                    deadline,
                )
                .await
                .expect("system authority is never denied")
            };
            let (result, next) = match current.next {
                Some(after) if prefetch => {
                    let (result, next) =
                        futures_util::future::join(delete, read(Some(after))).await;
                    (result, Some(next))
                }
                Some(after) => {
                    let result = delete.await;
                    (result, Some(read(Some(after)).await))
                }
                None => (delete.await, None),
            };
            outcome.deleted += result.deleted.len();
            outcome.objects_deleted += result.objects_deleted;
            outcome.failed.extend(result.failed);
            outcome.error = StoreError::worst(outcome.error, result.error);
            outcome.retries += result.retries;
            outcome.object_errors += result.object_errors;
            let Some(next) = next else {
                return outcome;
            };
            if deadline.remaining() < margin {
                outcome.progress = AlbumProgress::OutOfTime;
                return outcome;
            }
            page = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ImageRecord, ObjectKey};
    use crate::store::memory::{MemoryCatalog, MemoryObjectStore};
    use std::sync::Arc;

    fn world(n: usize) -> (Arc<MemoryCatalog>, Arc<MemoryObjectStore>, Deleter) {
        let catalog = Arc::new(MemoryCatalog::default());
        let objects = Arc::new(MemoryObjectStore::default());
        for (i, album) in (0..n).map(|i| (i, "a")).chain([(900, "b")]) {
            let id = format!("00000000-0000-4000-8000-{i:012}");
            let key = format!("{album}/{id}");
            objects.put_all(std::slice::from_ref(&key));
            catalog.put(ImageRecord {
                id: ImageId::parse(&id).unwrap(),
                album_id: AlbumId::parse(album).unwrap(),
                object_keys: vec![ObjectKey::parse(&key).unwrap()],
                rest: Default::default(),
            });
        }
        let deleter = Deleter::new(catalog.clone(), objects.clone());
        (catalog, objects, deleter)
    }

    #[tokio::test]
    async fn deletes_every_page_of_the_album_and_nothing_else() {
        for prefetch in [true, false] {
            // GIVEN album "a" with 10 images and album "b" with one
            let (catalog, objects, deleter) = world(10);
            // WHEN album "a" is deleted three ids at a time, pages read ahead or not
            let album = AlbumId::parse("a").unwrap();
            let outcome = deleter
                .delete_album(
                    &album,
                    3,
                    prefetch,
                    &RequestId::new("test"),
                    Deadline::after(Duration::from_secs(5)),
                    Duration::ZERO,
                )
                .await;
            // THEN all ten are gone over four pages and "b" is untouched
            assert_eq!(outcome.progress, AlbumProgress::Done, "{prefetch}");
            assert_eq!(outcome.deleted, 10);
            assert_eq!(catalog.ids().len(), 1);
            assert_eq!(objects.keys().len(), 1);
        }
    }

    #[tokio::test]
    async fn stops_for_hand_off_when_time_is_short() {
        let (catalog, _, deleter) = world(4);
        let album = AlbumId::parse("a").unwrap();
        let outcome = deleter
            .delete_album(
                &album,
                2,
                true,
                &RequestId::new("test"),
                Deadline::after(Duration::from_millis(10)),
                Duration::from_secs(1),
            )
            .await;
        assert_eq!(outcome.progress, AlbumProgress::OutOfTime);
        assert_eq!(catalog.ids().len(), 5);
    }
}
