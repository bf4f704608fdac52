//! The audit trigger: the trash table's stream into audit events on the project's bus
//! (`domain::audit`). Delivery is at least once: a batch that fails part way is
//! delivered again from its first record whose event was not published, so events
//! after that one may be published twice. Consumers deduplicate by
//! (`detail-type`, `request_id`, image id).

use std::sync::Arc;

use serde_json::Value;

use super::events::{BatchResponse, StreamEvent};
use crate::domain::audit::{AuditEvent, group};
use crate::domain::trash::UnixTime;
use crate::ports::AuditLog;
use crate::retry::Deadline;
use crate::store::dynamodb::trash::{StreamedChange, audit_change};

/// Why an invocation failed as a whole (Lambda retries it, then parks it).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("not a DynamoDB Streams batch: {0}")]
    UnknownEvent(serde_json::Error),
}

/// The audit trigger, built once at init.
pub struct Audit {
    log: Arc<dyn AuditLog>,
}

impl Audit {
    pub fn new(log: Arc<dyn AuditLog>) -> Self {
        Self { log }
    }

    /// Handles one stream batch; answers the record to deliver again from, if any.
    pub async fn handle(&self, event: Value, deadline: Deadline) -> Result<Value, AuditError> {
        let event: StreamEvent = serde_json::from_value(event).map_err(AuditError::UnknownEvent)?;
        let response = self.stream(event, deadline).await;
        Ok(serde_json::to_value(response).expect("serializable"))
    }

    async fn stream(&self, event: StreamEvent, deadline: Deadline) -> BatchResponse {
        let records = &event.records;
        let mut changes = Vec::new();
        // The first record that cannot be read: the batch stops there, and is
        // delivered again from it until Lambda parks it in the failure queue.
        let mut unreadable = None;
        for (position, record) in records.iter().enumerate() {
            let change = audit_change(StreamedChange {
                old: record.dynamodb.old_image.as_ref(),
                new: record.dynamodb.new_image.as_ref(),
                by_ttl: record.by_ttl(),
                event_id: &record.event_id,
                at: record
                    .dynamodb
                    .created
                    .map_or_else(UnixTime::now, |s| UnixTime(s as i64)),
            });
            match change {
                Ok(Some(change)) => changes.push((position, change)),
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(
                        sequence_number = %record.dynamodb.sequence_number,
                        error = %err,
                        "trash stream record not understood"
                    );
                    unreadable = Some(position);
                    break;
                }
            }
        }
        let (events, firsts): (Vec<AuditEvent>, Vec<usize>) = group(changes).into_iter().unzip();
        let published = if events.is_empty() {
            Default::default()
        } else {
            self.log.publish(&events, deadline).await
        };
        if let Some(err) = &published.error {
            tracing::error!(
                failed = published.failed.len(),
                error = %err.chain(),
                "audit events not published"
            );
        }
        let unpublished = published
            .failed
            .iter()
            .filter_map(|&i| firsts.get(i).copied());
        let retry_from = unpublished.chain(unreadable).min();
        tracing::info!(
            records = records.len(),
            events = events.len(),
            unpublished = published.failed.len(),
            "audit batch"
        );
        event.retry_from(retry_from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::Action;
    use crate::store::memory::MemoryAuditLog;
    use std::time::Duration;

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    /// A stream record of the trash table with these images.
    fn record(seq: u32, old: Option<Value>, new: Option<Value>) -> Value {
        let mut change = serde_json::json!({"SequenceNumber": seq.to_string(),
            "ApproximateCreationDateTime": 1_700_000_000.0});
        if let Some(old) = old {
            change["OldImage"] = old;
        }
        if let Some(new) = new {
            change["NewImage"] = new;
        }
        serde_json::json!({"eventID": format!("ev{seq}"), "eventName": "MODIFY",
            "eventSource": "aws:dynamodb", "dynamodb": change})
    }

    fn entry(id: u32, album: &str, request: &str) -> Value {
        serde_json::json!({
            "id": {"S": format!("00000000-0000-4000-8000-{id:012}")},
            "album_id": {"S": album},
            "deleted_by": {"S": "u"}, "deleted_by_kind": {"S": "user"},
            "deleted_at": {"N": "100"}, "purge_at": {"N": "200"},
            "request_id": {"S": request},
        })
    }

    fn restored(id: u32, album: &str, request: &str) -> Value {
        serde_json::json!({
            "id": {"S": format!("00000000-0000-4000-8000-{id:012}")},
            "album_id": {"S": album},
            "outcome": {"S": "restored"},
            "closed_by": {"S": "v"}, "closed_by_kind": {"S": "user"},
            "closed_at": {"N": "150"}, "purge_at": {"N": "300"},
            "request_id": {"S": request},
        })
    }

    fn batch(records: Vec<Value>) -> Value {
        serde_json::json!({ "Records": records })
    }

    fn failures(answer: &Value) -> Vec<&str> {
        answer["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_batch_becomes_one_event_per_request_album_and_action() {
        // GIVEN a batch: a delete of two images of "a" and one of "b", then a restore
        let log = Arc::new(MemoryAuditLog::default());
        let audit = Audit::new(log.clone());
        let event = batch(vec![
            record(1, None, Some(entry(1, "a", "r1"))),
            record(2, None, Some(entry(2, "b", "r1"))),
            record(3, None, Some(entry(3, "a", "r1"))),
            record(4, Some(entry(1, "a", "r1")), Some(restored(1, "a", "r2"))),
        ]);
        // WHEN it is handled
        let answer = audit.handle(event, deadline()).await.unwrap();
        // THEN three events are published and nothing is delivered again
        assert!(failures(&answer).is_empty());
        let published = log.published();
        let shown: Vec<(Action, &str, usize, &str)> = published
            .iter()
            .map(|e| {
                let by = if e.action == Action::Restored {
                    "v"
                } else {
                    "u"
                };
                assert_eq!(e.by.to_string(), by);
                (
                    e.action,
                    e.album_id.as_str(),
                    e.ids.len(),
                    e.request_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (Action::Deleted, "a", 2, "r1"),
                (Action::Deleted, "b", 1, "r1"),
                (Action::Restored, "a", 1, "r2"),
            ]
        );
    }

    #[tokio::test]
    async fn an_unpublished_event_is_delivered_again_from_its_first_record() {
        // GIVEN a bus that refuses album "b"'s events
        let log = Arc::new(MemoryAuditLog::default());
        log.fail_album("b");
        let audit = Audit::new(log.clone());
        let event = batch(vec![
            record(1, None, Some(entry(1, "a", "r1"))),
            record(2, None, Some(entry(2, "b", "r1"))),
            record(3, None, Some(entry(3, "c", "r1"))),
        ]);
        // WHEN the batch is handled
        let answer = audit.handle(event, deadline()).await.unwrap();
        // THEN the batch is delivered again from "b"'s record; "a" and "c" went out
        assert_eq!(failures(&answer), ["2"]);
        assert_eq!(log.published().len(), 2);
    }

    #[tokio::test]
    async fn an_unreadable_record_stops_the_batch_there() {
        // GIVEN a batch whose second record is not a trash item
        let log = Arc::new(MemoryAuditLog::default());
        let audit = Audit::new(log.clone());
        let event = batch(vec![
            record(1, None, Some(entry(1, "a", "r1"))),
            record(2, None, Some(serde_json::json!({"id": {"S": "x"}}))),
            record(3, None, Some(entry(3, "a", "r1"))),
        ]);
        // WHEN it is handled
        let answer = audit.handle(event, deadline()).await.unwrap();
        // THEN what came before is published and the rest is delivered again
        assert_eq!(failures(&answer), ["2"]);
        let published = log.published();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].ids.len(), 1);
    }

    #[tokio::test]
    async fn an_event_of_another_shape_is_an_error() {
        let audit = Audit::new(Arc::new(MemoryAuditLog::default()));
        let result = audit
            .handle(serde_json::json!({"detail": 1}), deadline())
            .await;
        assert!(matches!(result, Err(AuditError::UnknownEvent(_))));
    }
}
