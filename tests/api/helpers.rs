//! `TestApp`: one isolated table and bucket per test, the function built exactly as
//! the binary builds it, and ways to seed data and send fixture-based requests.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use image_delete::auth::Tokens;
use image_delete::config::Config;
use image_delete::http::Api;
use image_delete::startup;
use lambda_http::http::Response;
use lambda_http::{Body, Request};
use secrecy::SecretString;
use serde_json::Value;

/// The documented dev secret (README); the fixtures' tokens are signed with it.
pub const DEV_SECRET: &str = "dev-secret-for-local-runs-only-0123456789abcdef";
pub const SEED_ALBUM: &str = "00100000123BB121";
pub const OTHER_ALBUM: &str = "00100000123BB999";
pub const SEED_IDS: [&str; 9] = [
    "7dca41d5-d76a-4ebb-9e00-dd13c13fc238",
    "dcd964c3-f54e-413c-ab2e-41c8608f5d16",
    "8c35c2bf-318b-4657-a06c-68c8a012f757",
    "295ec432-fcb7-4eae-b881-7ab2f5126a23",
    "2f05ca7d-3347-4add-9959-41aac32eaf26",
    "4ff0f180-e325-4478-a001-406856255f31",
    "d9f1a5cf-b871-4d67-8a2a-88bf37760ae8",
    "6942945b-87fa-42d6-831b-8db4bc3d2f51",
    "cb61c3ed-6418-4d89-83e7-64f12fb9cfac",
];

pub struct TestApp {
    pub api: Api,
    pub config: Config,
    pub aws: aws_config::SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub table: String,
    pub bucket: String,
    tokens: Tokens,
}

fn require_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests through `make test`, which starts the emulators")
    })
}

impl TestApp {
    /// A fresh table and bucket on the emulators and the function over them.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        let dynamodb_url = require_env("AWS_ENDPOINT_URL_DYNAMODB");
        let s3_url = require_env("AWS_ENDPOINT_URL_S3");
        let suffix = format!("{:016x}", fastrand::u64(..));
        let table = format!("images-{suffix}");
        let bucket = format!("images-{suffix}");
        let aws = startup::aws_config().await.unwrap();
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("cleanup-{suffix}"))
            .send()
            .await
            .expect("create_queue on the SQS emulator (run through `make test`)")
            .queue_url
            .expect("a queue url");
        let mut vars: HashMap<String, String> = [
            ("IMAGES_TABLE", table.as_str()),
            ("IMAGES_BUCKET", bucket.as_str()),
            ("JWT_SECRET", DEV_SECRET),
            ("AWS_ENDPOINT_URL_S3", s3_url.as_str()),
            ("CLEANUP_QUEUE_URL", queue_url.as_str()),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.replace("{table}", &table)))
        .collect();
        vars.entry("MAX_IDS".into())
            .or_insert_with(|| "1000".into());
        let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("test config");
        let key = |name: &str| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::Hash)
                .build()
                .unwrap()
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let api = startup::api(&config, &aws).await.expect("api builds");
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&aws)
                .force_path_style(true)
                .build(),
        );
        dynamodb
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("id"))
            .attribute_definitions(attribute("album_id"))
            .key_schema(key("id"))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("album_id-index")
                    .key_schema(key("album_id"))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating a table on the DynamoDB emulator at {dynamodb_url} failed (is it running? use `make test`): {e:?}"));
        wait_active(&dynamodb, &table).await;
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating a bucket on the S3 emulator at {s3_url} failed (is it running? use `make test`): {e:?}"));
        let tokens = Tokens::new(&[SecretString::from(DEV_SECRET.to_owned())], 14400).unwrap();
        Self {
            api,
            config,
            aws,
            sqs,
            queue_url,
            dynamodb,
            s3,
            table,
            bucket,
            tokens,
        }
    }

    /// An app whose deletions go to a 30-day trash (`create_trash`).
    pub async fn spawn_trashing() -> Self {
        let app = Self::spawn_with(&[("TRASH_DAYS", "30"), ("TRASH_TABLE", "{table}-trash")]).await;
        app.create_trash().await;
        app
    }

    /// A token granting each of `abilities` on each of `albums`, valid for an hour.
    pub fn token_for(&self, albums: &[&str], abilities: &[&str]) -> String {
        let access: serde_json::Map<String, Value> = abilities
            .iter()
            .map(|a| (a.to_string(), true.into()))
            .collect();
        let all: serde_json::Map<String, Value> = albums
            .iter()
            .map(|a| (a.to_string(), serde_json::json!({ "Access": access })))
            .collect();
        let now = now();
        let claims = serde_json::from_value(serde_json::json!({
            "exp": now + 3600, "iat": now, "user_id": "dc850635-9cda-4c7c-8102-bed25f39055e",
            "abilities": all
        }))
        .unwrap();
        self.tokens.mint(&claims, now)
    }

    /// The name `create_trash` gives this app's trash table.
    pub fn trash_table(&self) -> String {
        format!("{}-trash", self.table)
    }

    /// Creates this app's trash table (`<table>-trash`, with the listing's index), and
    /// turns versioning on in its bucket, as `template.yaml` does with `TrashDays`.
    pub async fn create_trash(&self) -> String {
        let trash = format!("{}-trash", self.table);
        let attribute = |name: &str, kind| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .unwrap()
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .unwrap()
        };
        self.dynamodb
            .create_table()
            .table_name(&trash)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("id", ScalarAttributeType::S))
            .attribute_definitions(attribute("album_id", ScalarAttributeType::S))
            .attribute_definitions(attribute("listed_at", ScalarAttributeType::S))
            .key_schema(key("id", KeyType::Hash))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("album_id-listed_at-index")
                    .key_schema(key("album_id", KeyType::Hash))
                    .key_schema(key("listed_at", KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::Include)
                            .non_key_attributes("deleted_at")
                            .non_key_attributes("deleted_by")
                            .non_key_attributes("deleted_by_kind")
                            .non_key_attributes("purge_at")
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create the trash table");
        wait_active(&self.dynamodb, &trash).await;
        self.s3
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("turn versioning on");
        trash
    }

    /// The bytes a `GetObject` of `key` reads, `None` on 404.
    pub async fn object_bytes(&self, key: &str) -> Option<Vec<u8>> {
        match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => Some(object.body.collect().await.unwrap().to_vec()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => None,
            Err(e) => panic!("get_object: {e:?}"),
        }
    }

    /// The item of `id` in `table`, whole.
    pub async fn item(&self, table: &str, id: &str) -> Option<HashMap<String, AttributeValue>> {
        self.dynamodb
            .get_item()
            .table_name(table)
            .key("id", AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("get_item")
            .item
    }

    /// Stores an image: its record and one object per key.
    pub async fn seed(&self, id: &str, album: &str, keys: &[String]) {
        let mut item = HashMap::from([
            ("id".to_owned(), AttributeValue::S(id.to_owned())),
            ("album_id".to_owned(), AttributeValue::S(album.to_owned())),
            (
                "title".to_owned(),
                AttributeValue::S("kept untouched".to_owned()),
            ),
        ]);
        if !keys.is_empty() {
            item.insert("object_keys".into(), AttributeValue::Ss(keys.to_vec()));
        }
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .expect("put_item");
        for key in keys {
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(b"\xff\xd8\xff\xe0 jpeg bytes".to_vec().into())
                .send()
                .await
                .expect("put_object");
        }
    }

    /// Stores an image with an original and a thumbnail.
    pub async fn seed_image(&self, id: &str, album: &str) -> Vec<String> {
        let keys = image_keys(album, id);
        self.seed(id, album, &keys).await;
        keys
    }

    pub async fn record_exists(&self, id: &str) -> bool {
        self.dynamodb
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("get_item")
            .item
            .is_some()
    }

    pub async fn object_exists(&self, key: &str) -> bool {
        match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => false,
            Err(e) => panic!("head_object: {e:?}"),
        }
    }

    pub async fn object_count(&self) -> usize {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("list");
        listed.contents().len()
    }

    pub async fn record_count(&self) -> usize {
        let scanned = self
            .dynamodb
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .expect("scan");
        scanned.items().len()
    }

    /// A token granting `ability` on each of `albums`, valid for an hour.
    pub fn token(&self, albums: &[&str], ability: &str) -> String {
        let now = now();
        let abilities: serde_json::Map<String, Value> = albums
            .iter()
            .map(|a| {
                (
                    a.to_string(),
                    serde_json::json!({"Access": {ability: true}}),
                )
            })
            .collect();
        let claims = serde_json::from_value(serde_json::json!({
            "exp": now + 3600, "iat": now, "user_id": "dc850635-9cda-4c7c-8102-bed25f39055e",
            "abilities": abilities
        }))
        .unwrap();
        self.tokens.mint(&claims, now)
    }

    pub fn verify(&self, token: &str) -> image_delete::domain::Claims {
        self.tokens.verify(token, now()).expect("a valid X-token")
    }

    /// The cleanup triggers, built as the cleanup binary builds them.
    pub fn cleanup(&self) -> image_delete::triggers::Cleanup {
        startup::cleanup(&self.config, &self.aws).expect("cleanup builds")
    }

    /// Bodies of the messages waiting on the cleanup queue.
    pub async fn queued(&self) -> Vec<String> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive_message");
        received
            .messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect()
    }

    pub async fn send(&self, request: Request) -> Response<Body> {
        self.api.handle(request).await
    }
}

pub fn image_keys(album: &str, id: &str) -> Vec<String> {
    vec![
        format!("albums/{album}/{id}/original.jpg"),
        format!("albums/{album}/{id}/thumb.jpg"),
    ]
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fixture from `events/`, as JSON to edit.
/// A fixture with this token in its `Authorization` header.
pub fn fixture_with_token(name: &str, token: &str) -> Value {
    let mut event = fixture(name);
    set_header(
        &mut event,
        "authorization",
        &format!("Token token=\"{token}\""),
    );
    event
}

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The request Lambda would hand the function for this event.
pub fn request(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("a valid Lambda HTTP event")
}

/// Sets a header in whichever header maps the event has.
pub fn set_header(event: &mut Value, name: &str, value: &str) {
    if let Some(headers) = event.get_mut("headers").and_then(Value::as_object_mut) {
        headers.insert(name.into(), value.into());
    }
    if let Some(headers) = event
        .get_mut("multiValueHeaders")
        .and_then(Value::as_object_mut)
    {
        headers.insert(name.into(), serde_json::json!([value]));
    }
}

pub fn remove_header(event: &mut Value, name: &str) {
    for map in ["headers", "multiValueHeaders"] {
        if let Some(headers) = event.get_mut(map).and_then(Value::as_object_mut) {
            headers.remove(name);
        }
    }
}

/// The REST (v1) bulk-delete fixture with this body and token, to edit further.
pub fn bulk_event(body: &str, token: &str) -> Value {
    let mut event = fixture("apigw-rest-bulk-delete.json");
    event["body"] = body.into();
    set_header(
        &mut event,
        "authorization",
        &format!("Token token=\"{token}\""),
    );
    event
}

/// A REST (v1) bulk-delete request with this form body and token.
pub fn form_request(body: &str, token: &str) -> Request {
    request(&bulk_event(body, token))
}

pub fn form_body(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("image_ids[]={id}"))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn body_text(response: &Response<Body>) -> String {
    match response.body() {
        Body::Empty => String::new(),
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8(bytes.clone()).unwrap(),
        _ => panic!("unexpected body"),
    }
}

pub fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_str(&body_text(response)).expect("a JSON body")
}

pub fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// The seed's headers, which every answer carries.
pub const SEED_HEADERS: &[(&str, &str)] = &[
    ("cache-control", "no-cache, no-store"),
    ("pragma", "no-cache"),
    ("expires", "Fri, 01 Jan 1990 00:00:00 GMT"),
    ("vary", "Accept-Encoding"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("x-xss-protection", "1; mode=block"),
    ("x-download-options", "noopen"),
    ("x-permitted-cross-domain-policies", "none"),
    (
        "referrer-policy",
        "origin-when-cross-origin, strict-origin-when-cross-origin",
    ),
];

pub fn assert_seed_headers(response: &Response<Body>) {
    for (name, value) in SEED_HEADERS {
        assert_eq!(header(response, name), Some(*value), "header {name}");
    }
    assert!(header(response, "x-request-id").is_some_and(|v| !v.is_empty()));
    let runtime = header(response, "x-runtime").expect("x-runtime");
    let (whole, decimals) = runtime.split_once('.').expect("x-runtime has decimals");
    assert!(
        whole.parse::<u64>().is_ok() && decimals.len() == 6,
        "{runtime}"
    );
}

/// The 401 the seed's API answers: empty body, reason in headers, no token.
pub fn assert_denied(response: &Response<Body>) {
    assert_eq!(response.status(), 401);
    assert_eq!(body_text(response), "");
    assert_eq!(header(response, "x-message"), Some("Access denied"));
    assert_eq!(
        header(response, "www-authenticate"),
        Some("Token realm=\"Application\"")
    );
    assert_eq!(header(response, "x-token"), None);
    assert_seed_headers(response);
}

/// A 4xx with the JSON error shape and no token.
pub fn assert_client_error(response: &Response<Body>, status: u16, code: &str) {
    assert_eq!(response.status(), status, "{}", body_text(response));
    assert_eq!(
        header(response, "content-type"),
        Some("application/json; charset=utf-8")
    );
    let body = body_json(response);
    assert_eq!(body["error"], code);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(header(response, "x-token"), None);
    assert_seed_headers(response);
}

/// Waits until `table` is ACTIVE: dynalite answers CREATING and turns the table ACTIVE
/// on a later tick (even with --createTableMs 0): on a loaded machine a put can come
/// first.
async fn wait_active(dynamodb: &aws_sdk_dynamodb::Client, table: &str) {
    for _ in 0..100 {
        let status = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .ok()
            .and_then(|d| d.table.and_then(|t| t.table_status));
        if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
