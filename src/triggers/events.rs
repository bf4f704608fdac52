//! The event shapes the cleanup and audit triggers receive and answer, as Lambda
//! sends them.
//! Only the fields this service reads are declared.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An SQS batch.
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SqsMessage>,
}

#[derive(Debug, Deserialize)]
pub struct SqsMessage {
    #[serde(rename = "messageId")]
    pub message_id: String,
    #[serde(default)]
    pub body: Option<String>,
}

/// A DynamoDB Streams batch.
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records")]
    pub records: Vec<StreamRecord>,
}

impl StreamEvent {
    /// The answer that has Lambda deliver the batch again from the record at
    /// `position` (a stream is retried in order from its first failed record), or
    /// none failed.
    pub fn retry_from(&self, position: Option<usize>) -> BatchResponse {
        let mut response = BatchResponse::default();
        if let Some(record) = position.and_then(|p| self.records.get(p)) {
            response.fail(record.dynamodb.sequence_number.clone());
        }
        response
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventID", default)]
    pub event_id: String,
    #[serde(rename = "eventName")]
    pub event_name: String,
    pub dynamodb: StreamChange,
    /// Set on a removal by DynamoDB's TTL (`{"type": "Service", "principalId":
    /// "dynamodb.amazonaws.com"}`).
    #[serde(rename = "userIdentity", default)]
    pub user_identity: Option<UserIdentity>,
    /// `arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`.
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: String,
}

#[derive(Debug, Deserialize)]
pub struct UserIdentity {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(rename = "principalId", default)]
    pub principal_id: String,
}

impl StreamRecord {
    /// The name of the table whose stream this record comes from.
    pub fn table(&self) -> Option<&str> {
        let (_, rest) = self.event_source_arn.split_once(":table/")?;
        rest.split_once("/stream/").map(|(table, _)| table)
    }

    /// Whether DynamoDB's TTL made this change.
    pub fn by_ttl(&self) -> bool {
        self.user_identity
            .as_ref()
            .is_some_and(|u| u.kind == "Service" && u.principal_id == "dynamodb.amazonaws.com")
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamChange {
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
    /// The record as it was, in DynamoDB JSON (`{"object_keys": {"SS": [...]}}`).
    #[serde(rename = "OldImage", default)]
    pub old_image: Option<Map<String, Value>>,
    #[serde(rename = "NewImage", default)]
    pub new_image: Option<Map<String, Value>>,
    /// When the change was made, in seconds since the epoch (to the second).
    #[serde(rename = "ApproximateCreationDateTime", default)]
    pub created: Option<f64>,
}

/// An EventBridge event.
#[derive(Debug, Deserialize)]
pub struct BridgeEvent {
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    #[serde(default)]
    pub detail: Value,
}

/// The answer of a batch trigger: the items to deliver again.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl BatchResponse {
    pub fn fail(&mut self, id: impl Into<String>) {
        self.batch_item_failures.push(ItemFailure {
            item_identifier: id.into(),
        });
    }
}

/// Which trigger sent an event, told apart by its shape.
#[derive(Debug)]
pub enum CleanupEvent {
    Sqs(SqsEvent),
    Stream(StreamEvent),
    Bridge(BridgeEvent),
}

impl CleanupEvent {
    pub fn parse(event: Value) -> Result<Self, serde_json::Error> {
        let source = event
            .get("Records")
            .and_then(|r| r.get(0))
            .and_then(|r| r.get("eventSource"))
            .and_then(Value::as_str);
        if event.get("detail-type").is_some() {
            serde_json::from_value(event).map(Self::Bridge)
        } else if source == Some("aws:dynamodb") {
            serde_json::from_value(event).map(Self::Stream)
        } else {
            serde_json::from_value(event).map(Self::Sqs)
        }
    }
}
