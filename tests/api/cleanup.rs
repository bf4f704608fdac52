//! The cleanup triggers against the emulators, driven by the `events/cleanup/` fixtures.

use std::time::Duration;

use image_delete::retry::Deadline;
use serde_json::{Value, json};

use crate::helpers::*;

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(20))
}

fn failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .expect("a batch response")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_sqs_batch_fails_exactly_the_malformed_and_the_partly_failed_messages() {
    // GIVEN two images, one of another album, and a record that cannot be read
    let app = TestApp::spawn().await;
    app.seed_image(SEED_IDS[0], SEED_ALBUM).await;
    app.seed_image(SEED_IDS[1], OTHER_ALBUM).await;
    app.seed_image(SEED_IDS[3], SEED_ALBUM).await;
    app.dynamodb
        .put_item()
        .table_name(&app.table)
        .item(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(SEED_IDS[4].into()),
        )
        .send()
        .await
        .unwrap();
    // AND a batch: a good job, a malformed one, and one naming the unreadable record
    let mut event = fixture("cleanup/sqs-jobs.json");
    event["Records"][2]["body"] = json!({"image_ids": [SEED_IDS[3], SEED_IDS[4]]})
        .to_string()
        .into();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            event["Records"][i]["messageId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let cleanup = app.cleanup();

    // WHEN the batch is delivered
    let answer = cleanup.handle(event.clone(), deadline()).await.unwrap();

    // THEN exactly the malformed and the partly failed messages are reported
    assert_eq!(failures(&answer), [ids[1].clone(), ids[2].clone()]);
    // AND system authority deleted across albums, and the good part of the third job
    assert!(!app.record_exists(SEED_IDS[0]).await);
    assert!(!app.record_exists(SEED_IDS[1]).await);
    assert!(!app.record_exists(SEED_IDS[3]).await);
    assert!(
        app.record_exists(SEED_IDS[4]).await,
        "the unreadable record stays"
    );
    assert_eq!(app.object_count().await, 0);

    // WHEN the same batch is delivered again THEN the outcome is the same
    let again = cleanup.handle(event, deadline()).await.unwrap();
    assert_eq!(failures(&again), [ids[1].clone(), ids[2].clone()]);
}

#[tokio::test]
async fn an_album_deleted_event_removes_exactly_that_album_across_pages() {
    // GIVEN 10 images in the album (pages of 3) and 2 in another
    let app = TestApp::spawn_with(&[("ALBUM_PAGE_SIZE", "3")]).await;
    let ids: Vec<String> = (0..10)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    for id in &ids {
        app.seed_image(id, SEED_ALBUM).await;
    }
    let kept = app.seed_image(SEED_IDS[0], OTHER_ALBUM).await;
    app.seed_image(SEED_IDS[1], OTHER_ALBUM).await;
    let cleanup = app.cleanup();

    // WHEN the album's deletion event arrives, twice
    let event = fixture("cleanup/album-deleted.json");
    cleanup.handle(event.clone(), deadline()).await.unwrap();
    cleanup.handle(event, deadline()).await.unwrap();

    // THEN every image of the album is gone and the other album is untouched
    for id in &ids {
        assert!(!app.record_exists(id).await, "{id}");
    }
    assert_eq!(app.record_count().await, 2);
    assert_eq!(app.object_count().await, 4);
    assert!(app.object_exists(&kept[0]).await);
    assert!(app.queued().await.is_empty(), "nothing was handed on");
}

#[tokio::test]
async fn an_album_run_short_of_time_hands_the_rest_on_through_the_queue() {
    let app = TestApp::spawn().await;
    app.seed_image(SEED_IDS[0], SEED_ALBUM).await;
    // GIVEN less time left than one page needs
    let cleanup = app.cleanup().with_margin(Duration::from_secs(3600));
    // WHEN the album event arrives
    cleanup
        .handle(fixture("cleanup/album-deleted.json"), deadline())
        .await
        .unwrap();
    // THEN the album is queued for a later run, and the SQS trigger finishes it
    let queued = app.queued().await;
    assert_eq!(queued, [json!({"album_id": SEED_ALBUM}).to_string()]);
    assert!(app.record_exists(SEED_IDS[0]).await);
    let mut event = fixture("cleanup/sqs-jobs.json");
    event["Records"] = json!([event["Records"][2].clone()]);
    event["Records"][0]["body"] = queued[0].clone().into();
    let answer = app.cleanup().handle(event, deadline()).await.unwrap();
    assert!(failures(&answer).is_empty());
    assert!(!app.record_exists(SEED_IDS[0]).await);
}

#[tokio::test]
async fn a_malformed_album_event_is_an_error_for_lambda_to_retry() {
    let app = TestApp::spawn().await;
    let mut event = fixture("cleanup/album-deleted.json");
    event["detail"] = json!({"album": 7});
    assert!(app.cleanup().handle(event, deadline()).await.is_err());
}

#[tokio::test]
async fn a_stream_remove_record_deletes_exactly_its_objects() {
    // GIVEN the removed record's two objects in the bucket, and another image's
    let app = TestApp::spawn().await;
    let removed = app.seed_image(SEED_IDS[2], SEED_ALBUM).await;
    let other = app.seed_image(SEED_IDS[3], SEED_ALBUM).await;
    // (the record itself is gone already: removed elsewhere, e.g. by TTL)
    app.dynamodb
        .delete_item()
        .table_name(&app.table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(SEED_IDS[2].into()),
        )
        .send()
        .await
        .unwrap();
    let event = fixture("cleanup/stream-remove.json");
    let cleanup = app.cleanup();
    // WHEN the stream batch (a MODIFY, then the REMOVE) arrives, twice
    let answer = cleanup.handle(event.clone(), deadline()).await.unwrap();
    let again = cleanup.handle(event, deadline()).await.unwrap();
    // THEN exactly the removed record's objects are gone, and nothing failed
    assert!(failures(&answer).is_empty() && failures(&again).is_empty());
    for key in &removed {
        assert!(!app.object_exists(key).await, "{key}");
    }
    for key in &other {
        assert!(app.object_exists(key).await, "{key}");
    }
    assert!(app.record_exists(SEED_IDS[3]).await);
}
