//! The audit trigger against moto's EventBridge: a rule on the project's bus forwards
//! every event of ours to an SQS queue, where the test reads them as a subscriber would.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use image_delete::retry::Deadline;
use image_delete::store::eventbridge::{AUDIT_SOURCE, BridgeAuditLog};
use image_delete::triggers::audit::Audit;
use serde_json::Value;

use crate::helpers::{
    SEED_ALBUM, SEED_IDS, TestApp, fixture, fixture_with_token, form_body, request,
};

/// A bus of this test's own, with a rule sending our events to a queue.
pub struct Bus {
    pub name: String,
    queue_url: String,
}

impl Bus {
    pub async fn create(app: &TestApp) -> Self {
        let suffix = format!("{:016x}", fastrand::u64(..));
        let name = format!("images-{suffix}");
        let events = aws_sdk_eventbridge::Client::new(&app.aws);
        events.create_event_bus().name(&name).send().await.unwrap();
        let queue_url = app
            .sqs
            .create_queue()
            .queue_name(format!("audit-{suffix}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue_arn = app
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .unwrap();
        let pattern = serde_json::json!({ "source": [AUDIT_SOURCE] }).to_string();
        events
            .put_rule()
            .name("audit-to-queue")
            .event_bus_name(&name)
            .event_pattern(pattern)
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule("audit-to-queue")
            .event_bus_name(&name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Self { name, queue_url }
    }

    pub fn audit(&self, app: &TestApp) -> Audit {
        let client = aws_sdk_eventbridge::Client::new(&app.aws);
        Audit::new(Arc::new(BridgeAuditLog::new(client, &self.name)))
    }

    /// Every event delivered so far, as (detail-type, detail), in no set order.
    pub async fn delivered(&self, app: &TestApp) -> Vec<(String, Value)> {
        let mut all = Vec::new();
        loop {
            let received = app
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            if received.messages().is_empty() {
                return all;
            }
            for message in received.messages() {
                let event: Value = serde_json::from_str(message.body().unwrap()).unwrap();
                assert_eq!(event["source"], AUDIT_SOURCE);
                let kind = event["detail-type"].as_str().unwrap().to_owned();
                all.push((kind, event["detail"].clone()));
                app.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

/// Sends a trash route's fixture with `ids` in its body (or its path for one).
async fn route(app: &TestApp, fixture_name: &str, ids: &[&str], ability: &str) {
    let token = app.token_for(&[SEED_ALBUM], &[ability]);
    let mut event = fixture_with_token(fixture_name, &token);
    if fixture_name.ends_with("restore-one.json") {
        event["path"] = format!("/api/v1/trashed_images/{}", ids[0]).into();
        event["pathParameters"]["id"] = ids[0].into();
    } else {
        event["body"] = form_body(ids).into();
    }
    let response = app.send(request(&event)).await;
    assert!(
        response.status().is_success(),
        "{fixture_name}: {}",
        response.status()
    );
}

fn deadline() -> Deadline {
    Deadline::after(std::time::Duration::from_secs(10))
}

/// An item as a stream image carries it (DynamoDB JSON).
pub fn stream_image(item: &HashMap<String, AttributeValue>) -> Value {
    fn value(v: &AttributeValue) -> Value {
        match v {
            AttributeValue::S(s) => serde_json::json!({ "S": s }),
            AttributeValue::N(n) => serde_json::json!({ "N": n }),
            AttributeValue::Bool(b) => serde_json::json!({ "BOOL": b }),
            AttributeValue::Ss(ss) => serde_json::json!({ "SS": ss }),
            AttributeValue::L(l) => {
                serde_json::json!({ "L": l.iter().map(value).collect::<Vec<_>>() })
            }
            AttributeValue::M(m) => serde_json::json!({ "M": stream_image(m) }),
            other => panic!("no stream form for {other:?} in this test"),
        }
    }
    Value::Object(item.iter().map(|(k, v)| (k.clone(), value(v))).collect())
}

/// A stream record of a change from `old` to `new`.
pub fn stream_record(seq: usize, old: Option<Value>, new: Option<Value>) -> Value {
    let name = match (&old, &new) {
        (None, _) => "INSERT",
        (_, None) => "REMOVE",
        _ => "MODIFY",
    };
    let mut change = serde_json::json!({
        "SequenceNumber": format!("{seq:024}"),
        "ApproximateCreationDateTime": crate::helpers::now(),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(old) = old {
        change["OldImage"] = old;
    }
    if let Some(new) = new {
        change["NewImage"] = new;
    }
    serde_json::json!({"eventID": format!("ev-{seq}"), "eventName": name,
        "eventSource": "aws:dynamodb", "dynamodb": change})
}

#[tokio::test]
async fn the_trash_stream_fixture_becomes_events_on_the_bus() {
    // GIVEN the project's bus with a subscriber, and a real-shaped trash stream batch:
    // two images deleted by one request, one restored, the other purged by TTL
    let app = TestApp::spawn().await;
    let bus = Bus::create(&app).await;
    let audit = bus.audit(&app);
    // WHEN the audit trigger handles it
    let answer = audit
        .handle(fixture("audit/trash-stream.json"), deadline())
        .await
        .unwrap();
    // THEN nothing is delivered again and the subscriber sees exactly three events
    assert_eq!(answer["batchItemFailures"], serde_json::json!([]));
    let mut delivered = bus.delivered(&app).await;
    delivered.sort_by(|a, b| a.0.cmp(&b.0));
    let kinds: Vec<&str> = delivered.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["ImagesDeleted", "ImagesErased", "ImagesRestored"]);
    let (_, deleted) = &delivered[0];
    assert_eq!(deleted["album_id"], "00100000123BB121");
    assert_eq!(deleted["image_ids"].as_array().unwrap().len(), 2);
    assert_eq!(deleted["user"], "dc850635-9cda-4c7c-8102-bed25f39055e");
    assert_eq!(
        deleted["request_id"],
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    );
    assert_eq!(deleted["time"], 1796029200);
    let (_, erased) = &delivered[1];
    assert_eq!(erased["user"], "system:expiry");
    assert_eq!(erased["user_kind"], "system");
    let (_, restored) = &delivered[2];
    assert_eq!(
        restored["image_ids"],
        serde_json::json!(["8c35c2bf-318b-4657-a06c-68c8a012f757"])
    );
    assert_eq!(
        restored["request_id"],
        "5f1b2e9a-0c3d-4e8f-9a7b-6c5d4e3f2a1b"
    );
}

#[tokio::test]
async fn deletes_restores_and_erasures_through_the_routes_reach_the_bus() {
    // GIVEN a trashing app, a bus with a subscriber, and two seed images
    let app = TestApp::spawn_trashing().await;
    let trash = app.trash_table();
    let bus = Bus::create(&app).await;
    let (a, b) = (SEED_IDS[0], SEED_IDS[1]);
    app.seed_image(a, SEED_ALBUM).await;
    app.seed_image(b, SEED_ALBUM).await;
    // WHEN both are deleted, a is restored and b erased through the routes, and the
    // trash table's changes (each item as written) reach the audit trigger
    let mut records = Vec::new();
    let mut before: HashMap<&str, Option<Value>> = HashMap::from([(a, None), (b, None)]);
    let mut step = |records: &mut Vec<Value>, after: Vec<(&'static str, Option<Value>)>| {
        for (id, now) in after {
            let was = before.insert(id, now.clone()).flatten();
            records.push(stream_record(records.len() + 1, was, now));
        }
    };
    route(&app, "apigw-rest-bulk-delete.json", &[a, b], "image_delete").await;
    let items = vec![
        (a, app.item(&trash, a).await.as_ref().map(stream_image)),
        (b, app.item(&trash, b).await.as_ref().map(stream_image)),
    ];
    step(&mut records, items);
    route(&app, "trash/apigw-rest-restore-one.json", &[a], "trash").await;
    route(&app, "trash/apigw-rest-erase.json", &[b], "trash").await;
    let items = vec![
        (a, app.item(&trash, a).await.as_ref().map(stream_image)),
        (b, app.item(&trash, b).await.as_ref().map(stream_image)),
    ];
    step(&mut records, items);
    let answer = bus
        .audit(&app)
        .handle(serde_json::json!({ "Records": records }), deadline())
        .await
        .unwrap();
    // THEN the subscriber sees who deleted both, who restored a and who erased b
    assert_eq!(answer["batchItemFailures"], serde_json::json!([]));
    let mut delivered = bus.delivered(&app).await;
    delivered.sort_by(|x, y| x.0.cmp(&y.0));
    let shown: Vec<(&str, Vec<&str>)> = delivered
        .iter()
        .map(|(kind, detail)| {
            assert_eq!(detail["user"], "dc850635-9cda-4c7c-8102-bed25f39055e");
            assert!(detail["request_id"].as_str().is_some_and(|r| !r.is_empty()));
            let mut ids: Vec<&str> = detail["image_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            ids.sort();
            (kind.as_str(), ids)
        })
        .collect();
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(
        shown,
        [
            ("ImagesDeleted", both),
            ("ImagesErased", vec![b]),
            ("ImagesRestored", vec![a]),
        ]
    );
}
