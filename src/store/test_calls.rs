//! The function's three AWS calls at the services' full sizes, for the tests that check
//! what goes on the wire (payload hash, signer, HTTP client): one definition of them.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, KeysAndAttributes, WriteRequest};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

fn key(i: usize) -> HashMap<String, AttributeValue> {
    HashMap::from([(
        "id".to_owned(),
        AttributeValue::S(format!("0c5f3e4e-0000-4000-8000-{i:012}")),
    )])
}

/// A consistent `BatchGetItem` of 100 keys.
pub fn reads() -> KeysAndAttributes {
    KeysAndAttributes::builder()
        .set_keys(Some((0..100).map(key).collect()))
        .consistent_read(true)
        .build()
        .unwrap()
}

/// A `BatchWriteItem` of 25 deletes.
pub fn writes() -> Vec<WriteRequest> {
    (0..25)
        .map(|i| {
            let delete = DeleteRequest::builder().set_key(Some(key(i))).build();
            WriteRequest::builder()
                .delete_request(delete.unwrap())
                .build()
        })
        .collect()
}

/// A quiet `DeleteObjects` of 1000 keys, the i-th named by `key(i)`.
pub fn object_deletes(key: impl Fn(usize) -> String) -> Delete {
    let keys: Vec<String> = (0..1000).map(key).collect();
    object_deletes_of(&keys)
}

/// A quiet `DeleteObjects` of `keys`.
pub fn object_deletes_of(keys: &[String]) -> Delete {
    let objects = keys
        .iter()
        .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
        .collect();
    Delete::builder()
        .set_objects(Some(objects))
        .quiet(true)
        .build()
        .unwrap()
}
