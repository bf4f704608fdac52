//! The catalog on DynamoDB: `BatchGetItem` to read, `BatchWriteItem` to delete, both
//! chunked to the service's limits, run concurrently and retried for unprocessed items.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, KeysAndAttributes, WriteRequest};

use super::{before_deadline, chunks, classify, deadline_passed};
use crate::domain::{AlbumId, ImageId, ImageRecord, ObjectKey};
use crate::ports::{Catalog, Lookup, Partial, StoreError, StoreErrorKind};
use crate::retry::{Backoff, Deadline, for_each_bounded};

/// DynamoDB caps `BatchGetItem` at 100 keys per call.
pub const MAX_GET_BATCH: usize = 100;
/// DynamoDB caps `BatchWriteItem` at 25 requests per call.
pub const MAX_WRITE_BATCH: usize = 25;

/// Attribute names of the table's schema (see the README).
pub const ATTR_ID: &str = "id";
pub const ATTR_ALBUM_ID: &str = "album_id";
pub const ATTR_OBJECT_KEYS: &str = "object_keys";

type Item = HashMap<String, AttributeValue>;

/// Image records in one DynamoDB table keyed by `id`.
pub struct DynamoCatalog {
    client: Client,
    table: String,
    concurrency: usize,
}

impl DynamoCatalog {
    /// `concurrency` bounds the calls in flight for one batch operation.
    pub fn new(client: Client, table: impl Into<String>, concurrency: usize) -> Self {
        Self {
            client,
            table: table.into(),
            concurrency,
        }
    }

    fn key(id: &ImageId) -> Item {
        HashMap::from([(ATTR_ID.to_owned(), AttributeValue::S(id.to_string()))])
    }

    fn id_of(key: &Item) -> Option<ImageId> {
        key.get(ATTR_ID)?
            .as_s()
            .ok()
            .and_then(|s| ImageId::parse(s).ok())
    }

    /// Reads one chunk, retrying unprocessed keys until done or out of time.
    async fn get_chunk(&self, ids: Vec<ImageId>, deadline: Deadline) -> Lookup {
        const OP: &str = "DynamoDB BatchGetItem";
        let mut lookup = Lookup::default();
        let mut pending: Vec<Item> = ids.iter().map(Self::key).collect();
        let mut backoff = Backoff::default();
        loop {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .projection_expression("#id, #album, #keys")
                .expression_attribute_names("#id", ATTR_ID)
                .expression_attribute_names("#album", ATTR_ALBUM_ID)
                .expression_attribute_names("#keys", ATTR_OBJECT_KEYS)
                .build()
                .expect("keys are set");
            let sent = self
                .client
                .batch_get_item()
                .request_items(&self.table, request.clone())
                .send();
            let output = match before_deadline(deadline, OP, sent).await {
                Ok(Ok(output)) => output,
                Ok(Err(err)) => {
                    lookup
                        .unread
                        .extend(request.keys().iter().filter_map(Self::id_of));
                    lookup.error = StoreError::worst(lookup.error, Some(classify(OP, err)));
                    return lookup;
                }
                Err(err) => {
                    lookup
                        .unread
                        .extend(request.keys().iter().filter_map(Self::id_of));
                    lookup.error = StoreError::worst(lookup.error, Some(err));
                    return lookup;
                }
            };
            for item in output
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                match parse_record(item) {
                    Ok(record) => lookup.found.push(record),
                    Err(id) => {
                        // A record we cannot read is never deleted: its fate stays unknown.
                        lookup.unread.extend(id);
                        let err = StoreError::new(StoreErrorKind::Failed, OP)
                            .with_source("record without a valid id, album_id or object_keys");
                        lookup.error = StoreError::worst(lookup.error, Some(err));
                    }
                }
            }
            pending = output
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            if pending.is_empty() {
                return lookup;
            }
            tracing::debug!(unprocessed = pending.len(), "retrying unprocessed keys");
            if !backoff.wait(deadline).await {
                lookup.unread.extend(pending.iter().filter_map(Self::id_of));
                lookup.error = StoreError::worst(lookup.error, Some(deadline_passed(OP)));
                return lookup;
            }
        }
    }

    /// Deletes one chunk, retrying unprocessed items until done or out of time.
    async fn delete_chunk(&self, ids: Vec<ImageId>, deadline: Deadline) -> Partial<ImageId> {
        const OP: &str = "DynamoDB BatchWriteItem";
        let mut pending: Vec<WriteRequest> = ids
            .iter()
            .map(|id| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(Self::key(id)))
                    .build()
                    .expect("key is set");
                WriteRequest::builder().delete_request(delete).build()
            })
            .collect();
        let mut backoff = Backoff::default();
        let ids_of = |requests: &[WriteRequest]| -> Vec<ImageId> {
            requests
                .iter()
                .filter_map(|r| r.delete_request().and_then(|d| Self::id_of(d.key())))
                .collect()
        };
        loop {
            let sent = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending.clone())
                .send();
            let error = match before_deadline(deadline, OP, sent).await {
                Ok(Ok(output)) => {
                    pending = output
                        .unprocessed_items()
                        .and_then(|u| u.get(&self.table))
                        .cloned()
                        .unwrap_or_default();
                    if pending.is_empty() {
                        return Partial::default();
                    }
                    tracing::debug!(unprocessed = pending.len(), "retrying unprocessed items");
                    if backoff.wait(deadline).await {
                        continue;
                    }
                    deadline_passed(OP)
                }
                Ok(Err(err)) => classify(OP, err),
                Err(err) => err,
            };
            return Partial {
                failed: ids_of(&pending),
                error: Some(error),
            };
        }
    }
}

/// Reads a record; on failure returns its id when that much is readable.
fn parse_record(item: &Item) -> Result<ImageRecord, Option<ImageId>> {
    let id = DynamoCatalog::id_of(item).ok_or(None)?;
    let album_id = item
        .get(ATTR_ALBUM_ID)
        .and_then(|v| v.as_s().ok())
        .and_then(|s| AlbumId::parse(s).ok())
        .ok_or_else(|| Some(id.clone()))?;
    let object_keys = match item.get(ATTR_OBJECT_KEYS) {
        None | Some(AttributeValue::Null(_)) => Vec::new(),
        Some(AttributeValue::Ss(keys)) => keys
            .iter()
            .map(|k| ObjectKey::parse(k))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Some(id.clone()))?,
        Some(_) => return Err(Some(id)),
    };
    Ok(ImageRecord {
        id,
        album_id,
        object_keys,
    })
}

#[async_trait]
impl Catalog for DynamoCatalog {
    async fn get(&self, ids: &[ImageId], deadline: Deadline) -> Lookup {
        let parts = for_each_bounded(chunks(ids, MAX_GET_BATCH), self.concurrency, |chunk| {
            self.get_chunk(chunk, deadline)
        })
        .await;
        parts.into_iter().fold(Lookup::default(), |mut all, part| {
            all.found.extend(part.found);
            all.unread.extend(part.unread);
            all.error = StoreError::worst(all.error, part.error);
            all
        })
    }

    async fn delete(&self, ids: &[ImageId], deadline: Deadline) -> Partial<ImageId> {
        let parts = for_each_bounded(chunks(ids, MAX_WRITE_BATCH), self.concurrency, |chunk| {
            self.delete_chunk(chunk, deadline)
        })
        .await;
        parts.into_iter().fold(Partial::default(), |mut all, part| {
            all.absorb(part);
            all
        })
    }
}
