//! The trash through its real adapters (`DynamoTrash`, the whole-record catalog and
//! the S3 versions) against the emulators: dynalite's two tables in one
//! `BatchWriteItem` and its index query, moto's versioned bucket with delete markers.
//! The routes come later (issue 26); these drive the deletion core directly.

use std::sync::Arc;

use image_delete::domain::restore::{Caller, TrashOutcome};
use image_delete::domain::trash::{RequestId, TrashDays};
use image_delete::domain::{Abilities, AlbumId, Authority, Deleter, ImageId, ImageIds};
use image_delete::retry::Deadline;
use image_delete::store::dynamodb::DynamoCatalog;
use image_delete::store::dynamodb::trash::DynamoTrash;
use image_delete::store::s3::S3ObjectStore;

use crate::helpers::{OTHER_ALBUM, SEED_ALBUM, SEED_IDS, TestApp};

/// A restore or erasure by user "restorer", request "req-restore".
fn caller(abilities: &Abilities) -> Caller<'_> {
    static REQUEST: std::sync::LazyLock<RequestId> =
        std::sync::LazyLock::new(|| RequestId::new("req-restore"));
    Caller {
        abilities,
        user_id: "restorer",
        request_id: &REQUEST,
    }
}

/// The deleter over this app's table and bucket, with a 30-day trash.
async fn trashing(app: &TestApp) -> (Deleter, String) {
    let trash_table = app.create_trash().await;
    let catalog = DynamoCatalog::new(app.dynamodb.clone(), &app.table, 4).with_whole_records();
    let objects = Arc::new(S3ObjectStore::new(app.s3.clone(), &app.bucket, 4));
    let trash = DynamoTrash::new(app.dynamodb.clone(), &app.table, &trash_table, 4);
    let days = TrashDays::parse("30").unwrap().unwrap();
    let deleter =
        Deleter::new(Arc::new(catalog), objects.clone()).with_trash(Arc::new(trash), objects, days);
    (deleter, trash_table)
}

fn ids(raw: &[&str]) -> ImageIds {
    ImageIds::parse(raw.iter().copied(), 1000).unwrap()
}

fn grants(albums: &[&str], abilities: &[&str]) -> Abilities {
    let access: serde_json::Map<String, serde_json::Value> = abilities
        .iter()
        .map(|a| ((*a).to_owned(), true.into()))
        .collect();
    let all: serde_json::Map<String, serde_json::Value> = albums
        .iter()
        .map(|album| ((*album).to_owned(), serde_json::json!({ "Access": access })))
        .collect();
    serde_json::from_value(all.into()).unwrap()
}

fn deadline() -> Deadline {
    Deadline::after(std::time::Duration::from_secs(10))
}

fn strs(ids: &[ImageId]) -> Vec<&str> {
    ids.iter().map(ImageId::as_str).collect()
}

/// Deletes `id`'s record straight from the table, as someone else would; its item.
async fn remove_behind_our_back(
    app: &TestApp,
    id: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    let item = app.item(&app.table, id).await.unwrap();
    app.dynamodb
        .delete_item()
        .table_name(&app.table)
        .key("id", item["id"].clone())
        .send()
        .await
        .unwrap();
    item
}

async fn delete_as_user(deleter: &Deleter, raw: &[&str]) -> Vec<String> {
    let abilities = grants(&[SEED_ALBUM, OTHER_ALBUM], &["image_delete"]);
    let required = vec!["image_delete".to_owned()];
    let authority = Authority::Token {
        user_id: "user-7",
        abilities: &abilities,
        required: &required,
    };
    let outcome = deleter
        .delete(&ids(raw), authority, &RequestId::new("req-42"), deadline())
        .await
        .unwrap();
    assert!(outcome.failed.is_empty(), "{:?}", outcome.error);
    outcome.deleted.iter().map(|id| id.to_string()).collect()
}

#[tokio::test]
async fn deleted_images_go_to_the_trash_and_come_back_byte_for_byte() {
    // GIVEN two images in the seed album, their bucket versioned
    let app = TestApp::spawn().await;
    let (deleter, trash_table) = trashing(&app).await;
    let (a, b) = (SEED_IDS[0], SEED_IDS[1]);
    let keys_a = app.seed_image(a, SEED_ALBUM).await;
    let keys_b = app.seed_image(b, SEED_ALBUM).await;
    let record_a = app.item(&app.table, a).await.unwrap();
    let bytes = app.object_bytes(&keys_a[0]).await.unwrap();

    // WHEN user-7 deletes both
    assert_eq!(delete_as_user(&deleter, &[a, b]).await, [a, b]);

    // THEN they are no longer images, their objects answer 404, and the trash holds
    // each whole record with who deleted it
    assert!(!app.record_exists(a).await && !app.record_exists(b).await);
    for key in keys_a.iter().chain(&keys_b) {
        assert_eq!(app.object_bytes(key).await, None, "{key}");
    }
    let entry = app.item(&trash_table, a).await.unwrap();
    assert_eq!(entry["deleted_by"].as_s().unwrap(), "user-7");
    assert_eq!(entry["request_id"].as_s().unwrap(), "req-42");
    assert_eq!(entry["record"].as_m().unwrap(), &record_a);
    // AND the listing shows both, newest first, one page at a time
    let album = AlbumId::parse(SEED_ALBUM).unwrap();
    let first = deleter
        .trash_page(&album, None, 1, deadline())
        .await
        .unwrap();
    assert_eq!(first.entries.len(), 1);
    let next = first.next.expect("a second page");
    let second = deleter
        .trash_page(&album, Some(&next), 1, deadline())
        .await
        .unwrap();
    let mut listed = vec![
        first.entries[0].id.to_string(),
        second.entries[0].id.to_string(),
    ];
    listed.sort();
    let mut want = vec![a.to_owned(), b.to_owned()];
    want.sort();
    assert_eq!(listed, want);

    // WHEN both are restored by a token with trash on the album
    let outcome: TrashOutcome = deleter
        .restore(
            &ids(&[a, b]),
            caller(&grants(&[SEED_ALBUM], &["trash"])),
            deadline(),
        )
        .await
        .unwrap();
    // THEN they are images again, records and bytes exactly as they were
    assert_eq!(strs(&outcome.done), [a, b]);
    assert_eq!(app.item(&app.table, a).await.unwrap(), record_a);
    assert_eq!(app.object_bytes(&keys_a[0]).await.unwrap(), bytes);
    for key in keys_a.iter().chain(&keys_b) {
        assert!(app.object_exists(key).await, "{key}");
    }
    // AND each entry is a tombstone, out of the listing, saying who restored it
    let tombstone = app.item(&trash_table, a).await.unwrap();
    assert_eq!(tombstone["outcome"].as_s().unwrap(), "restored");
    assert_eq!(tombstone["closed_by"].as_s().unwrap(), "restorer");
    assert_eq!(tombstone["request_id"].as_s().unwrap(), "req-restore");
    assert!(!tombstone.contains_key("record"));
    let page = deleter
        .trash_page(&album, None, 10, deadline())
        .await
        .unwrap();
    assert!(page.entries.is_empty(), "{page:?}");
    // AND a second restore finds nothing to restore
    let again = deleter
        .restore(
            &ids(&[a]),
            caller(&grants(&[SEED_ALBUM], &["trash"])),
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(strs(&again.missing), [a]);

    // WHEN a restored image is deleted again, once by a user and once behind our back
    assert_eq!(delete_as_user(&deleter, &[a]).await, [a]);
    // THEN its entry replaces the tombstone and it can be restored again
    let entry = app.item(&trash_table, a).await.unwrap();
    assert!(entry.contains_key("record") && !entry.contains_key("outcome"));
    let outcome = deleter
        .restore(
            &ids(&[a]),
            caller(&grants(&[SEED_ALBUM], &["trash"])),
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!(strs(&outcome.done), [a]);
    let record = remove_behind_our_back(&app, a).await;
    let whole = image_delete::store::dynamodb::whole_record(&record).unwrap();
    let adopted = deleter
        .adopt(vec![whole], &RequestId::new("stream-9"), deadline())
        .await
        .unwrap();
    assert!(adopted.failed.is_empty(), "{:?}", adopted.error);
    let entry = app.item(&trash_table, a).await.unwrap();
    assert_eq!(entry["deleted_by"].as_s().unwrap(), "system:stream");
    assert!(!entry.contains_key("outcome"));
}

#[tokio::test]
async fn a_restore_without_trash_on_the_album_changes_nothing() {
    // GIVEN an image of another album in the trash
    let app = TestApp::spawn().await;
    let (deleter, trash_table) = trashing(&app).await;
    let id = SEED_IDS[2];
    let keys = app.seed_image(id, OTHER_ALBUM).await;
    delete_as_user(&deleter, &[id]).await;
    // WHEN a token with trash on the seed album only restores it
    let result = deleter
        .restore(
            &ids(&[id]),
            caller(&grants(&[SEED_ALBUM], &["trash"])),
            deadline(),
        )
        .await;
    // THEN it is denied and the image stays in the trash
    assert!(result.is_err());
    assert!(app.item(&trash_table, id).await.is_some());
    assert!(!app.record_exists(id).await);
    assert_eq!(app.object_bytes(&keys[0]).await, None);
}

#[tokio::test]
async fn erased_images_leave_no_version_behind() {
    // GIVEN an image in the trash
    let app = TestApp::spawn().await;
    let (deleter, trash_table) = trashing(&app).await;
    let id = SEED_IDS[3];
    let keys = app.seed_image(id, SEED_ALBUM).await;
    delete_as_user(&deleter, &[id]).await;
    // WHEN it is erased
    let outcome = deleter
        .erase(
            &ids(&[id]),
            caller(&grants(&[SEED_ALBUM], &["trash"])),
            deadline(),
        )
        .await
        .unwrap();
    // THEN no version of its objects and no entry is left
    assert_eq!(strs(&outcome.done), [id]);
    let tombstone = app.item(&trash_table, id).await.unwrap();
    assert_eq!(tombstone["outcome"].as_s().unwrap(), "erased");
    let versions = app
        .s3
        .list_object_versions()
        .bucket(&app.bucket)
        .send()
        .await
        .unwrap();
    let left = versions.versions().len() + versions.delete_markers().len();
    assert_eq!(left, 0, "{keys:?}");
}

#[tokio::test]
async fn a_record_removed_behind_our_back_is_adopted_into_the_trash() {
    // GIVEN a record removed by someone else (its objects hidden the same way)
    let app = TestApp::spawn().await;
    let (deleter, trash_table) = trashing(&app).await;
    let id = SEED_IDS[4];
    app.seed_image(id, SEED_ALBUM).await;
    let item = remove_behind_our_back(&app, id).await;
    // WHEN the stream hands its old image to the adoption
    let record = image_delete::store::dynamodb::whole_record(&item).unwrap();
    let adopted = deleter
        .adopt(vec![record], &RequestId::new("stream-1"), deadline())
        .await
        .unwrap();
    // THEN it has an entry by the stream trigger, and a second adoption changes nothing
    assert!(adopted.failed.is_empty());
    let entry = app.item(&trash_table, id).await.unwrap();
    assert_eq!(entry["deleted_by"].as_s().unwrap(), "system:stream");
    let again = deleter
        .adopt(
            vec![image_delete::store::dynamodb::whole_record(&item).unwrap()],
            &RequestId::new("stream-2"),
            deadline(),
        )
        .await
        .unwrap();
    assert!(again.failed.is_empty());
    let entry = app.item(&trash_table, id).await.unwrap();
    assert_eq!(entry["request_id"].as_s().unwrap(), "stream-1");
}

// --- Through the routes, with `TRASH_DAYS` = 30 (the fixtures of events/trash/). ---

use crate::helpers::{
    assert_denied, assert_seed_headers, body_json, fixture_with_token, form_body, header, request,
};

/// An app with a trash, the nine seed images in the seed album, and `trashed` of
/// them deleted through the bulk route by a token with `image_delete`.
async fn trashed_app(trashed: &[&str]) -> TestApp {
    let app = TestApp::spawn_trashing().await;
    for id in SEED_IDS {
        app.seed_image(id, SEED_ALBUM).await;
    }
    let token = app.token_for(&[SEED_ALBUM], &["image_delete"]);
    let mut event = fixture_with_token("apigw-rest-bulk-delete.json", &token);
    event["body"] = form_body(trashed).into();
    let response = app.send(request(&event)).await;
    assert_eq!(response.status(), 200);
    app
}

fn restore_one(id: &str, token: &str) -> lambda_http::Request {
    let mut event = fixture_with_token("trash/apigw-rest-restore-one.json", token);
    event["path"] = format!("/api/v1/trashed_images/{id}").into();
    event["pathParameters"]["id"] = id.into();
    request(&event)
}

#[tokio::test]
async fn the_routes_list_restore_and_erase_what_a_delete_trashed() {
    // GIVEN three seed images deleted through the bulk route
    let (a, b, c) = (SEED_IDS[0], SEED_IDS[1], SEED_IDS[2]);
    let app = trashed_app(&[a, b, c]).await;
    let keys = crate::helpers::image_keys(SEED_ALBUM, a);
    assert_eq!(app.object_bytes(&keys[0]).await, None);
    let token = app.token_for(&[SEED_ALBUM], &["trash"]);

    // WHEN the trash is listed
    let list = app
        .send(request(&fixture_with_token(
            "trash/apigw-rest-trash-list.json",
            &token,
        )))
        .await;
    // THEN the three are there, with who deleted them and when they will be purged
    assert_eq!(list.status(), 200);
    assert_seed_headers(&list);
    assert!(header(&list, "x-token").is_some());
    let listed = body_json(&list);
    let mut ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![a, b, c];
    want.sort();
    assert_eq!(ids, want);
    let first = &listed[0];
    assert_eq!(first["album_id"], SEED_ALBUM);
    assert_eq!(first["deleted_by"], "dc850635-9cda-4c7c-8102-bed25f39055e");
    assert!(first["deleted_at"].as_str().unwrap().ends_with('Z'));
    assert!(first["purge_at"].as_str().unwrap() > first["deleted_at"].as_str().unwrap());
    assert!(header(&list, "x-next-page").is_none());

    // WHEN one is restored by its own route
    let restored = app.send(restore_one(a, &token)).await;
    // THEN 204 with a fresh token, and the image is back, bytes and record
    assert_eq!(restored.status(), 204);
    assert!(header(&restored, "x-token").is_some());
    assert!(app.record_exists(a).await);
    assert!(app.object_bytes(&keys[0]).await.is_some());
    // AND a second restore of it is a 404
    assert_eq!(app.send(restore_one(a, &token)).await.status(), 404);

    // WHEN b is restored in bulk and c erased
    let mut event = fixture_with_token("trash/apigw-rest-restore-bulk.json", &token);
    event["body"] = form_body(&[b]).into();
    let bulk = app.send(request(&event)).await;
    assert_eq!(bulk.status(), 200);
    assert_eq!(body_json(&bulk), serde_json::json!([b]));
    let mut event = fixture_with_token("trash/apigw-rest-erase.json", &token);
    event["body"] = form_body(&[c]).into();
    let erased = app.send(request(&event)).await;
    // THEN b is an image again, c is gone for good, and the trash is empty
    assert_eq!(erased.status(), 200);
    assert_eq!(body_json(&erased), serde_json::json!([c]));
    assert!(app.record_exists(b).await && !app.record_exists(c).await);
    let list = app
        .send(request(&fixture_with_token(
            "trash/apigw-rest-trash-list.json",
            &token,
        )))
        .await;
    assert_eq!(body_json(&list), serde_json::json!([]));
}

#[tokio::test]
async fn the_trash_refuses_tokens_without_trash_on_the_album_and_changes_nothing() {
    // GIVEN a trashed image of the seed album
    let a = SEED_IDS[0];
    let app = trashed_app(&[a]).await;
    for token in [
        app.token_for(&[SEED_ALBUM], &["image_delete"]),
        app.token_for(&[OTHER_ALBUM], &["trash"]),
    ] {
        // WHEN a token without trash on the seed album restores it or lists it
        let restore = app.send(restore_one(a, &token)).await;
        let list = app
            .send(request(&fixture_with_token(
                "trash/apigw-rest-trash-list.json",
                &token,
            )))
            .await;
        // THEN both are refused as the seed refuses, and it stays in the trash
        assert_denied(&restore);
        assert_denied(&list);
        assert!(!app.record_exists(a).await);
    }
}

#[tokio::test]
async fn bad_trash_requests_are_clear_4xx() {
    let app = trashed_app(&[SEED_IDS[0]]).await;
    let token = app.token_for(&[SEED_ALBUM], &["trash"]);
    // An unknown id is a 404; a malformed one a 400.
    assert_eq!(
        app.send(restore_one(SEED_IDS[5], &token)).await.status(),
        404
    );
    assert_eq!(
        app.send(restore_one("not-a-uuid", &token)).await.status(),
        400
    );
    // A page that is not one the listing gave is a 400.
    let mut event = fixture_with_token("trash/apigw-rest-trash-list.json", &token);
    event["queryStringParameters"]["page"] = "yesterday".into();
    event["multiValueQueryStringParameters"]["page"] = serde_json::json!(["yesterday"]);
    let response = app.send(request(&event)).await;
    crate::helpers::assert_client_error(&response, 400, "invalid_parameter");
    // A restore spelled as an erasure's path is refused, not run.
    let mut event = fixture_with_token("trash/apigw-rest-restore-bulk.json", &token);
    event["path"] = "/api/v1/trashed_images/erase".into();
    let response = app.send(request(&event)).await;
    assert_eq!(response.status(), 405);
    assert_eq!(header(&response, "allow"), Some("POST"));
    assert!(!app.record_exists(SEED_IDS[0]).await);
}

#[tokio::test]
async fn without_a_trash_the_routes_do_not_exist() {
    let app = TestApp::spawn().await;
    let token = app.token_for(&[SEED_ALBUM], &["trash", "image_delete"]);
    for name in [
        "trash/apigw-rest-trash-list.json",
        "trash/apigw-rest-restore-one.json",
        "trash/apigw-rest-restore-bulk.json",
        "trash/apigw-rest-erase.json",
    ] {
        let response = app.send(request(&fixture_with_token(name, &token))).await;
        assert_eq!(response.status(), 404, "{name}");
    }
}

/// A stream record of the trash table: `item` removed by DynamoDB's TTL.
fn ttl_removal(
    app: &TestApp,
    seq: usize,
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> serde_json::Value {
    let mut record = crate::audit::stream_record(seq, Some(crate::audit::stream_image(item)), None);
    record["userIdentity"] =
        serde_json::json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    record["eventSourceARN"] = format!(
        "arn:aws:dynamodb:us-east-1:123456789012:table/{}/stream/2026-12-06T00:00:00.000",
        app.trash_table()
    )
    .into();
    record
}

/// Removes every delete marker of `key`, as a restore does first.
async fn unhide(app: &TestApp, key: &str) {
    let versions = app
        .s3
        .list_object_versions()
        .bucket(&app.bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    for marker in versions.delete_markers() {
        app.s3
            .delete_object()
            .bucket(&app.bucket)
            .key(key)
            .version_id(marker.version_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    assert!(app.object_exists(key).await, "{key}");
}

#[tokio::test]
async fn an_expired_entry_leaves_no_readable_bytes_behind_and_a_live_image_alone() {
    // GIVEN a trashed whose restore unhid its objects and stopped there (its markers
    // removed, no record), and b restored whose entry was left (record back)
    let (a, b) = (SEED_IDS[6], SEED_IDS[7]);
    let app = trashed_app(&[a, b]).await;
    let trash = app.trash_table();
    let keys_a = crate::helpers::image_keys(SEED_ALBUM, a);
    let keys_b = crate::helpers::image_keys(SEED_ALBUM, b);
    for key in keys_a.iter().chain(&keys_b) {
        unhide(&app, key).await;
    }
    let entry_b = app.item(&trash, b).await.unwrap();
    let record_b = entry_b["record"].as_m().unwrap().clone();
    let mut put = app.dynamodb.put_item().table_name(&app.table);
    for (name, value) in record_b {
        put = put.item(name, value);
    }
    put.send().await.unwrap();
    let bytes_b = app.object_bytes(&keys_b[0]).await;
    // WHEN both entries expire: the TTL removes them and their stream records reach
    // the cleanup function
    let entry_a = app.item(&trash, a).await.unwrap();
    let event = serde_json::json!({"Records": [
        ttl_removal(&app, 1, &entry_a),
        ttl_removal(&app, 2, &entry_b),
    ]});
    let answer = app
        .cleanup()
        .handle(event, Deadline::after(std::time::Duration::from_secs(10)))
        .await
        .unwrap();
    // THEN a's objects answer 404 again, their bytes kept for the lifecycle rule, and
    // live b is untouched
    assert_eq!(answer["batchItemFailures"], serde_json::json!([]));
    for key in &keys_a {
        assert_eq!(app.object_bytes(key).await, None, "{key}");
        let versions = app
            .s3
            .list_object_versions()
            .bucket(&app.bucket)
            .prefix(key)
            .send()
            .await
            .unwrap();
        assert_eq!(versions.versions().len(), 1, "{key}: the bytes, noncurrent");
    }
    assert!(app.record_exists(b).await);
    assert_eq!(app.object_bytes(&keys_b[0]).await, bytes_b);
    assert!(bytes_b.is_some());
}
