//! `BatchGetItem` and `BatchWriteItem` of items keyed by image id, in one table or
//! several, retried for unprocessed items until done or out of time. The catalog and
//! the trash both go through here.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, WriteRequest};

use super::{ATTR_ID, Item, id_of, key};
use crate::domain::ImageId;
use crate::ports::{Lookup, Partial, StoreError, StoreErrorKind};
use crate::retry::{Backoff, Deadline};
use crate::store::{deadline_passed, send_before};

/// An item read, or the id of one that cannot be (when that much is readable).
pub(super) type Parsed<T> = Result<T, Option<ImageId>>;

/// What to read of each item: `None` for the whole item.
pub(super) type Projection = Option<&'static [&'static str]>;

/// Reads the items of `ids` (at most 100: DynamoDB's limit per call) from `table`,
/// strongly consistent, retrying unprocessed keys until done or out of time.
pub(super) async fn get<T>(
    client: &Client,
    table: &str,
    ids: Vec<ImageId>,
    projection: Projection,
    parse: fn(&Item) -> Parsed<T>,
    deadline: Deadline,
) -> Lookup<T> {
    const OP: &str = "DynamoDB BatchGetItem";
    let mut lookup = Lookup::default();
    let mut pending: Vec<Item> = ids.iter().map(key).collect();
    // The ids of `pending`, for when its call fails: the keys themselves move into
    // the call (a copy of 100 keys is 300 allocations).
    let mut asked = ids;
    let mut backoff = Backoff::default();
    loop {
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(std::mem::take(&mut pending)))
            .consistent_read(true);
        if let Some(names) = projection {
            let mut expression = String::new();
            for (i, name) in names.iter().enumerate() {
                let alias = format!("#a{i}");
                if i > 0 {
                    expression.push_str(", ");
                }
                expression.push_str(&alias);
                request = request.expression_attribute_names(alias, *name);
            }
            request = request.projection_expression(expression);
        }
        let request = request.build().expect("keys are set");
        let sent = client.batch_get_item().request_items(table, request).send();
        let output = match send_before(deadline, OP, sent).await {
            Ok(output) => output,
            Err(err) => {
                lookup.unread.extend(asked);
                lookup.error = StoreError::worst(lookup.error, Some(err));
                return lookup;
            }
        };
        let items = output
            .responses()
            .and_then(|r| r.get(table))
            .into_iter()
            .flatten()
            .map(parse);
        for item in items {
            match item {
                Ok(item) => lookup.found.push(item),
                Err(id) => {
                    // An item we cannot read is never acted on: its fate stays unknown.
                    lookup.unread.extend(id);
                    let err = StoreError::new(StoreErrorKind::Failed, OP)
                        .with_source("an item of a shape this service does not know");
                    lookup.error = StoreError::worst(lookup.error, Some(err));
                }
            }
        }
        pending = output
            .unprocessed_keys()
            .and_then(|u| u.get(table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
        if pending.is_empty() {
            return lookup;
        }
        asked = pending.iter().filter_map(id_of).collect();
        tracing::debug!(unprocessed = pending.len(), "retrying unprocessed keys");
        lookup.retries += 1;
        if !backoff.wait(deadline).await {
            lookup.unread.extend(asked);
            lookup.error = StoreError::worst(lookup.error, Some(deadline_passed(OP)));
            return lookup;
        }
    }
}

/// Writes `writes` (at most 25: DynamoDB's limit per call), each a put or delete of
/// an item keyed by image id in one of the tables, retrying unprocessed items until
/// done or out of time. An image fails when any of its items is left unwritten.
pub(super) async fn write(
    client: &Client,
    writes: Vec<(&str, WriteRequest)>,
    deadline: Deadline,
) -> Partial<ImageId> {
    const OP: &str = "DynamoDB BatchWriteItem";
    let mut pending: HashMap<String, Vec<WriteRequest>> = HashMap::new();
    for (table, request) in writes {
        pending.entry(table.to_owned()).or_default().push(request);
    }
    // The ids of `pending`, for when its call fails: the requests move into the call.
    let mut asked = ids_of(&pending);
    let mut backoff = Backoff::default();
    let mut retries = 0;
    loop {
        let sent = client
            .batch_write_item()
            .set_request_items(Some(std::mem::take(&mut pending)))
            .send();
        let error = match send_before(deadline, OP, sent).await {
            Ok(output) => {
                pending = output.unprocessed_items().cloned().unwrap_or_default();
                pending.retain(|_, requests| !requests.is_empty());
                asked = ids_of(&pending);
                if pending.is_empty() {
                    return Partial {
                        retries,
                        ..Partial::default()
                    };
                }
                tracing::debug!(unprocessed = asked.len(), "retrying unprocessed items");
                retries += 1;
                if backoff.wait(deadline).await {
                    continue;
                }
                deadline_passed(OP)
            }
            Err(err) => err,
        };
        return Partial {
            failed: asked,
            error: Some(error),
            retries,
            item_errors: 0,
        };
    }
}

/// The image ids the requests write, each once.
fn ids_of(requests: &HashMap<String, Vec<WriteRequest>>) -> Vec<ImageId> {
    let mut ids: Vec<ImageId> = requests
        .values()
        .flatten()
        .filter_map(|request| {
            let item = match (request.delete_request(), request.put_request()) {
                (Some(delete), _) => delete.key(),
                (_, Some(put)) => put.item(),
                _ => return None,
            };
            id_of(item)
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A string attribute of `item`.
pub(super) fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A number attribute of `item`, as a whole number.
pub(super) fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// The key attribute of an image id, for items built by hand.
pub(super) fn id_attr(id: &ImageId) -> (String, AttributeValue) {
    (ATTR_ID.to_owned(), AttributeValue::S(id.to_string()))
}
