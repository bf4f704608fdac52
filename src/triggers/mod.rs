//! Event-driven cleanup on the same deletion core as the HTTP endpoint:
//! SQS deletion jobs, EventBridge `AlbumDeleted` events and DynamoDB Streams `REMOVE`
//! records. One binary serves all three, telling them apart by the event's shape.
//!
//! These triggers act with system authority: the IAM policy on the queue, the event
//! bus and the stream is the authorization.

pub mod events;

use std::sync::Arc;
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
use events::{BatchResponse, BridgeEvent, CleanupEvent, SqsEvent, SqsMessage, StreamEvent};

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
        }
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

    /// Deletes the objects of removed records, in stream order; on the first failure
    /// reports that record, so Lambda retries from it (and parks it after its retries).
    async fn stream(
        &self,
        event: StreamEvent,
        deadline: Deadline,
        metrics: &mut Metrics,
    ) -> BatchResponse {
        let mut response = BatchResponse::default();
        for record in event.records {
            if record.event_name != "REMOVE" {
                continue;
            }
            let keys = old_object_keys(record.dynamodb.old_image.as_ref());
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
