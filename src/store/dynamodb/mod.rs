//! The catalog on DynamoDB: `BatchGetItem` to read, `BatchWriteItem` to delete, both
//! chunked to the service's limits, run concurrently and retried for unprocessed items.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest,
};

use super::{in_chunks, send_before};
use crate::domain::{AlbumId, ImageId, ImageRecord, ObjectKey, Opaque};
use crate::ports::{AlbumPage, Catalog, Lookup, Partial, StoreError};
use crate::retry::Deadline;

mod batch;
pub mod trash;

/// DynamoDB caps `BatchGetItem` at 100 keys per call.
pub const MAX_GET_BATCH: usize = 100;
/// DynamoDB caps `BatchWriteItem` at 25 requests per call.
pub const MAX_WRITE_BATCH: usize = 25;

/// Attribute names of the table's schema (see the README).
pub const ATTR_ID: &str = "id";
pub const ATTR_ALBUM_ID: &str = "album_id";
pub const ATTR_OBJECT_KEYS: &str = "object_keys";

type Item = HashMap<String, AttributeValue>;

/// The global secondary index on `album_id` (keys only) that album cleanup pages through.
pub const DEFAULT_ALBUM_INDEX: &str = "album_id-index";

/// Image records in one DynamoDB table keyed by `id`.
pub struct DynamoCatalog {
    client: Client,
    table: Arc<str>,
    album_index: String,
    concurrency: usize,
    whole_records: bool,
}

impl DynamoCatalog {
    /// `concurrency` bounds the calls in flight for one batch operation.
    pub fn new(client: Client, table: impl Into<String>, concurrency: usize) -> Self {
        Self {
            client,
            table: Arc::from(table.into()),
            album_index: DEFAULT_ALBUM_INDEX.to_owned(),
            concurrency,
            whole_records: false,
        }
    }

    pub fn with_album_index(mut self, index: impl Into<String>) -> Self {
        self.album_index = index.into();
        self
    }

    /// Reads whole records (for the trash, which keeps them whole), not only the
    /// fields the domain reads.
    pub fn with_whole_records(mut self) -> Self {
        self.whole_records = true;
        self
    }

    async fn get_chunk(&self, ids: Vec<ImageId>, deadline: Deadline) -> Lookup {
        if self.whole_records {
            batch::get(
                &self.client,
                &self.table,
                ids,
                None,
                parse_whole_record,
                deadline,
            )
            .await
        } else {
            let fields = Some(&[ATTR_ID, ATTR_ALBUM_ID, ATTR_OBJECT_KEYS][..]);
            batch::get(
                &self.client,
                &self.table,
                ids,
                fields,
                parse_record,
                deadline,
            )
            .await
        }
    }

    async fn delete_chunk(&self, ids: Vec<ImageId>, deadline: Deadline) -> Partial<ImageId> {
        let writes = ids
            .iter()
            .map(|id| (&*self.table, delete_request(key(id))))
            .collect();
        batch::write(&self.client, writes, deadline).await
    }
}

/// The key of an item keyed by image id.
fn key(id: &ImageId) -> Item {
    HashMap::from([batch::id_attr(id)])
}

fn id_of(key: &Item) -> Option<ImageId> {
    batch::text(key, ATTR_ID).and_then(|s| ImageId::parse(s).ok())
}

/// A `DeleteRequest` of the item under `key`.
fn delete_request(key: Item) -> WriteRequest {
    let delete = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .expect("key is set");
    WriteRequest::builder().delete_request(delete).build()
}

/// A `PutRequest` of `item`.
fn put_request(item: Item) -> WriteRequest {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .expect("item is set");
    WriteRequest::builder().put_request(put).build()
}

/// The record of a whole item (e.g. a stream's old image), or `None` when the item
/// is not a record this service can read.
pub fn whole_record(item: &Item) -> Option<ImageRecord> {
    parse_whole_record(item).ok()
}

/// The record of a stream's old image (DynamoDB JSON: `{"id": {"S": "..."}, ...}`),
/// kept whole; `None` when the image is not a record this service can read.
pub fn record_from_stream(
    image: &serde_json::Map<String, serde_json::Value>,
) -> Option<ImageRecord> {
    whole_record(&item_from_stream(image)?)
}

/// A stream image (DynamoDB JSON) as the SDK holds an item; `None` if any attribute
/// is not DynamoDB JSON.
pub(crate) fn item_from_stream(image: &serde_json::Map<String, serde_json::Value>) -> Option<Item> {
    image
        .iter()
        .map(|(name, value)| Some((name.clone(), attribute_from_json(value)?)))
        .collect()
}

/// One attribute value in DynamoDB JSON, as the SDK holds it.
fn attribute_from_json(value: &serde_json::Value) -> Option<AttributeValue> {
    use serde_json::Value;
    let object = value.as_object().filter(|o| o.len() == 1)?;
    let (kind, inner) = object.iter().next()?;
    let text = || inner.as_str().map(str::to_owned);
    let texts = || -> Option<Vec<String>> {
        inner
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let blob = |v: &Value| {
        let bytes = aws_smithy_types::base64::decode(v.as_str()?).ok()?;
        Some(aws_smithy_types::Blob::new(bytes))
    };
    Some(match kind.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "B" => AttributeValue::B(blob(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(inner.as_bool()?),
        "SS" => AttributeValue::Ss(texts()?),
        "NS" => AttributeValue::Ns(texts()?),
        "BS" => AttributeValue::Bs(inner.as_array()?.iter().map(blob).collect::<Option<_>>()?),
        "L" => AttributeValue::L(
            inner
                .as_array()?
                .iter()
                .map(attribute_from_json)
                .collect::<Option<_>>()?,
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), attribute_from_json(v)?)))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// A whole record: the fields the domain reads, and the item itself kept opaque.
fn parse_whole_record(item: &Item) -> Parsed {
    let mut record = parse_record(item)?;
    record.rest = Opaque::new(item.clone());
    Ok(record)
}

/// The item of a record: the one it was read from, or (for a record read without
/// it) one built of the fields the domain knows.
fn record_item(record: &ImageRecord) -> Item {
    if let Some(item) = record.rest.get::<Item>() {
        return item.clone();
    }
    let mut item = key(&record.id);
    item.insert(
        ATTR_ALBUM_ID.to_owned(),
        AttributeValue::S(record.album_id.as_str().to_owned()),
    );
    if !record.object_keys.is_empty() {
        let keys = record.object_keys.iter().map(|k| k.as_str().to_owned());
        item.insert(
            ATTR_OBJECT_KEYS.to_owned(),
            AttributeValue::Ss(keys.collect()),
        );
    }
    item
}

/// A record read, or the id of one that cannot be (when that much is readable).
type Parsed = batch::Parsed<ImageRecord>;

/// Reads a record from the SDK's output: `id` and `album_id` strings that parse, and
/// `object_keys` absent, `NULL` or a string set of keys that parse.
fn parse_record(item: &Item) -> Parsed {
    let text = |name: &str| batch::text(item, name);
    let id = text(ATTR_ID)
        .and_then(|s| ImageId::parse(s).ok())
        .ok_or(None)?;
    let Some(album_id) = text(ATTR_ALBUM_ID).and_then(|s| AlbumId::parse(s).ok()) else {
        return Err(Some(id));
    };
    let object_keys = match item.get(ATTR_OBJECT_KEYS) {
        None | Some(AttributeValue::Null(_)) => Vec::new(),
        Some(AttributeValue::Ss(keys)) => {
            match keys.iter().map(|k| ObjectKey::parse(k)).collect() {
                Some(keys) => keys,
                None => return Err(Some(id)),
            }
        }
        Some(_) => return Err(Some(id)),
    };
    Ok(ImageRecord {
        id,
        album_id,
        object_keys,
        rest: Default::default(),
    })
}

#[async_trait]
impl Catalog for DynamoCatalog {
    async fn album_page(
        &self,
        album: &AlbumId,
        after: Option<&ImageId>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<AlbumPage, StoreError> {
        const OP: &str = "DynamoDB Query";
        let start = after.map(|id| {
            let mut key = key(id);
            key.insert(
                ATTR_ALBUM_ID.to_owned(),
                AttributeValue::S(album.as_str().to_owned()),
            );
            key
        });
        let sent = self
            .client
            .query()
            .table_name(&*self.table)
            .index_name(&self.album_index)
            .key_condition_expression("#album = :album")
            .expression_attribute_names("#album", ATTR_ALBUM_ID)
            .expression_attribute_values(":album", AttributeValue::S(album.as_str().to_owned()))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send();
        let output = send_before(deadline, OP, sent).await?;
        Ok(AlbumPage {
            ids: output.items().iter().filter_map(id_of).collect(),
            next: output.last_evaluated_key().and_then(id_of),
        })
    }

    /// A consistent `BatchGetItem` of a key no image has (0.5 RCU; the role may
    /// already read), through this very client: its connection, TLS session and
    /// lazily built state are then ready for the first request.
    async fn warm_up(&self, deadline: Deadline) {
        const OP: &str = "DynamoDB BatchGetItem (warm-up)";
        let keys = KeysAndAttributes::builder()
            .keys(HashMap::from([(
                ATTR_ID.to_owned(),
                AttributeValue::S("warm-up".to_owned()),
            )]))
            .consistent_read(true)
            .projection_expression("#id")
            .expression_attribute_names("#id", ATTR_ID)
            .build();
        let Ok(keys) = keys else { return };
        let sent = self
            .client
            .batch_get_item()
            .request_items(&*self.table, keys)
            .send();
        match send_before(deadline, OP, sent).await {
            Ok(_) => tracing::debug!("warmed up the DynamoDB client"),
            Err(err) => tracing::info!(error = %err, "warm-up failed; the first request connects"),
        }
    }

    async fn get(&self, ids: &[ImageId], deadline: Deadline) -> Lookup {
        in_chunks(ids, MAX_GET_BATCH, self.concurrency, |chunk| {
            self.get_chunk(chunk, deadline)
        })
        .await
        .into_iter()
        .collect()
    }

    async fn delete(&self, ids: &[ImageId], deadline: Deadline) -> Partial<ImageId> {
        in_chunks(ids, MAX_WRITE_BATCH, self.concurrency, |chunk| {
            self.delete_chunk(chunk, deadline)
        })
        .await
        .into_iter()
        .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Fault injection with `aws-smithy-mocks`: the emulators never return unprocessed
    //! items or throttle, so these paths are exercised here.
    use super::*;
    use crate::domain::trash::{RequestId, Trigger};
    use crate::ports::StoreErrorKind;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemError, BatchGetItemOutput};
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const TABLE: &str = "images";

    fn ids(n: usize) -> Vec<ImageId> {
        (0..n)
            .map(|i| ImageId::parse(&format!("00000000-0000-4000-8000-{i:012}")).unwrap())
            .collect()
    }

    fn item(id: &ImageId) -> Item {
        HashMap::from([
            (ATTR_ID.into(), AttributeValue::S(id.to_string())),
            (ATTR_ALBUM_ID.into(), AttributeValue::S("album".into())),
            (
                ATTR_OBJECT_KEYS.into(),
                AttributeValue::Ss(vec![format!("k/{id}")]),
            ),
        ])
    }

    fn keys_of(
        input: &aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput,
    ) -> Vec<Item> {
        input.request_items().unwrap()[TABLE].keys().to_vec()
    }

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(10))
    }

    #[test]
    fn a_stream_image_is_read_whole_and_anything_else_is_not_a_record() {
        // GIVEN an old image in DynamoDB JSON with every kind of attribute
        let image = serde_json::json!({
            "id": {"S": "7dca41d5-d76a-4ebb-9e00-dd13c13fc238"}, "album_id": {"S": "a"},
            "object_keys": {"SS": ["a/1", "a/2"]}, "size": {"N": "12.5"}, "raw": {"B": "AAEC"},
            "ok": {"BOOL": true}, "gone": {"NULL": true}, "nums": {"NS": ["1", "2"]},
            "blobs": {"BS": ["AA=="]}, "meta": {"M": {"tags": {"L": [{"S": "x"}, {"N": "1"}]}}}
        });
        // WHEN it is read as a record
        let record = record_from_stream(image.as_object().unwrap()).unwrap();
        // THEN the domain's fields are read and the item is kept whole
        assert_eq!(record.object_keys.len(), 2);
        let item = record.rest.get::<Item>().unwrap();
        assert_eq!(item.len(), 10);
        assert_eq!(
            item["raw"],
            AttributeValue::B(aws_smithy_types::Blob::new(vec![0, 1, 2]))
        );
        let AttributeValue::M(meta) = &item["meta"] else {
            panic!("{:?}", item["meta"])
        };
        assert_eq!(
            meta["tags"],
            AttributeValue::L(vec![
                AttributeValue::S("x".into()),
                AttributeValue::N("1".into())
            ])
        );
        // AND an attribute of no known type, or no id, is not a record
        for bad in [
            serde_json::json!({"id": {"X": "1"}}),
            serde_json::json!({"id": {"S": "7dca41d5-d76a-4ebb-9e00-dd13c13fc238", "N": "1"}}),
            serde_json::json!({"album_id": {"S": "a"}}),
            serde_json::json!({"id": {"S": "7dca41d5-d76a-4ebb-9e00-dd13c13fc238"}, "album_id": {"S": "a"}, "raw": {"B": "!"}}),
        ] {
            assert!(
                record_from_stream(bad.as_object().unwrap()).is_none(),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn unprocessed_keys_are_retried_until_every_record_is_read() {
        // GIVEN DynamoDB answers the first read with half the keys unprocessed
        let wanted = ids(4);
        let (done, left) = (wanted[..2].to_vec(), wanted[2..].to_vec());
        let first = mock!(aws_sdk_dynamodb::Client::batch_get_item)
            .match_requests(|r| keys_of(r).len() == 4)
            .then_output(move || {
                let left_keys: Vec<Item> = left.iter().map(key).collect();
                BatchGetItemOutput::builder()
                    .responses(TABLE, done.iter().map(item).collect())
                    .unprocessed_keys(
                        TABLE,
                        KeysAndAttributes::builder()
                            .set_keys(Some(left_keys))
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        let retry = mock!(aws_sdk_dynamodb::Client::batch_get_item)
            .match_requests(|r| keys_of(r).len() == 2)
            .then_compute_output(|r| {
                let items = keys_of(r)
                    .iter()
                    .map(|k| item(&id_of(k).unwrap()))
                    .collect();
                BatchGetItemOutput::builder()
                    .responses(TABLE, items)
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&first, &retry]);
        let catalog = DynamoCatalog::new(client, TABLE, 4);
        // WHEN the four are read
        let lookup = catalog.get(&wanted, deadline()).await;
        // THEN all four are found after one retry
        assert_eq!(lookup.found.len(), 4);
        assert!(lookup.unread.is_empty() && lookup.error.is_none());
        assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
        assert_eq!(lookup.retries, 1);
    }

    #[tokio::test]
    async fn reads_are_chunked_to_100_keys_with_consistent_projected_reads() {
        let max = Arc::new(AtomicUsize::new(0));
        let seen = max.clone();
        let rule = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_compute_output(move |r| {
            let request = &r.request_items().unwrap()[TABLE];
            assert_eq!(request.consistent_read(), Some(true));
            assert!(request.projection_expression().is_some());
            seen.fetch_max(request.keys().len(), Ordering::SeqCst);
            BatchGetItemOutput::builder().build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let lookup = DynamoCatalog::new(client, TABLE, 4)
            .get(&ids(250), deadline())
            .await;
        assert!(lookup.found.is_empty() && lookup.unread.is_empty());
        assert_eq!(rule.num_calls(), 3);
        assert_eq!(max.load(Ordering::SeqCst), MAX_GET_BATCH);
    }

    #[tokio::test]
    async fn the_warm_up_reads_one_key_no_image_has_and_shrugs_off_failure() {
        // GIVEN a DynamoDB that answers, then one that throttles every read
        let rule = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_compute_output(|r| {
            let keys = keys_of(r);
            let request = &r.request_items().unwrap()[TABLE];
            // THEN the warm-up is one consistent read of a key no image id can be
            assert_eq!(request.consistent_read(), Some(true));
            assert_eq!(keys.len(), 1);
            let id = keys[0][ATTR_ID].as_s().unwrap();
            assert!(ImageId::parse(id).is_err(), "{id}");
            BatchGetItemOutput::builder().build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        DynamoCatalog::new(client, TABLE, 4)
            .warm_up(deadline())
            .await;
        assert_eq!(rule.num_calls(), 1);
        // WHEN it fails THEN it returns (before its deadline), and nothing else is sent
        let throttled = throttled_reads();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled]);
        DynamoCatalog::new(client, TABLE, 4)
            .warm_up(Deadline::after(Duration::from_millis(200)))
            .await;
        assert!(throttled.num_calls() >= 1);
    }

    /// A rule under which every `BatchGetItem` is throttled, as DynamoDB says it.
    pub(crate) fn throttled_reads() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_dynamodb::Client::batch_get_item).then_error(|| {
            BatchGetItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .meta(
                        ErrorMetadata::builder()
                            .code("ProvisionedThroughputExceededException")
                            .build(),
                    )
                    .build(),
            )
        })
    }

    #[tokio::test]
    async fn throttled_reads_leave_every_id_unread_and_say_so() {
        let rule = throttled_reads();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let lookup = DynamoCatalog::new(client, TABLE, 4)
            .get(&ids(3), deadline())
            .await;
        assert_eq!(lookup.unread.len(), 3);
        assert_eq!(lookup.error.unwrap().kind(), StoreErrorKind::Throttled);
    }

    #[tokio::test]
    async fn a_record_without_an_album_is_never_returned_as_found() {
        let wanted = ids(2);
        let items: Vec<Item> = vec![item(&wanted[0]), key(&wanted[1])];
        let rule = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(move || {
            BatchGetItemOutput::builder()
                .responses(TABLE, items.clone())
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let lookup = DynamoCatalog::new(client, TABLE, 4)
            .get(&wanted, deadline())
            .await;
        assert_eq!(lookup.found.len(), 1);
        assert_eq!(lookup.unread, vec![wanted[1].clone()]);
        assert_eq!(lookup.error.unwrap().kind(), StoreErrorKind::Failed);
    }

    fn requests_of(
        input: &aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput,
    ) -> Vec<WriteRequest> {
        input.request_items().unwrap()[TABLE].clone()
    }

    #[tokio::test]
    async fn unprocessed_items_are_retried_until_done_in_chunks_of_25() {
        // GIVEN DynamoDB leaves the first item of every first attempt unprocessed
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let rule =
            mock!(aws_sdk_dynamodb::Client::batch_write_item).then_compute_output(move |r| {
                counter.fetch_add(1, Ordering::SeqCst);
                let requests = requests_of(r);
                assert!(requests.len() <= MAX_WRITE_BATCH);
                if requests.len() > 1 {
                    BatchWriteItemOutput::builder()
                        .unprocessed_items(TABLE, requests[..1].to_vec())
                        .build()
                } else {
                    BatchWriteItemOutput::builder().build()
                }
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        // WHEN 60 records are deleted (3 chunks)
        let result = DynamoCatalog::new(client, TABLE, 4)
            .delete(&ids(60), deadline())
            .await;
        // THEN every item is done after one retry per chunk
        assert!(result.failed.is_empty() && result.error.is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        assert_eq!(result.retries, 3);
    }

    #[tokio::test]
    async fn items_still_unprocessed_at_the_deadline_are_reported_failed() {
        // GIVEN DynamoDB never processes the second item
        let wanted = ids(2);
        let stuck = wanted[1].clone();
        let rule =
            mock!(aws_sdk_dynamodb::Client::batch_write_item).then_compute_output(move |r| {
                let left: Vec<WriteRequest> = requests_of(r)
                    .into_iter()
                    .filter(|w| id_of(w.delete_request().unwrap().key()) == Some(stuck.clone()))
                    .collect();
                BatchWriteItemOutput::builder()
                    .unprocessed_items(TABLE, left)
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        // WHEN the two are deleted with 300 ms to go
        let result = DynamoCatalog::new(client, TABLE, 4)
            .delete(&wanted, Deadline::after(Duration::from_millis(300)))
            .await;
        // THEN only the stuck one is failed, as unavailable, after some retries
        assert_eq!(result.failed, vec![wanted[1].clone()]);
        assert_eq!(result.error.unwrap().kind(), StoreErrorKind::Unavailable);
        assert!(rule.num_calls() >= 2);
    }

    /// The two-id scenario of a failed read: A (album "a") is read, B (album "b") comes
    /// back unprocessed and every attempt to read it again answers 500. Returns the
    /// deleter over that catalog and an object store holding one object per image,
    /// and the `BatchWriteItem` rule (to count record deletes).
    fn unreadable_second_image() -> (
        crate::domain::Deleter,
        Arc<crate::store::memory::MemoryObjectStore>,
        aws_smithy_mocks::Rule,
        [ImageId; 2],
    ) {
        let [a, b] = [ids(2)[0].clone(), ids(2)[1].clone()];
        let record = |id: &ImageId, album: &str| {
            HashMap::from([
                (ATTR_ID.into(), AttributeValue::S(id.to_string())),
                (ATTR_ALBUM_ID.into(), AttributeValue::S(album.into())),
                (
                    ATTR_OBJECT_KEYS.into(),
                    AttributeValue::Ss(vec![format!("{album}/{id}")]),
                ),
            ])
        };
        let (found, unprocessed) = (record(&a, "a"), key(&b));
        let first = mock!(aws_sdk_dynamodb::Client::batch_get_item)
            .match_requests(|r| keys_of(r).len() == 2)
            .then_output(move || {
                BatchGetItemOutput::builder()
                    .responses(TABLE, vec![found.clone()])
                    .unprocessed_keys(
                        TABLE,
                        KeysAndAttributes::builder()
                            .keys(unprocessed.clone())
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        let retry = mock!(aws_sdk_dynamodb::Client::batch_get_item)
            .match_requests(|r| keys_of(r).len() == 1)
            .sequence()
            .http_status(500, None)
            .repeatedly()
            .build();
        let writes = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .then_output(|| BatchWriteItemOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&first, &retry, &writes]
        );
        let objects = Arc::new(crate::store::memory::MemoryObjectStore::default());
        objects.put_all(&[format!("a/{a}"), format!("b/{b}")]);
        let deleter = crate::domain::Deleter::new(
            Arc::new(DynamoCatalog::new(client, TABLE, 4)),
            objects.clone(),
        );
        (deleter, objects, writes, [a, b])
    }

    #[tokio::test]
    async fn a_token_request_whose_forbidden_image_cannot_be_read_deletes_nothing() {
        use crate::domain::{Authority, Claims, ImageIds};
        // GIVEN a token for album "a"; A (album "a") is read, B (album "b") cannot be
        let (deleter, objects, writes, [a, b]) = unreadable_second_image();
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "exp": 1, "user_id": "u", "abilities": {"a": {"Access": {"image_delete": true}}}
        }))
        .unwrap();
        let required = vec!["image_delete".to_owned()];
        let authority = Authority::Token {
            user_id: "u",
            abilities: &claims.abilities,
            required: &required,
        };
        // WHEN the token asks for both
        let outcome = deleter
            .delete(
                &ImageIds::from_ids(vec![a.clone(), b.clone()]),
                authority,
                &RequestId::new("test"),
                deadline(),
            )
            .await
            .unwrap();
        // THEN nothing is deleted, in S3 or DynamoDB, and the answer is a failure
        assert!(outcome.deleted.is_empty());
        assert_eq!(outcome.failed.len(), 2);
        assert!(outcome.error.is_some());
        assert_eq!(objects.calls(), 0);
        assert_eq!(objects.keys().len(), 2);
        assert_eq!(writes.num_calls(), 0);
    }

    #[tokio::test]
    async fn system_authority_deletes_the_readable_image_past_an_unreadable_one() {
        use crate::domain::{Authority, ImageIds};
        // GIVEN the same faults
        let (deleter, objects, writes, [a, b]) = unreadable_second_image();
        // WHEN a cleanup job asks for both
        let outcome = deleter
            .delete(
                &ImageIds::from_ids(vec![a.clone(), b.clone()]),
                Authority::System(Trigger::Cleanup),
                &RequestId::new("test"),
                deadline(),
            )
            .await
            .unwrap();
        // THEN A is deleted, objects then record, and B is left whole for the retry
        assert_eq!(outcome.deleted, vec![a]);
        assert_eq!(outcome.failed, vec![b.clone()]);
        assert_eq!(objects.keys(), vec![format!("b/{b}")]);
        assert_eq!(writes.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_failed_record_delete_is_re_read_and_reported_when_it_was_applied() {
        use crate::domain::{Authority, ImageIds};
        // GIVEN every BatchWriteItem attempt answers 500, though DynamoDB applied it:
        // the first read finds the record, the confirming re-read does not
        let wanted = ids(1);
        let found = item(&wanted[0]);
        let reads = mock!(aws_sdk_dynamodb::Client::batch_get_item)
            .sequence()
            .output(move || {
                BatchGetItemOutput::builder()
                    .responses(TABLE, vec![found.clone()])
                    .build()
            })
            .output(|| BatchGetItemOutput::builder().build())
            .build();
        let writes = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .sequence()
            .http_status(500, None)
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&reads, &writes]);
        let objects = Arc::new(crate::store::memory::MemoryObjectStore::default());
        let deleter =
            crate::domain::Deleter::new(Arc::new(DynamoCatalog::new(client, TABLE, 4)), objects);
        // WHEN the image is deleted
        let outcome = deleter
            .delete(
                &ImageIds::from_ids(wanted.clone()),
                Authority::System(Trigger::Cleanup),
                &RequestId::new("test"),
                deadline(),
            )
            .await
            .unwrap();
        // THEN the write failed, the re-read shows the record gone: it is reported
        assert!(writes.num_calls() >= 1);
        assert_eq!(reads.num_calls(), 2);
        assert_eq!(outcome.deleted, wanted);
        assert!(outcome.failed.is_empty() && outcome.error.is_none());
    }
}
