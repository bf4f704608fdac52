//! Event-driven cleanup on the same deletion core as the HTTP endpoint:
//! SQS deletion jobs, EventBridge `AlbumDeleted` events and DynamoDB Streams `REMOVE`
//! records. One binary serves all three, telling them apart by the event's shape.
//!
//! These triggers act with system authority: the IAM policy on the queue, the event
//! bus and the stream is the authorization.

pub mod audit;
pub mod events;

use std::sync::Arc;

use foldhash::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::trash::{RequestId, Trigger};
use crate::domain::{
    AlbumId, AlbumOutcome, AlbumProgress, Authority, Deleter, ImageIds, ObjectKey,
};
use crate::metrics::Metrics;
use crate::ports::HandOff;
use crate::retry::{Deadline, for_each_bounded};
use events::{
    BatchResponse, BridgeEvent, CleanupEvent, SqsEvent, SqsMessage, StreamEvent, StreamRecord,
};

/// Time kept for one more page of an album: below it, the rest is handed on.
pub const HANDOFF_MARGIN: Duration = Duration::from_secs(5);
/// SQS messages processed at once (a batch holds at most 10 by default).
const MESSAGE_CONCURRENCY: usize = 4;
/// The `detail-type` of album deletion events.
pub const ALBUM_DELETED: &str = "AlbumDeleted";

/// Why an invocation failed as a whole (Lambda retries it, then parks it).
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("unrecognised event: {0}")]
    UnknownEvent(serde_json::Error),
    #[error("EventBridge event {id} is not an AlbumDeleted event with a valid detail.album_id")]
    BadAlbumEvent { id: String },
    #[error("album cleanup for event {id} left {failed} image(s) undone")]
    AlbumIncomplete { id: String, failed: usize },
}

/// A deletion job on the cleanup queue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobBody {
    #[serde(default)]
    image_ids: Option<Vec<String>>,
    #[serde(default)]
    album_id: Option<String>,
}

enum Job {
    Images(ImageIds),
    Album(AlbumId),
}

/// The cleanup triggers, built once at init.
pub struct Cleanup {
    deleter: Deleter,
    handoff: Arc<dyn HandOff>,
    max_ids: usize,
    page_size: usize,
    prefetch: bool,
    margin: Duration,
    /// The trash table: its stream's TTL removals are expiries (`expiries`).
    trash_table: Option<String>,
}

impl Cleanup {
    pub fn new(
        deleter: Deleter,
        handoff: Arc<dyn HandOff>,
        max_ids: usize,
        page_size: usize,
    ) -> Self {
        Self {
            deleter,
            handoff,
            max_ids,
            page_size,
            prefetch: true,
            margin: HANDOFF_MARGIN,
            trash_table: None,
        }
    }

    /// Names the trash table, whose stream's batches are expiries.
    pub fn with_trash_table(mut self, table: Option<String>) -> Self {
        self.trash_table = table;
        self
    }

    /// Whether album pages are read ahead (`Config::album_prefetch`).
    pub fn with_album_prefetch(mut self, prefetch: bool) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Changes the hand-off margin (tests use short deadlines).
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Handles one invocation of any of the three triggers.
    pub async fn handle(&self, event: Value, deadline: Deadline) -> Result<Value, CleanupError> {
        let event = CleanupEvent::parse(event).map_err(CleanupError::UnknownEvent)?;
        let mut metrics = Metrics::default();
        let (trigger, result) = match event {
            CleanupEvent::Sqs(event) => (
                "sqs",
                Ok(Some(self.sqs(event, deadline, &mut metrics).await)),
            ),
            CleanupEvent::Stream(event) => (
                "stream",
                Ok(Some(self.stream(event, deadline, &mut metrics).await)),
            ),
            // EventBridge invokes asynchronously: success is an empty answer.
            CleanupEvent::Bridge(event) => (
                "album",
                self.album_deleted(event, deadline, &mut metrics)
                    .await
                    .map(|()| None),
            ),
        };
        metrics.failed_messages = match &result {
            Ok(Some(response)) => response.batch_item_failures.len() as u64,
            Ok(None) => 0,
            Err(_) => 1,
        };
        metrics.emit(trigger);
        result.map(|r| {
            r.map_or(Value::Null, |r| {
                serde_json::to_value(r).expect("serializable")
            })
        })
    }

    async fn sqs(
        &self,
        event: SqsEvent,
        deadline: Deadline,
        metrics: &mut Metrics,
    ) -> BatchResponse {
        let results = for_each_bounded(event.records, MESSAGE_CONCURRENCY, |message| async move {
            let mut m = Metrics::default();
            let ok = self.sqs_message(&message, deadline, &mut m).await;
            (message.message_id, ok, m)
        })
        .await;
        let mut response = BatchResponse::default();
        for (message_id, ok, m) in results {
            add(metrics, &m);
            if !ok {
                response.fail(message_id);
            }
        }
        response
    }

    /// Processes one job; false when it must be delivered again.
    async fn sqs_message(
        &self,
        message: &SqsMessage,
        deadline: Deadline,
        metrics: &mut Metrics,
    ) -> bool {
        let job = match self.parse_job(message.body.as_deref().unwrap_or_default()) {
            Ok(job) => job,
            Err(why) => {
                // Retried until the queue parks it in the dead-letter queue.
                tracing::error!(message_id = %message.message_id, why, "malformed cleanup job");
                return false;
            }
        };
        match job {
            Job::Images(ids) => {
                let outcome = self
                    .deleter
                    .delete(
                        &ids,
                        Authority::System(Trigger::Cleanup),
                        &RequestId::new(&message.message_id),
                        deadline,
                    )
                    .await
                    .expect("system authority is never denied");
                metrics.images_deleted += outcome.deleted.len() as u64;
                metrics.objects_deleted += outcome.objects_deleted as u64;
                metrics.unprocessed_retries += outcome.retries;
                metrics.s3_key_errors += outcome.object_errors;
                tracing::info!(
                    message_id = %message.message_id,
                    requested = ids.len(),
                    deleted = outcome.deleted.len(),
                    missing = outcome.missing.len(),
                    failed = outcome.failed.len(),
                    "cleanup job"
                );
                if let Some(err) = &outcome.error {
                    log_undone(&message.message_id, &outcome.failed, err);
                }
                outcome.failed.is_empty()
            }
            Job::Album(album) => {
                let request_id = RequestId::new(&message.message_id);
                let outcome = self
                    .deleter
                    .delete_album(
                        &album,
                        self.page_size,
                        self.prefetch,
                        &request_id,
                        deadline,
                        self.margin,
                    )
                    .await;
                self.finish_album(&message.message_id, &album, outcome, metrics)
                    .await
            }
        }
    }

    fn parse_job(&self, body: &str) -> Result<Job, &'static str> {
        let job: JobBody =
            serde_json::from_str(body).map_err(|_| "body is not a JSON job object")?;
        match (job.image_ids, job.album_id) {
            (Some(ids), None) => ImageIds::parse(ids.iter().map(String::as_str), self.max_ids)
                .map(Job::Images)
                .map_err(|_| "image_ids holds a malformed id or too many ids"),
            (None, Some(album)) => AlbumId::parse(&album)
                .map(Job::Album)
                .map_err(|_| "album_id is not a valid album id"),
            _ => Err("a job names exactly one of image_ids and album_id"),
        }
    }

    /// Logs an album run, hands the rest on when time ran short; true when the work
    /// is done or safely handed on.
    async fn finish_album(
        &self,
        source_id: &str,
        album: &AlbumId,
        outcome: AlbumOutcome,
        metrics: &mut Metrics,
    ) -> bool {
        metrics.images_deleted += outcome.deleted as u64;
        metrics.objects_deleted += outcome.objects_deleted as u64;
        metrics.unprocessed_retries += outcome.retries;
        metrics.s3_key_errors += outcome.object_errors;
        tracing::info!(
            source_id,
            album = album.as_str(),
            deleted = outcome.deleted,
            failed = outcome.failed.len(),
            progress = ?outcome.progress,
            "album cleanup"
        );
        if let Some(err) = &outcome.error {
            log_undone(source_id, &outcome.failed, err);
        }
        if !outcome.failed.is_empty() {
            return false;
        }
        match outcome.progress {
            AlbumProgress::Done => true,
            AlbumProgress::Stopped => false,
            AlbumProgress::OutOfTime => match self.handoff.continue_album(album).await {
                Ok(()) => {
                    tracing::info!(source_id, album = album.as_str(), "album cleanup handed on");
                    true
                }
                Err(err) => {
                    tracing::error!(source_id, error = %err, "album hand-off failed");
                    false
                }
            },
        }
    }

    async fn album_deleted(
        &self,
        event: BridgeEvent,
        deadline: Deadline,
        metrics: &mut Metrics,
    ) -> Result<(), CleanupError> {
        let album = event
            .detail
            .get("album_id")
            .and_then(Value::as_str)
            .filter(|_| event.detail_type == ALBUM_DELETED)
            .and_then(|a| AlbumId::parse(a).ok())
            .ok_or_else(|| CleanupError::BadAlbumEvent {
                id: event.id.clone(),
            })?;
        let request_id = RequestId::new(&event.id);
        let outcome = self
            .deleter
            .delete_album(
                &album,
                self.page_size,
                self.prefetch,
                &request_id,
                deadline,
                self.margin,
            )
            .await;
        let failed = outcome.failed.len();
        if self.finish_album(&event.id, &album, outcome, metrics).await {
            Ok(())
        } else {
            Err(CleanupError::AlbumIncomplete {
                id: event.id,
                failed,
            })
        }
    }

    /// Deletes the objects of removed records (with a trash: adopts each record into
    /// it and hides its objects), in stream order; on the first failure reports that
    /// record, so Lambda retries from it (and parks it after its retries).
    async fn stream(
        &self,
        event: StreamEvent,
        deadline: Deadline,
        metrics: &mut Metrics,
    ) -> BatchResponse {
        let first_table = event.records.first().and_then(StreamRecord::table);
        if first_table.is_some() && first_table == self.trash_table.as_deref() {
            return self.expiries(event, deadline, metrics).await;
        }
        let mut response = BatchResponse::default();
        for record in event.records {
            if record.event_name != "REMOVE" {
                continue;
            }
            let old = record.dynamodb.old_image.as_ref();
            let readable = old.and_then(crate::store::dynamodb::record_from_stream);
            if self.deleter.trashes()
                && let Some(removed) = readable
            {
                let request_id = RequestId::new(&record.event_id);
                let adopted = self
                    .deleter
                    .adopt(vec![removed], &request_id, deadline)
                    .await;
                let error = match adopted {
                    Ok(result) => {
                        metrics.unprocessed_retries += result.retries;
                        result.error.filter(|_| !result.failed.is_empty())
                    }
                    Err(err) => Some(
                        crate::ports::StoreError::new(
                            crate::ports::StoreErrorKind::Failed,
                            "adopt",
                        )
                        .with_source(err.to_string()),
                    ),
                };
                if let Some(err) = error {
                    tracing::error!(
                        event_id = %record.event_id,
                        error = %err.chain(),
                        "a removed record is not in the trash yet; it will be retried"
                    );
                    response.fail(record.dynamodb.sequence_number);
                    break;
                }
                continue;
            }
            // Without a trash, or a record of no shape we know: its objects go.
            let keys = old_object_keys(old);
            let result = self.deleter.purge_objects(&keys, deadline).await;
            metrics.unprocessed_retries += result.retries;
            metrics.s3_key_errors += result.item_errors;
            metrics.objects_deleted += (keys.len() - result.failed.len()) as u64;
            if let Some(err) = &result.error {
                tracing::error!(
                    event_id = %record.event_id,
                    failed_objects = result.failed.len(),
                    error = %err,
                    "objects of a removed record remain; the record will be retried"
                );
                response.fail(record.dynamodb.sequence_number);
                break;
            }
        }
        response
    }
}

impl Cleanup {
    /// A batch of the trash table's stream: for each entry the TTL removed, its
    /// objects hidden unless the image is live (`Deleter::hide_expired`). Anything
    /// else in the batch (tombstones, our own writes) is no concern of this trigger.
    async fn expiries(
        &self,
        event: StreamEvent,
        deadline: Deadline,
        metrics: &mut Metrics,
    ) -> BatchResponse {
        let mut expired = Vec::new();
        let mut positions = HashMap::default();
        let mut unreadable = None;
        for (position, record) in event.records.iter().enumerate() {
            if record.event_name != "REMOVE" || !record.by_ttl() {
                continue;
            }
            let Some(old) = record.dynamodb.old_image.as_ref() else {
                continue;
            };
            match crate::store::dynamodb::trash::removed_entry(old) {
                // Each id once: BatchGetItem refuses a repeated key.
                Ok(Some(removed)) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        positions.entry(removed.id.clone())
                    {
                        slot.insert(position);
                        expired.push(removed);
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(event_id = %record.event_id, error = %err, "an expired trash entry not understood");
                    unreadable = Some(position);
                    break;
                }
            }
        }
        let result = self.deleter.hide_expired(expired, deadline).await;
        metrics.unprocessed_retries += result.retries;
        metrics.s3_key_errors += result.item_errors;
        if let Some(err) = &result.error {
            tracing::error!(
                failed = result.failed.len(),
                error = %err.chain(),
                "objects of expired trash entries may still be readable; retried"
            );
        }
        let failed = result
            .failed
            .iter()
            .filter_map(|id| positions.get(id).copied());
        event.retry_from(failed.chain(unreadable).min())
    }
}

/// The `object_keys` string set of a stream record's old image.
fn old_object_keys(image: Option<&serde_json::Map<String, Value>>) -> Vec<ObjectKey> {
    image
        .and_then(|i| i.get("object_keys"))
        .and_then(|v| v.get("SS"))
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .filter_map(ObjectKey::parse)
                .collect()
        })
        .unwrap_or_default()
}

fn add(total: &mut Metrics, part: &Metrics) {
    total.images_deleted += part.images_deleted;
    total.objects_deleted += part.objects_deleted;
    total.unprocessed_retries += part.unprocessed_retries;
    total.s3_key_errors += part.s3_key_errors;
}

fn log_undone(source_id: &str, failed: &[crate::domain::ImageId], err: &crate::ports::StoreError) {
    let ids: Vec<&str> = failed.iter().map(|id| id.as_str()).collect();
    tracing::error!(source_id, failed = ?ids, error = %err.chain(), "images left undone; their records remain");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::trash::{RequestId, Trigger};
    use crate::domain::{ImageId, ImageRecord};
    use crate::store::memory::{MemoryCatalog, MemoryHandOff, MemoryObjectStore};
    use serde_json::json;

    fn cleanup() -> (
        Cleanup,
        Arc<MemoryCatalog>,
        Arc<MemoryObjectStore>,
        Arc<MemoryHandOff>,
    ) {
        let catalog = Arc::new(MemoryCatalog::default());
        let objects = Arc::new(MemoryObjectStore::default());
        let handoff = Arc::new(MemoryHandOff::default());
        let deleter = Deleter::new(catalog.clone(), objects.clone());
        (
            Cleanup::new(deleter, handoff.clone(), 10, 2),
            catalog,
            objects,
            handoff,
        )
    }

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    fn removal(seq: &str, keys: &[&str]) -> Value {
        json!({
            "eventID": format!("e{seq}"), "eventName": "REMOVE", "eventSource": "aws:dynamodb",
            "dynamodb": {"SequenceNumber": seq, "OldImage": {"object_keys": {"SS": keys}}}
        })
    }

    #[tokio::test]
    async fn a_stream_failure_reports_its_record_and_stops_there() {
        // GIVEN three removals, the second with an object that cannot be deleted
        let (cleanup, _, objects, _) = cleanup();
        objects.put_all(&["a".into(), "b".into(), "c".into()]);
        objects.fail_key("b");
        let event =
            json!({"Records": [removal("1", &["a"]), removal("2", &["b"]), removal("3", &["c"])]});
        // WHEN the batch is handled
        let answer = cleanup.handle(event, deadline()).await.unwrap();
        // THEN the second is reported, and the third is left for the retry from there
        assert_eq!(
            answer,
            json!({"batchItemFailures": [{"itemIdentifier": "2"}]})
        );
        assert_eq!(objects.keys(), ["b", "c"]);
    }

    #[tokio::test]
    async fn with_a_trash_a_record_removed_elsewhere_is_adopted_and_its_objects_hidden() {
        // GIVEN a trash, and two removed records: one the trash holds already (our
        // own move), one removed behind our back
        let catalog = Arc::new(MemoryCatalog::default());
        let objects = Arc::new(MemoryObjectStore::versioned());
        let days = crate::domain::trash::TrashDays::parse("7")
            .unwrap()
            .unwrap();
        let deleter = Deleter::new(catalog.clone(), objects.clone()).with_trash(
            catalog.clone(),
            objects.clone(),
            days,
        );
        let cleanup = Cleanup::new(deleter.clone(), Arc::new(MemoryHandOff::default()), 10, 2);
        let (ours, theirs) = (
            "7dca41d5-d76a-4ebb-9e00-dd13c13fc238",
            "dcd964c3-f54e-413c-ab2e-41c8608f5d16",
        );
        objects.put_all(&[format!("a/{theirs}")]); // its record is already gone
        objects.put_all(&[format!("a/{ours}")]);
        catalog.put(ImageRecord {
            id: ImageId::parse(ours).unwrap(),
            album_id: crate::domain::AlbumId::parse("a").unwrap(),
            object_keys: vec![ObjectKey::parse(&format!("a/{ours}")).unwrap()],
            rest: Default::default(),
        });
        let moved = deleter
            .delete(
                &ImageIds::parse([ours], 10).unwrap(),
                Authority::System(Trigger::Cleanup),
                &RequestId::new("job"),
                deadline(),
            )
            .await
            .unwrap();
        assert_eq!(moved.deleted.len(), 1);
        let calls = objects.calls();
        let image = |id: &str| {
            json!({"id": {"S": id}, "album_id": {"S": "a"}, "object_keys": {"SS": [format!("a/{id}")]},
                   "title": {"S": "kept"}, "size": {"N": "12"}, "tags": {"L": [{"S": "x"}, {"NULL": true}]}})
        };
        let records: Vec<Value> = [ours, theirs]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({
                    "eventID": format!("e{i}"), "eventName": "REMOVE", "eventSource": "aws:dynamodb",
                    "dynamodb": {"SequenceNumber": i.to_string(), "OldImage": image(id)}
                })
            })
            .collect();
        let event = json!({ "Records": records });
        // WHEN the stream hands both on
        let answer = cleanup.handle(event, deadline()).await.unwrap();
        // THEN nothing fails; ours keeps its entry, theirs gets one by the stream
        assert_eq!(answer, json!({"batchItemFailures": []}));
        let entry = |id: &str| catalog.entry(&ImageId::parse(id).unwrap()).unwrap();
        assert_eq!(entry(ours).deleted_by.to_string(), "system:cleanup");
        assert_eq!(entry(theirs).deleted_by.to_string(), "system:stream");
        assert_eq!(entry(theirs).request_id.as_str(), "e1");
        // AND theirs is hidden but restorable; ours cost no object call
        assert!(!objects.contains(&format!("a/{theirs}")));
        assert!(objects.restorable(&format!("a/{theirs}")));
        let (reads, adoption, hiding) = (2, 1, 1);
        assert_eq!(
            objects.calls(),
            calls + hiding,
            "{reads} reads and {adoption} put are the catalog's"
        );
    }

    #[tokio::test]
    async fn an_album_job_out_of_time_is_handed_on_and_succeeds() {
        let (cleanup, catalog, _, handoff) = cleanup();
        catalog.put(ImageRecord {
            id: ImageId::parse("7dca41d5-d76a-4ebb-9e00-dd13c13fc238").unwrap(),
            album_id: AlbumId::parse("a").unwrap(),
            object_keys: vec![],
            rest: Default::default(),
        });
        let cleanup = cleanup.with_margin(Duration::from_secs(60));
        let event = json!({"Records": [{"messageId": "m1", "body": "{\"album_id\": \"a\"}", "eventSource": "aws:sqs"}]});
        let answer = cleanup.handle(event, deadline()).await.unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
        assert_eq!(handoff.albums(), [AlbumId::parse("a").unwrap()]);
        assert_eq!(catalog.ids().len(), 1);
    }

    #[tokio::test]
    async fn malformed_jobs_are_failed_one_by_one() {
        let (cleanup, catalog, _, _) = cleanup();
        let bodies = [
            "",
            "[]",
            r#"{"image_ids": ["nope"]}"#,
            r#"{"image_ids": [], "album_id": "a"}"#,
            r#"{"album_id": ""}"#,
            r#"{"images": []}"#,
        ];
        let records: Vec<Value> = bodies
            .iter()
            .enumerate()
            .map(
                |(i, b)| json!({"messageId": format!("m{i}"), "body": b, "eventSource": "aws:sqs"}),
            )
            .collect();
        let answer = cleanup
            .handle(json!({"Records": records}), deadline())
            .await
            .unwrap();
        assert_eq!(
            answer["batchItemFailures"].as_array().unwrap().len(),
            bodies.len()
        );
        assert_eq!(catalog.calls(), 0);
    }

    #[tokio::test]
    async fn unknown_events_are_errors() {
        let (cleanup, _, _, _) = cleanup();
        assert!(
            cleanup
                .handle(json!({"hello": 1}), deadline())
                .await
                .is_err()
        );
        let other = json!({"id": "x", "detail-type": "AlbumRenamed", "detail": {"album_id": "a"}});
        assert!(cleanup.handle(other, deadline()).await.is_err());
    }
}
