//! The trash on DynamoDB: a table of entries keyed by image id, beside the images
//! table. A move in writes the entry's put and the record's delete in one
//! `BatchWriteItem` (both tables, 12 images a call); the listing queries a global
//! secondary index on `album_id` + `listed_at` (`ListedAt`'s written form); `purge_at` is the table's TTL
//! attribute (`template.yaml`). Item shape: `docs/trash.md`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;

use super::batch::{self, Parsed, number, text};
use super::{
    ATTR_ALBUM_ID, ATTR_ID, Item, MAX_GET_BATCH, MAX_WRITE_BATCH, delete_request, id_of, key,
    parse_whole_record, put_request, record_item,
};
use crate::domain::trash::{Actor, ListedAt, RequestId, TrashEntry, Trashed, Trigger, UnixTime};
use crate::domain::{AlbumId, ImageId};
use crate::ports::{Lookup, Partial, StoreError, Trash, TrashPage};
use crate::retry::{Deadline, for_each_bounded};
use crate::store::{classify, in_chunks, send_before};

/// Attribute names of the trash table (`docs/trash.md`).
pub const ATTR_RECORD: &str = "record";
pub const ATTR_DELETED_AT: &str = "deleted_at";
pub const ATTR_DELETED_BY: &str = "deleted_by";
/// `"user"` or `"system"`: a user id that reads `system:...` stays a user's.
pub const ATTR_DELETED_BY_KIND: &str = "deleted_by_kind";
pub const ATTR_REQUEST_ID: &str = "request_id";
/// The table's TTL attribute.
pub const ATTR_PURGE_AT: &str = "purge_at";
/// The listing index's range key: `ListedAt` written out.
pub const ATTR_LISTED_AT: &str = "listed_at";

/// The index the listing queries: `album_id` (hash) + `listed_at` (range).
pub const DEFAULT_TRASH_INDEX: &str = "album_id-listed_at-index";

/// A move writes two items per image into one `BatchWriteItem` of at most 25.
const IMAGES_PER_MOVE: usize = MAX_WRITE_BATCH / 2;

/// Trash entries in one DynamoDB table, moved to and from the images table.
pub struct DynamoTrash {
    client: Client,
    images: Arc<str>,
    trash: Arc<str>,
    index: String,
    concurrency: usize,
}

impl DynamoTrash {
    pub fn new(
        client: Client,
        images: impl Into<String>,
        trash: impl Into<String>,
        concurrency: usize,
    ) -> Self {
        Self {
            client,
            images: Arc::from(images.into()),
            trash: Arc::from(trash.into()),
            index: DEFAULT_TRASH_INDEX.to_owned(),
            concurrency,
        }
    }

    pub fn with_index(mut self, index: impl Into<String>) -> Self {
        self.index = index.into();
        self
    }

    /// Adopts one entry: a put unless the image has one (a conditional `PutItem`:
    /// `BatchWriteItem` takes no conditions).
    async fn adopt_one(&self, entry: TrashEntry, deadline: Deadline) -> Partial<ImageId> {
        const OP: &str = "DynamoDB PutItem (adopt)";
        let sent = self
            .client
            .put_item()
            .table_name(&*self.trash)
            .set_item(Some(entry_item(&entry)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", ATTR_ID)
            .send();
        let timed = tokio::time::timeout_at(deadline.instant(), sent).await;
        let error = match timed {
            Ok(Ok(_)) => return Partial::default(),
            Ok(Err(err)) if err.code() == Some("ConditionalCheckFailedException") => {
                return Partial::default();
            }
            Ok(Err(err)) => classify(OP, err),
            Err(_) => crate::store::deadline_passed(OP),
        };
        Partial {
            failed: vec![entry.record.id],
            error: Some(error),
            ..Partial::default()
        }
    }
}

/// The item of an entry.
fn entry_item(entry: &TrashEntry) -> Item {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: UnixTime| AttributeValue::N(v.0.to_string());
    let kind = match entry.deleted_by {
        Actor::User(_) => "user",
        Actor::System(_) => "system",
    };
    let mut item = key(&entry.record.id);
    item.extend([
        (ATTR_ALBUM_ID.to_owned(), s(entry.album_id().as_str())),
        (
            ATTR_RECORD.to_owned(),
            AttributeValue::M(record_item(&entry.record)),
        ),
        (ATTR_DELETED_AT.to_owned(), n(entry.deleted_at)),
        (ATTR_DELETED_BY.to_owned(), s(&entry.deleted_by.to_string())),
        (ATTR_DELETED_BY_KIND.to_owned(), s(kind)),
        (ATTR_REQUEST_ID.to_owned(), s(entry.request_id.as_str())),
        (ATTR_PURGE_AT.to_owned(), n(entry.purge_at)),
    ]);
    // Left out (and so out of the listing) only for a time no clock gives.
    if let Some(listed) = entry.listed_at().key() {
        item.insert(ATTR_LISTED_AT.to_owned(), s(&listed));
    }
    item
}

/// Who deleted, as an entry says.
fn actor(item: &Item) -> Option<Actor> {
    let by = text(item, ATTR_DELETED_BY)?;
    match text(item, ATTR_DELETED_BY_KIND)? {
        "user" => Some(Actor::User(by.to_owned())),
        "system" => by
            .strip_prefix("system:")
            .and_then(Trigger::parse)
            .map(Actor::System),
        _ => None,
    }
}

/// An entry, with its record whole; or the id of one that cannot be read.
fn parse_entry(item: &Item) -> Parsed<TrashEntry> {
    let id = id_of(item).ok_or(None)?;
    let entry = (|| {
        let AttributeValue::M(record) = item.get(ATTR_RECORD)? else {
            return None;
        };
        let record = parse_whole_record(record).ok()?;
        (record.id == id).then_some(())?;
        Some(TrashEntry {
            record,
            deleted_at: UnixTime(number(item, ATTR_DELETED_AT)?),
            deleted_by: actor(item)?,
            request_id: RequestId::new(text(item, ATTR_REQUEST_ID).unwrap_or_default()),
            purge_at: UnixTime(number(item, ATTR_PURGE_AT)?),
        })
    })();
    entry.ok_or(Some(id))
}

/// What the listing shows of an entry read through the index.
fn parse_listed(item: &Item) -> Option<Trashed> {
    Some(Trashed {
        id: id_of(item)?,
        album_id: AlbumId::parse(text(item, ATTR_ALBUM_ID)?).ok()?,
        deleted_at: UnixTime(number(item, ATTR_DELETED_AT)?),
        deleted_by: actor(item)?,
        purge_at: UnixTime(number(item, ATTR_PURGE_AT)?),
    })
}

/// The index key of a listed entry: where the next page starts.
fn cursor_of(key: &HashMap<String, AttributeValue>) -> Option<ListedAt> {
    ListedAt::parse(text(key, ATTR_LISTED_AT)?)
}

#[async_trait]
impl Trash for DynamoTrash {
    async fn get(&self, ids: &[ImageId], deadline: Deadline) -> Lookup<TrashEntry> {
        in_chunks(ids, MAX_GET_BATCH, self.concurrency, |chunk| {
            batch::get(
                &self.client,
                &self.trash,
                chunk,
                None,
                parse_entry,
                deadline,
            )
        })
        .await
        .into_iter()
        .collect()
    }

    async fn move_in(&self, entries: &[TrashEntry], deadline: Deadline) -> Partial<ImageId> {
        in_chunks(entries, IMAGES_PER_MOVE, self.concurrency, |chunk| {
            let writes = chunk
                .iter()
                .flat_map(|entry| {
                    [
                        (&*self.trash, put_request(entry_item(entry))),
                        (&*self.images, delete_request(key(&entry.record.id))),
                    ]
                })
                .collect();
            batch::write(&self.client, writes, deadline)
        })
        .await
        .into_iter()
        .collect()
    }

    async fn adopt(&self, entries: &[TrashEntry], deadline: Deadline) -> Partial<ImageId> {
        for_each_bounded(entries.to_vec(), self.concurrency, |entry| {
            self.adopt_one(entry, deadline)
        })
        .await
        .into_iter()
        .collect()
    }

    async fn put_back(&self, entries: &[TrashEntry], deadline: Deadline) -> Partial<ImageId> {
        in_chunks(entries, MAX_WRITE_BATCH, self.concurrency, |chunk| {
            let writes = chunk
                .iter()
                .map(|entry| (&*self.images, put_request(record_item(&entry.record))))
                .collect();
            batch::write(&self.client, writes, deadline)
        })
        .await
        .into_iter()
        .collect()
    }

    async fn remove(&self, ids: &[ImageId], deadline: Deadline) -> Partial<ImageId> {
        in_chunks(ids, MAX_WRITE_BATCH, self.concurrency, |chunk| {
            let writes = chunk
                .iter()
                .map(|id| (&*self.trash, delete_request(key(id))))
                .collect();
            batch::write(&self.client, writes, deadline)
        })
        .await
        .into_iter()
        .collect()
    }

    async fn page(
        &self,
        album: &AlbumId,
        after: Option<&ListedAt>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<TrashPage, StoreError> {
        const OP: &str = "DynamoDB Query (trash)";
        let mut condition = "#album = :album".to_owned();
        let mut values = HashMap::from([(
            ":album".to_owned(),
            AttributeValue::S(album.as_str().to_owned()),
        )]);
        if let Some(after) = after.and_then(ListedAt::key) {
            condition.push_str(" AND #listed < :after");
            values.insert(":after".to_owned(), AttributeValue::S(after));
        }
        let names = [
            ("#id", ATTR_ID),
            ("#album", ATTR_ALBUM_ID),
            ("#at", ATTR_DELETED_AT),
            ("#by", ATTR_DELETED_BY),
            ("#kind", ATTR_DELETED_BY_KIND),
            ("#purge", ATTR_PURGE_AT),
            ("#listed", ATTR_LISTED_AT),
        ];
        let names: HashMap<String, String> = names
            .iter()
            .map(|(a, n)| (a.to_string(), n.to_string()))
            .collect();
        let sent = self
            .client
            .query()
            .table_name(&*self.trash)
            .index_name(&self.index)
            .key_condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .set_expression_attribute_names(Some(names))
            // What the listing shows: never the record.
            .projection_expression("#id, #album, #at, #by, #kind, #purge, #listed")
            .scan_index_forward(false)
            // One more than a page: whether another page follows, without an empty one.
            .limit(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX))
            .send();
        let output = send_before(deadline, OP, sent).await?;
        let items = output.items();
        let entries = items.iter().take(limit).filter_map(parse_listed).collect();
        let next = if items.len() > limit {
            items.get(limit.saturating_sub(1)).and_then(cursor_of)
        } else {
            None
        };
        Ok(TrashPage { entries, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::trash::{Stamp, TrashDays};
    use crate::domain::{ImageRecord, ObjectKey, Opaque};

    fn entry(by: Actor) -> TrashEntry {
        let id = ImageId::parse("7dca41d5-d76a-4ebb-9e00-dd13c13fc238").unwrap();
        let mut item = key(&id);
        item.insert(ATTR_ALBUM_ID.into(), AttributeValue::S("a".into()));
        item.insert("title".into(), AttributeValue::S("Sunset".into()));
        let record = ImageRecord {
            id,
            album_id: AlbumId::parse("a").unwrap(),
            object_keys: vec![ObjectKey::parse("a/1").unwrap()],
            rest: Opaque::new(item),
        };
        let stamp = Stamp {
            by,
            request_id: RequestId::new("req"),
            at: UnixTime(100),
        };
        TrashEntry::new(record, &stamp, TrashDays::parse("1").unwrap().unwrap())
    }

    #[test]
    fn an_entry_reads_back_as_written_with_its_whole_record() {
        for by in [
            Actor::User("system:album".into()),
            Actor::System(Trigger::Stream),
        ] {
            // GIVEN an entry by a user whose id looks like a trigger's, or a trigger
            let written = entry(by.clone());
            // WHEN it is written as an item and read back
            let read = parse_entry(&entry_item(&written)).unwrap();
            // THEN it is the same entry, the record's other attributes included
            assert_eq!(read.deleted_by, by);
            assert_eq!(
                (read.deleted_at, read.purge_at),
                (UnixTime(100), UnixTime(86_500))
            );
            let item = read.record.rest.get::<Item>().unwrap();
            assert_eq!(item["title"], AttributeValue::S("Sunset".into()));
            assert_eq!(read.record.id, written.record.id);
            assert_eq!(parse_listed(&entry_item(&written)), Some(written.summary()));
        }
    }

    #[test]
    fn an_entry_of_an_unknown_shape_is_unread_by_its_id() {
        let mut item = entry_item(&entry(Actor::User("u".into())));
        item.insert(
            ATTR_DELETED_BY_KIND.into(),
            AttributeValue::S("robot".into()),
        );
        let id = parse_entry(&item).unwrap_err();
        assert_eq!(id.unwrap().as_str(), "7dca41d5-d76a-4ebb-9e00-dd13c13fc238");
        item.remove(ATTR_ID);
        assert_eq!(parse_entry(&item).unwrap_err(), None);
    }
}
