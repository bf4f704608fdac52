//! The trash through its real adapters (`DynamoTrash`, the whole-record catalog and
//! the S3 versions) against the emulators: dynalite's two tables in one
//! `BatchWriteItem` and its index query, moto's versioned bucket with delete markers.
//! The routes come later (issue 26); these drive the deletion core directly.

use std::sync::Arc;

use image_delete::domain::restore::TrashOutcome;
use image_delete::domain::trash::{RequestId, TrashDays};
use image_delete::domain::{Abilities, AlbumId, Authority, Deleter, ImageId, ImageIds};
use image_delete::retry::Deadline;
use image_delete::store::dynamodb::DynamoCatalog;
use image_delete::store::dynamodb::trash::DynamoTrash;
use image_delete::store::s3::S3ObjectStore;

use crate::helpers::{OTHER_ALBUM, SEED_ALBUM, SEED_IDS, TestApp};

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
            &grants(&[SEED_ALBUM], &["trash"]),
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
    assert!(app.item(&trash_table, a).await.is_none());
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
        .restore(&ids(&[id]), &grants(&[SEED_ALBUM], &["trash"]), deadline())
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
        .erase(&ids(&[id]), &grants(&[SEED_ALBUM], &["trash"]), deadline())
        .await
        .unwrap();
    // THEN no version of its objects and no entry is left
    assert_eq!(strs(&outcome.done), [id]);
    assert!(app.item(&trash_table, id).await.is_none());
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
    let item = app.item(&app.table, id).await.unwrap();
    app.dynamodb
        .delete_item()
        .table_name(&app.table)
        .key("id", item["id"].clone())
        .send()
        .await
        .unwrap();
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
