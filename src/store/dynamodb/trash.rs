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
use crate::domain::audit::{Action, Change};
use crate::domain::trash::{
    Actor, Closing, ListedAt, RequestId, Tombstone, TrashEntry, Trashed, Trigger, UnixTime,
};
use crate::domain::{AlbumId, ImageId, ImageRecord};
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
/// A tombstone's (`Closing`): set exactly on tombstones, which read as no entry.
pub const ATTR_OUTCOME: &str = "outcome";
pub const ATTR_CLOSED_BY: &str = "closed_by";
pub const ATTR_CLOSED_BY_KIND: &str = "closed_by_kind";
pub const ATTR_CLOSED_AT: &str = "closed_at";

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

    /// Adopts one entry: a put unless the image has one (a tombstone is none; a
    /// conditional `PutItem`: `BatchWriteItem` takes no conditions).
    async fn adopt_one(&self, entry: TrashEntry, deadline: Deadline) -> Partial<ImageId> {
        const OP: &str = "DynamoDB PutItem (adopt)";
        let sent = self
            .client
            .put_item()
            .table_name(&*self.trash)
            .set_item(Some(entry_item(&entry)))
            .condition_expression("attribute_not_exists(#id) OR attribute_exists(#outcome)")
            .expression_attribute_names("#id", ATTR_ID)
            .expression_attribute_names("#outcome", ATTR_OUTCOME)
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

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: UnixTime) -> AttributeValue {
    AttributeValue::N(v.0.to_string())
}

fn kind_of(actor: &Actor) -> &'static str {
    match actor {
        Actor::User(_) => "user",
        Actor::System(_) => "system",
    }
}

/// The item of a tombstone: no record and no `listed_at` (so out of the listing).
fn tombstone_item(tombstone: &Tombstone) -> Item {
    let mut item = key(&tombstone.id);
    let by = &tombstone.stamp.by;
    item.extend([
        (ATTR_ALBUM_ID.to_owned(), s(tombstone.album_id.as_str())),
        (ATTR_OUTCOME.to_owned(), s(tombstone.outcome.as_str())),
        (ATTR_CLOSED_BY.to_owned(), s(&by.to_string())),
        (ATTR_CLOSED_BY_KIND.to_owned(), s(kind_of(by))),
        (ATTR_CLOSED_AT.to_owned(), n(tombstone.stamp.at)),
        (
            ATTR_REQUEST_ID.to_owned(),
            s(tombstone.stamp.request_id.as_str()),
        ),
        (ATTR_PURGE_AT.to_owned(), n(tombstone.purge_at)),
    ]);
    item
}

/// The item of an entry.
fn entry_item(entry: &TrashEntry) -> Item {
    let kind = kind_of(&entry.deleted_by);
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
    actor_in(item, ATTR_DELETED_BY, ATTR_DELETED_BY_KIND)
}

/// The actor written under `by` and `kind`.
pub(crate) fn actor_in(item: &Item, by: &str, kind: &str) -> Option<Actor> {
    let by = text(item, by)?;
    match text(item, kind)? {
        "user" => Some(Actor::User(by.to_owned())),
        "system" => by
            .strip_prefix("system:")
            .and_then(Trigger::parse)
            .map(Actor::System),
        _ => None,
    }
}

/// An entry, with its record whole (`None` for a tombstone: no entry); or the id of
/// one that cannot be read.
fn parse_entry(item: &Item) -> Parsed<Option<TrashEntry>> {
    let id = id_of(item).ok_or(None)?;
    if item.contains_key(ATTR_OUTCOME) {
        return Ok(None);
    }
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
    entry.map(Some).ok_or(Some(id))
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

/// What a trash item says, as far as the audit trail goes.
enum Shown {
    Entry(Said),
    Tombstone(Closing, Said),
}

/// Who changed an item, for which request, when.
struct Said {
    id: ImageId,
    album_id: AlbumId,
    by: Actor,
    request_id: RequestId,
    at: UnixTime,
}

fn shown(item: &Item) -> Option<Shown> {
    let said = |by: &str, kind: &str, at: &str| {
        Some(Said {
            id: id_of(item)?,
            album_id: AlbumId::parse(text(item, ATTR_ALBUM_ID)?).ok()?,
            by: actor_in(item, by, kind)?,
            request_id: RequestId::new(text(item, ATTR_REQUEST_ID).unwrap_or_default()),
            at: UnixTime(number(item, at)?),
        })
    };
    match text(item, ATTR_OUTCOME) {
        Some(outcome) => Some(Shown::Tombstone(
            Closing::parse(outcome)?,
            said(ATTR_CLOSED_BY, ATTR_CLOSED_BY_KIND, ATTR_CLOSED_AT)?,
        )),
        None => Some(Shown::Entry(said(
            ATTR_DELETED_BY,
            ATTR_DELETED_BY_KIND,
            ATTR_DELETED_AT,
        )?)),
    }
}

/// One record of the trash table's stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamedChange<'a> {
    pub old: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub new: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The removal was DynamoDB's TTL (the record's `userIdentity`).
    pub by_ttl: bool,
    /// The stream record's id and time: the request and time of a removal, which
    /// no item states.
    pub event_id: &'a str,
    pub at: UnixTime,
}

/// An image of the stream that is not a trash item this service writes.
#[derive(Debug, thiserror::Error)]
#[error("a trash stream image of a shape this service does not know")]
pub struct UnknownShape;

/// What the audit trail records of one change of the trash table, if anything:
/// - an entry written (new, or over a tombstone, or by another request): deleted;
/// - a tombstone written over an entry: restored or erased, by whom it says;
/// - an entry removed (TTL when its window ended, or anyone else): erased.
///
/// A change the same request made again, and a tombstone's removal, record nothing.
pub fn audit_change(change: StreamedChange<'_>) -> Result<Option<Change>, UnknownShape> {
    let read = |image: Option<&serde_json::Map<String, serde_json::Value>>| {
        image
            .map(|image| {
                super::item_from_stream(image)
                    .as_ref()
                    .and_then(shown)
                    .ok_or(UnknownShape)
            })
            .transpose()
    };
    let (old, new) = (read(change.old)?, read(change.new)?);
    let made = |action: Action, said: Said| Change {
        action,
        id: said.id,
        album_id: said.album_id,
        by: said.by,
        request_id: said.request_id,
        at: said.at,
    };
    Ok(match (old, new) {
        (Some(Shown::Entry(was)), Some(Shown::Entry(now))) if was.request_id == now.request_id => {
            None
        }
        (_, Some(Shown::Entry(now))) => Some(made(Action::Deleted, now)),
        (Some(Shown::Tombstone(o, was)), Some(Shown::Tombstone(n, now)))
            if o == n && was.request_id == now.request_id =>
        {
            None
        }
        (_, Some(Shown::Tombstone(outcome, now))) => {
            let action = match outcome {
                Closing::Restored => Action::Restored,
                Closing::Erased => Action::Erased,
            };
            Some(made(action, now))
        }
        (Some(Shown::Entry(was)), None) => {
            let trigger = if change.by_ttl {
                Trigger::Expiry
            } else {
                Trigger::Outside
            };
            Some(Change {
                by: Actor::System(trigger),
                request_id: RequestId::new(change.event_id),
                at: change.at,
                ..made(Action::Erased, was)
            })
        }
        (Some(Shown::Tombstone(..)) | None, None) => None,
    })
}

/// The record an entry removed from the trash table held (a stream's old image);
/// `None` for a tombstone.
pub fn removed_entry(
    old: &serde_json::Map<String, serde_json::Value>,
) -> Result<Option<ImageRecord>, UnknownShape> {
    let item = super::item_from_stream(old).ok_or(UnknownShape)?;
    match parse_entry(&item) {
        Ok(entry) => Ok(entry.map(|e| e.record)),
        Err(_) => Err(UnknownShape),
    }
}

#[async_trait]
impl Trash for DynamoTrash {
    async fn get(&self, ids: &[ImageId], deadline: Deadline) -> Lookup<TrashEntry> {
        let lookup: Lookup<Option<TrashEntry>> =
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
            .collect();
        Lookup {
            found: lookup.found.into_iter().flatten().collect(),
            unread: lookup.unread,
            error: lookup.error,
            retries: lookup.retries,
        }
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

    async fn close(&self, tombstones: &[Tombstone], deadline: Deadline) -> Partial<ImageId> {
        in_chunks(tombstones, MAX_WRITE_BATCH, self.concurrency, |chunk| {
            let writes = chunk
                .iter()
                .map(|t| (&*self.trash, put_request(tombstone_item(t))))
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
    use crate::domain::audit::Action;
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
            let read = parse_entry(&entry_item(&written)).unwrap().unwrap();
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
    fn a_tombstone_reads_as_no_entry_and_is_never_listed() {
        // GIVEN an entry restored by a user
        let written = entry(Actor::User("u".into()));
        let stamp = Stamp {
            by: Actor::User("restorer".into()),
            request_id: RequestId::new("req-2"),
            at: UnixTime(200),
        };
        let tombstone = Tombstone::of(&written, Closing::Restored, &stamp);
        // WHEN its tombstone is written and read back
        let item = tombstone_item(&tombstone);
        // THEN it is no entry, out of the listing, kept a day, and says who closed it
        assert_eq!(parse_entry(&item), Ok(None));
        assert!(!item.contains_key(ATTR_LISTED_AT) && !item.contains_key(ATTR_RECORD));
        assert_eq!(item[ATTR_PURGE_AT], AttributeValue::N("86600".into()));
        assert_eq!(
            actor_in(&item, ATTR_CLOSED_BY, ATTR_CLOSED_BY_KIND),
            Some(Actor::User("restorer".into()))
        );
        assert_eq!(item[ATTR_OUTCOME], AttributeValue::S("restored".into()));
    }

    /// An item's text and number attributes as a stream image (DynamoDB JSON).
    fn streamed(item: &Item) -> serde_json::Map<String, serde_json::Value> {
        item.iter()
            .filter_map(|(name, value)| {
                let json = match value {
                    AttributeValue::S(v) => serde_json::json!({ "S": v }),
                    AttributeValue::N(v) => serde_json::json!({ "N": v }),
                    _ => return None,
                };
                Some((name.clone(), json))
            })
            .collect()
    }

    fn change(
        old: Option<&Item>,
        new: Option<&Item>,
        by_ttl: bool,
    ) -> Result<Option<(Action, String, String, UnixTime)>, UnknownShape> {
        let (old, new) = (old.map(streamed), new.map(streamed));
        let change = audit_change(StreamedChange {
            old: old.as_ref(),
            new: new.as_ref(),
            by_ttl,
            event_id: "ev-1",
            at: UnixTime(999),
        })?;
        Ok(change.map(|c| {
            assert_eq!(c.id.as_str(), "7dca41d5-d76a-4ebb-9e00-dd13c13fc238");
            assert_eq!(c.album_id.as_str(), "a");
            (
                c.action,
                c.by.to_string(),
                c.request_id.as_str().to_owned(),
                c.at,
            )
        }))
    }

    fn tombstone(outcome: Closing, request: &str) -> Item {
        let stamp = Stamp {
            by: Actor::User("closer".into()),
            request_id: RequestId::new(request),
            at: UnixTime(200),
        };
        tombstone_item(&Tombstone::of(
            &entry(Actor::User("u".into())),
            outcome,
            &stamp,
        ))
    }

    #[test]
    fn the_trash_stream_says_who_deleted_restored_and_erased_what() {
        // GIVEN an entry (deleted by user u in request "req" at 100) and tombstones
        let trashed = entry_item(&entry(Actor::User("u".into())));
        let restored = tombstone(Closing::Restored, "r2");
        let erased = tombstone(Closing::Erased, "r3");
        let deleted = |by: &str| {
            (
                Action::Deleted,
                by.to_owned(),
                "req".to_owned(),
                UnixTime(100),
            )
        };
        let closed = |action| (action, "closer".to_owned(), "r2".to_owned(), UnixTime(200));
        // WHEN each change is read THEN the trail records exactly these
        // An entry written, new or over a tombstone: deleted.
        assert_eq!(
            change(None, Some(&trashed), false).unwrap(),
            Some(deleted("u"))
        );
        assert_eq!(
            change(Some(&restored), Some(&trashed), false).unwrap(),
            Some(deleted("u"))
        );
        // A tombstone over an entry: restored or erased, by whom it says.
        assert_eq!(
            change(Some(&trashed), Some(&restored), false).unwrap(),
            Some(closed(Action::Restored))
        );
        let erased_change = change(Some(&trashed), Some(&erased), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (erased_change.0, erased_change.2.as_str()),
            (Action::Erased, "r3")
        );
        // An entry removed: erased by the window (TTL) or by someone else.
        let expiry = (
            Action::Erased,
            "system:expiry".to_owned(),
            "ev-1".to_owned(),
            UnixTime(999),
        );
        assert_eq!(change(Some(&trashed), None, true).unwrap(), Some(expiry));
        let outside = change(Some(&trashed), None, false).unwrap().unwrap();
        assert_eq!(outside.1, "system:outside");
        // The same request writing again, and a tombstone's removal: nothing.
        assert_eq!(change(Some(&trashed), Some(&trashed), false).unwrap(), None);
        assert_eq!(
            change(Some(&restored), Some(&restored), false).unwrap(),
            None
        );
        assert_eq!(change(Some(&restored), None, true).unwrap(), None);
        // An entry rewritten by another request: deleted again, by that request.
        let mut again = trashed.clone();
        again.insert(ATTR_REQUEST_ID.into(), AttributeValue::S("req-2".into()));
        let rewritten = change(Some(&trashed), Some(&again), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (rewritten.0, rewritten.2.as_str()),
            (Action::Deleted, "req-2")
        );
    }

    #[test]
    fn a_trash_stream_image_of_an_unknown_shape_is_an_error() {
        let mut odd = entry_item(&entry(Actor::User("u".into())));
        odd.insert(ATTR_OUTCOME.into(), AttributeValue::S("shredded".into()));
        assert!(change(None, Some(&odd), false).is_err());
        let mut no_album = entry_item(&entry(Actor::User("u".into())));
        no_album.remove(ATTR_ALBUM_ID);
        assert!(change(Some(&no_album), None, true).is_err());
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
